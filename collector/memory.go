package collector

import (
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

var (
	memUsageDesc      = desc("container_memory_usage_bytes", "Memory the container's cgroup uses, page cache included.", containerLabels...)
	memWorkingSetDesc = desc("container_memory_working_set_bytes", "Usage minus inactive file cache: what the OOM killer weighs against the limit.", containerLabels...)
	memLimitDesc      = desc("container_memory_limit_bytes", "The container's memory limit (on cgroup v1, its parent cgroup's when only that is limited); absent when it has none.", containerLabels...)
	memPeakDesc       = desc("container_memory_max_usage_bytes", "The highest usage the cgroup has recorded.", containerLabels...)
	memLimitHitsDesc  = desc("container_memory_limit_hits_total", "Times the cgroup hit its memory limit (v1 failcnt, v2 memory.events max).", containerLabels...)
	memOOMKillsDesc   = desc("container_oom_kills_total", "Processes the kernel OOM-killed in this cgroup.", containerLabels...)
)

// memoryCollector reads every container's memory cgroup at scrape time.
// Containers are found in the cgroup tree itself, in Docker's layouts, so
// memory series survive a Docker outage; names and images come from the
// tracker. A running container the tracker knows that the scan did not
// find (a custom --cgroup-parent, podman) is found from its init's
// /proc/<pid>/cgroup.
type memoryCollector struct {
	fs      *cgroupfs.FS
	tracker *tracker.Tracker
	health  *source.Health
	logger  *slog.Logger
	ids     *identities
	// procRoot is where the host's /proc is.
	procRoot string
	// mu is held for a scrape: byPID is the scrape's.
	mu sync.Mutex
	// byPID holds the cgroups resolved from an init's pid, by container id.
	byPID map[string]*pidPath
}

// pidPath is a container's memory cgroup as its init's pid gave it, or
// why it could not.
type pidPath struct {
	pid  int
	path string // "" when the resolution failed
	// retry is when a failed resolution may be tried again.
	retry time.Time
}

// pidRetry is how long a failed resolution from a pid is not tried again
// (the pid stays the same while the container runs).
const pidRetry = time.Minute

func init() {
	registerCollector("memory", true, func(d Deps) (Collector, error) {
		procRoot := d.ProcRoot
		if procRoot == "" {
			procRoot = "/proc"
		}
		return &memoryCollector{fs: d.Cgroups, tracker: d.Tracker, health: d.Sources.Source("cgroupfs"), logger: d.Logger,
			procRoot: procRoot, ids: d.identities}, nil
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
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ct := range containers {
		m, err := c.fs.Memory(ct.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // it died between the listing and the read
		}
		if err != nil {
			c.health.Error(c.logger, "reading container memory cgroup", err)
			continue
		}
		c.send(ch, ct.ID, &m, views[ct.ID], now)
	}
	for id, v := range views {
		if !v.Running || v.Pid <= 0 {
			continue
		}
		if _, found := slices.BinarySearchFunc(containers, id, func(ct cgroupfs.Container, id string) int {
			return strings.Compare(ct.ID, id)
		}); found {
			continue
		}
		if m, ok := c.memoryByPID(id, v.Pid, now); ok {
			c.send(ch, id, &m, v, now)
		}
	}
	for id, p := range c.byPID {
		if v, ok := views[id]; !ok || !v.Running || v.Pid != p.pid {
			delete(c.byPID, id)
		}
	}
	return nil
}

// send sends one container's memory series.
func (c *memoryCollector) send(ch chan<- prometheus.Metric, id string, m *cgroupfs.Memory, v tracker.View, now time.Time) {
	labels := c.ids.get(id, identityOf(id, v)).sorted[:]
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
		c.tracker.ObserveOOMKills(id, *m.OOMKills, now)
	}
}

// memoryByPID reads the memory of a running container the scan did not
// find, from the cgroup its init's pid gave: read from /proc once per
// (id, pid) and again only when that path vanishes. A process that is
// gone, or whose cgroup does not name the container (a reused pid), falls
// back to the scan: no series, no error. Other failures count as errors
// once per (id, pid) and are tried again after pidRetry.
func (c *memoryCollector) memoryByPID(id string, pid int, now time.Time) (cgroupfs.Memory, bool) {
	p := c.byPID[id]
	if p != nil && p.pid == pid && p.path != "" {
		m, err := c.fs.Memory(p.path)
		if err == nil {
			return m, true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			c.health.Error(c.logger, "reading container memory cgroup", err)
			return m, false
		}
		p = nil // the path vanished: the process may have moved
	}
	if p != nil && p.pid == pid && now.Before(p.retry) {
		return cgroupfs.Memory{}, false
	}
	if c.byPID == nil {
		c.byPID = map[string]*pidPath{}
	}
	path, err := c.fs.ContainerPathOfPID(c.procRoot, id, pid)
	if err != nil {
		if p == nil || p.pid != pid {
			if errors.Is(err, fs.ErrNotExist) {
				c.logger.Debug("container cgroup not found from its init's pid", "id", cgroupfs.ShortID(id), "pid", pid, "err", err)
			} else {
				c.health.Error(c.logger, "finding container memory cgroup from its init's pid", err)
			}
		}
		c.byPID[id] = &pidPath{pid: pid, retry: now.Add(pidRetry)}
		return cgroupfs.Memory{}, false
	}
	c.byPID[id] = &pidPath{pid: pid, path: path}
	m, err := c.fs.Memory(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.health.Error(c.logger, "reading container memory cgroup", err)
		}
		return m, false
	}
	return m, true
}

// sendOptional sends a value the cgroup version or kernel may lack; a
// missing file is an absent series, never a zero.
func sendOptional(ch chan<- prometheus.Metric, b *seriesBatch, d *prometheus.Desc, t prometheus.ValueType, v *uint64, labels []*dto.LabelPair) {
	if v != nil {
		b.send(ch, d, t, float64(*v), labels)
	}
}
