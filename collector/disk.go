package collector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/source/disk"
)

func init() {
	registerCollector("disk", true, newDiskCollector)
}

var (
	diskUsageRatioDesc = desc("disk_usage_ratio",
		"Used fraction of the filesystem holding a watched path, as df computes Use%.",
		"path")
	diskInodesUsageRatioDesc = desc("disk_inodes_usage_ratio",
		"Used fraction of the inodes of the filesystem holding a watched path (0 where the filesystem has no inode limit).",
		"path")
	diskStuckDesc = desc("disk_stuck",
		"1 while statfs of a watched path has not returned within its timeout (a hung NFS or FUSE mount): its ratios are absent and it is not measured again until the call returns.",
		"path")
)

type diskCollector struct {
	source *disk.Source
}

func newDiskCollector(deps Deps) (Collector, error) {
	return &diskCollector{source: deps.Disk}, nil
}

// Update reads the disk source's last samples of every watched path (it
// never waits on a statfs); a path statfs cannot measure has no ratios
// (the disk source counts the error), and a stuck one says so. It fails
// only when no path could be measured.
func (c *diskCollector) Update(ch chan<- prometheus.Metric) error {
	if c.source == nil {
		return ErrNoData
	}
	usage := c.source.Usage()
	if len(usage) == 0 {
		return ErrNoData
	}
	var firstErr error
	measured := 0
	for _, u := range usage {
		stuck := 0.0
		if u.Stuck {
			stuck = 1
		}
		ch <- prometheus.MustNewConstMetric(diskStuckDesc, prometheus.GaugeValue, stuck, u.Path)
		if u.Err != nil {
			if firstErr == nil {
				firstErr = u.Err
			}
			continue
		}
		measured++
		ch <- prometheus.MustNewConstMetric(diskUsageRatioDesc, prometheus.GaugeValue, u.UsedRatio, u.Path)
		ch <- prometheus.MustNewConstMetric(diskInodesUsageRatioDesc, prometheus.GaugeValue, u.InodesUsedRatio, u.Path)
	}
	if measured == 0 {
		return fmt.Errorf("no watched path could be measured: %w", firstErr)
	}
	return nil
}
