package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/source/docker"
)

func init() {
	registerCollector("runtime", true, func(Deps) (Collector, error) {
		return &runtimeCollector{detected: docker.Detected}, nil
	})
}

var runtimeInfoDesc = desc("runtime_info",
	"The container runtime behind --docker.host, from its API's version answer, with its version "+
		"(runtime: docker or podman). Podman 4 reports no OOM kill of its own: the kernel's is used.",
	"runtime", "version")

// runtimeCollector says which runtime the Docker source follows: the
// same API, different evidence (Podman's kill event names no signal,
// Podman 4 never reports an OOM kill).
type runtimeCollector struct {
	detected func() (docker.Runtime, bool)
}

func (c *runtimeCollector) Update(ch chan<- prometheus.Metric) error {
	rt, ok := c.detected()
	if !ok {
		return ErrNoData // the Docker source is off or has not connected yet
	}
	ch <- prometheus.MustNewConstMetric(runtimeInfoDesc, prometheus.GaugeValue, 1, rt.Name, rt.Version)
	return nil
}
