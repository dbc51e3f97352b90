package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/tracker"
)

var (
	containerExitsDesc = desc("container_exits_total",
		"Container exits by container name, exit code, signal and cause. Series of a removed name stay for --exits.retention.",
		"name", "image", "exit_code", "signal", "cause")
	hostExitsDesc = desc("exits_total", "Container exits on this host by exit code, signal and cause.",
		"exit_code", "signal", "cause")
)

// exitsCollector exposes the exit counters the tracker keeps.
type exitsCollector struct {
	tracker *tracker.Tracker
	labels  labelCache[exitSeriesKey]
}

type exitSeriesKey struct {
	name, image string
	tracker.ExitKey
}

var exitLabels = []string{"name", "image", "exit_code", "signal", "cause"}

func init() {
	registerCollector("exits", true, func(d Deps) (Collector, error) {
		return &exitsCollector{tracker: d.Tracker}, nil
	})
}

func (c *exitsCollector) Update(ch chan<- prometheus.Metric) error {
	byName, host := c.tracker.ExitSeries()
	c.labels.begin()
	defer c.labels.end()
	b := make(seriesBatch, 0, len(byName))
	for _, s := range byName {
		labels := c.labels.get(exitSeriesKey{s.Name, s.Image, s.ExitKey}, exitLabels,
			s.Name, s.Image, exitCodeLabel(s.ExitCode), s.Signal, string(s.Cause))
		b.send(ch, containerExitsDesc, prometheus.CounterValue, float64(s.Count), labels)
	}
	for _, s := range host {
		ch <- prometheus.MustNewConstMetric(hostExitsDesc, prometheus.CounterValue, float64(s.Count),
			exitCodeLabel(s.ExitCode), s.Signal, string(s.Cause))
	}
	return nil
}
