package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/source/sigtrace"
)

func init() {
	registerCollector("sigtrace", true, newSigtraceCollector)
}

var sigkillsDesc = desc("sigkills_total",
	"SIGKILLs traced since the exporter started, to any process, by sender class (kernel: the OOM killer or "+
		"the kernel itself; systemd; runtime: the container runtime, its shims and OCI runtime, Docker's or Podman's; user: a login session or terminal; other).",
	"sender")

type sigtraceCollector struct {
	source *sigtrace.Source
}

func newSigtraceCollector(deps Deps) (Collector, error) {
	return &sigtraceCollector{source: deps.Sigtrace}, nil
}

func (c *sigtraceCollector) Update(ch chan<- prometheus.Metric) error {
	if c.source == nil {
		return ErrNoData
	}
	kills := c.source.SIGKILLs()
	for _, class := range sigtrace.Classes {
		ch <- prometheus.MustNewConstMetric(sigkillsDesc, prometheus.CounterValue, float64(kills[class]), class)
	}
	return nil
}
