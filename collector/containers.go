package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/tracker"
)

var (
	containerInfoDesc = desc("container_info", "Metadata of every container Docker knows; always 1.",
		"id", "name", "image", "compose_project", "compose_service", "systemd_unit")
	lastExitCodeDesc  = desc("container_last_exit_code", "Exit code of the container's last exit.", containerLabels...)
	lastExitTimeDesc  = desc("container_last_exit_timestamp_seconds", "When the container last exited, in Unix seconds.", containerLabels...)
	lastKillCauseDesc = desc("container_last_kill_cause", "The verdict on the container's last exit; 1 for its cause.", append(containerLabels, "cause")...)
)

// containersCollector describes the containers that exist now, and their
// last exit.
type containersCollector struct{ tracker *tracker.Tracker }

func init() {
	registerCollector("containers", true, func(d Deps) (Collector, error) {
		return &containersCollector{tracker: d.Tracker}, nil
	})
}

func (c *containersCollector) Update(ch chan<- prometheus.Metric) error {
	for id, v := range c.tracker.Views() {
		if v.Name == "" {
			continue
		}
		short := shortID(id)
		ch <- prometheus.MustNewConstMetric(containerInfoDesc, prometheus.GaugeValue, 1,
			short, v.Name, v.Image, v.ComposeProject, v.ComposeService, v.SystemdUnit)
		if v.LastExit == nil {
			continue
		}
		labels := []string{short, v.Name, v.Image}
		ch <- prometheus.MustNewConstMetric(lastExitCodeDesc, prometheus.GaugeValue, float64(v.LastExit.ExitCode), labels...)
		ch <- prometheus.MustNewConstMetric(lastExitTimeDesc, prometheus.GaugeValue, float64(v.LastExit.Time.UnixNano())/1e9, labels...)
		if v.LastCause != "" {
			ch <- prometheus.MustNewConstMetric(lastKillCauseDesc, prometheus.GaugeValue, 1, append(labels, string(v.LastCause))...)
		}
	}
	return nil
}

// exitCodeLabel is the exit_code label value.
func exitCodeLabel(code int) string { return strconv.Itoa(code) }
