package collector

import (
	"errors"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

var containerLabels = []string{"id", "name", "image"}

var (
	memUsageDesc      = desc("container_memory_usage_bytes", "Memory the container's cgroup uses, page cache included.", containerLabels...)
	memWorkingSetDesc = desc("container_memory_working_set_bytes", "Usage minus inactive file cache: what the OOM killer weighs against the limit.", containerLabels...)
	memLimitDesc      = desc("container_memory_limit_bytes", "The container's memory limit; absent when it has none.", containerLabels...)
	memPeakDesc       = desc("container_memory_max_usage_bytes", "The highest usage the cgroup has recorded.", containerLabels...)
	memLimitHitsDesc  = desc("container_memory_limit_hits_total", "Times the cgroup hit its memory limit (v1 failcnt, v2 memory.events max).", containerLabels...)
	memOOMKillsDesc   = desc("container_oom_kills_total", "Processes the kernel OOM-killed in this cgroup.", containerLabels...)
)

// memoryCollector reads every Docker container's memory cgroup at scrape
// time. Containers are found in the cgroup tree itself, so memory series
// survive a Docker outage; names and images come from the tracker.
type memoryCollector struct {
	fs      *cgroupfs.FS
	tracker *tracker.Tracker
	health  *source.Health
	logger  *slog.Logger
	labels  labelCache[string]
}

func init() {
	registerCollector("memory", true, func(d Deps) (Collector, error) {
		return &memoryCollector{fs: d.Cgroups, tracker: d.Tracker, health: d.Sources.Source("cgroupfs"), logger: d.Logger}, nil
	})
}

func (c *memoryCollector) Update(ch chan<- prometheus.Metric) error {
	if c.fs == nil {
		return ErrNoData
	}
	containers, err := c.fs.DockerContainers()
	if err != nil {
		c.health.SetUp(false, c.logger, err)
		return err
	}
	c.health.SetUp(true, c.logger, nil)
	views := c.tracker.Views()
	now := time.Now()
	c.labels.begin()
	defer c.labels.end()
	for _, ct := range containers {
		m, err := c.fs.Memory(ct.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // it died between the listing and the read
		}
		if err != nil {
			c.health.Error(c.logger, "reading container memory cgroup", err)
			continue
		}
		v := views[ct.ID]
		labels := c.labels.get(ct.ID, containerLabels, shortID(ct.ID), v.Name, v.Image)
		b := make(seriesBatch, 0, 6)
		b.send(ch, memUsageDesc, prometheus.GaugeValue, float64(m.Usage), labels)
		b.send(ch, memWorkingSetDesc, prometheus.GaugeValue, float64(m.WorkingSet), labels)
		if !m.Limit.Unlimited {
			b.send(ch, memLimitDesc, prometheus.GaugeValue, float64(m.Limit.Bytes), labels)
		}
		sendOptional(ch, &b, memPeakDesc, prometheus.GaugeValue, m.Peak, labels)
		sendOptional(ch, &b, memLimitHitsDesc, prometheus.CounterValue, m.LimitHits, labels)
		sendOptional(ch, &b, memOOMKillsDesc, prometheus.CounterValue, m.OOMKills, labels)
		if m.OOMKills != nil {
			c.tracker.ObserveOOMKills(ct.ID, *m.OOMKills, now)
		}
	}
	return nil
}

// sendOptional sends a value the cgroup version or kernel may lack; a
// missing file is an absent series, never a zero.
func sendOptional(ch chan<- prometheus.Metric, b *seriesBatch, d *prometheus.Desc, t prometheus.ValueType, v *uint64, labels []*dto.LabelPair) {
	if v != nil {
		b.send(ch, d, t, float64(*v), labels)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
