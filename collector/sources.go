package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/source"
)

var (
	sourceUpDesc     = desc("source_up", "Whether the evidence source is delivering (1) or not (0).", "source")
	sourceEventsDesc = desc("source_events_total", "Events the source turned into evidence.", "source")
	sourceErrorsDesc = desc("source_errors_total", "Errors the source met: bad lines, lost connections, failed reads.", "source")
)

// sourcesCollector shows the health of every evidence source, so that one
// broken source is visible without taking the others down.
type sourcesCollector struct{ registry *source.Registry }

func init() {
	registerCollector("sources", true, func(d Deps) (Collector, error) {
		return &sourcesCollector{registry: d.Sources}, nil
	})
}

func (c *sourcesCollector) Update(ch chan<- prometheus.Metric) error {
	for _, h := range c.registry.All() {
		up := 0.0
		if h.Up() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(sourceUpDesc, prometheus.GaugeValue, up, h.Name())
		ch <- prometheus.MustNewConstMetric(sourceEventsDesc, prometheus.CounterValue, float64(h.Events()), h.Name())
		ch <- prometheus.MustNewConstMetric(sourceErrorsDesc, prometheus.CounterValue, float64(h.Errors()), h.Name())
	}
	return nil
}
