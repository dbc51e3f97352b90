package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/source/docker"
)

func init() {
	registerCollector("runtime", true, func(d Deps) (Collector, error) {
		c := &runtimeCollector{}
		if d.Docker != nil {
			c.docker = d.Docker
		}
		return c, nil
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
	docker interface{ Runtime() (docker.Runtime, bool) }
}

func (c *runtimeCollector) Update(ch chan<- prometheus.Metric) error {
	if c.docker == nil {
		return ErrNoData // --docker.disable
	}
	rt, ok := c.docker.Runtime()
	if !ok {
		return ErrNoData // the Docker source is off or has not connected yet
	}
	ch <- prometheus.MustNewConstMetric(runtimeInfoDesc, prometheus.GaugeValue, 1, rt.Name, rt.Version)
	return nil
}
