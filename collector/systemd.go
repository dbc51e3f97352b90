package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/source/systemd"
)

func init() {
	registerCollector("systemd", true, func(d Deps) (Collector, error) {
		return &systemdCollector{stops: d.Systemd}, nil
	})
}

var partOfStopsDesc = desc("systemd_partof_stops_total",
	"Unit stops that systemd propagated from another unit by PartOf= or BindsTo= (its stop, restart, or for BindsTo= "+
		"its failure), by the stopped unit and the unit it followed; any unit, whether it runs a container or not.",
	"unit", "partof")

// PartOfStops is what the collector reads of the systemd source.
type PartOfStops interface {
	PartOfStops() map[systemd.StopKey]uint64
}

type systemdCollector struct{ stops PartOfStops }

func (c *systemdCollector) Update(ch chan<- prometheus.Metric) error {
	if c.stops == nil {
		return ErrNoData
	}
	for k, n := range c.stops.PartOfStops() {
		ch <- prometheus.MustNewConstMetric(partOfStopsDesc, prometheus.CounterValue, float64(n), k.Unit, k.PartOf)
	}
	return nil
}
