package collector

import (
	"errors"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/source/disk"
)

func TestDiskCollector(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,nr_inodes=4"); err != nil {
		testrig.Need(t, "mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	// Half the 256 pages, and the root plus one file of 4 inodes.
	if err := os.WriteFile(filepath.Join(dir, "half"), make([]byte, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	src := disk.New([]string{dir, missing}, 0.95, nil, nil)
	c, err := newDiskCollector(Deps{Disk: src})
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP exit137_disk_inodes_usage_ratio Used fraction of the inodes of the filesystem holding a watched path (0 where the filesystem has no inode limit).
# TYPE exit137_disk_inodes_usage_ratio gauge
exit137_disk_inodes_usage_ratio{path="DIR"} 0.5
# HELP exit137_disk_stuck 1 while statfs of a watched path has not returned within its timeout (a hung NFS or FUSE mount): its ratios are absent and it is not measured again until the call returns.
# TYPE exit137_disk_stuck gauge
exit137_disk_stuck{path="DIR"} 0
exit137_disk_stuck{path="MISSING"} 0
# HELP exit137_disk_usage_ratio Used fraction of the filesystem holding a watched path, as df computes Use%.
# TYPE exit137_disk_usage_ratio gauge
exit137_disk_usage_ratio{path="DIR"} 0.5
`
	if err := testutil.CollectAndCompare(kmsgDiskPromCollector{c}, strings.NewReader(strings.NewReplacer("DIR", dir, "MISSING", missing).Replace(want))); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(kmsgDiskPromCollector{c}); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestDiskCollectorNoData(t *testing.T) {
	ch := make(chan prometheus.Metric, 10)
	c, _ := newDiskCollector(Deps{})
	if err := c.Update(ch); !errors.Is(err, ErrNoData) {
		t.Errorf("nil source: Update = %v, want ErrNoData", err)
	}
	c, _ = newDiskCollector(Deps{Disk: disk.New(nil, 0.95, nil, nil)})
	if err := c.Update(ch); !errors.Is(err, ErrNoData) {
		t.Errorf("no paths: Update = %v, want ErrNoData", err)
	}
	c, _ = newDiskCollector(Deps{Disk: disk.New([]string{filepath.Join(t.TempDir(), "missing")}, 0.95, nil, nil)})
	if err := c.Update(ch); err == nil || errors.Is(err, ErrNoData) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("all paths broken: Update = %v, want the statfs error", err)
	}
	if len(ch) != 1 { // exit137_disk_stuck 0 of the broken path
		t.Errorf("%d metrics sent, want the stuck gauge alone", len(ch))
	}
}
