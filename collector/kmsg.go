package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/source/kmsg"
)

func init() {
	registerCollector("kmsg", true, newKmsgCollector)
}

var kernelOOMKillsDesc = desc("kernel_oom_kills_total",
	"Kernel OOM kills read from the kernel log by this exporter process (one per killed process, including kills "+
		"logged while it was down that it replays at start), by the kernel's constraint (memcg: a cgroup's limit; "+
		"none: the host ran out, or a cpuset or mempolicy when the kernel's rate-limited summary line is missing).",
	"constraint")

type kmsgCollector struct {
	source *kmsg.Source
}

func newKmsgCollector(deps Deps) (Collector, error) {
	return &kmsgCollector{source: deps.Kmsg}, nil
}

func (c *kmsgCollector) Update(ch chan<- prometheus.Metric) error {
	if c.source == nil {
		return ErrNoData
	}
	kills := c.source.OOMKills()
	for _, constraint := range kmsg.Constraints {
		ch <- prometheus.MustNewConstMetric(kernelOOMKillsDesc, prometheus.CounterValue,
			float64(kills[constraint]), constraint)
	}
	return nil
}
