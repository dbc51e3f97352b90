package disk

import (
	"errors"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// mountTmpfs mounts a tmpfs with opts on a fresh directory and unmounts
// it in Cleanup. Without the privilege to mount it skips, or fails in CI
// (CI=true).
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		testrig.Need(t, "mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func fill(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPressureOnFullTmpfs(t *testing.T) {
	full := mountTmpfs(t, "size=1m")
	empty := mountTmpfs(t, "size=1m")
	fill(t, filepath.Join(full, "blob"), 1000<<10) // 250 of 256 pages

	health := source.NewRegistry().Source("disk")
	s := New([]string{full, empty}, 0.95, health, nil)
	now := time.Unix(1700000000, 0)
	ev := s.Pressure(now)
	if len(ev) != 1 {
		t.Fatalf("Pressure = %+v, want one evidence", ev)
	}
	e := ev[0]
	if e.Kind != attribution.KindDiskPressure || e.Source != "disk" || e.Container != "" || !e.Time.Equal(now) {
		t.Errorf("evidence %+v", e)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(full) + ` 9[5-9]\.\d% used \(threshold 95%\)$`).MatchString(e.Detail) {
		t.Errorf("detail %q", e.Detail)
	}

	usage := s.Usage()
	if len(usage) != 2 || usage[0].Path != full || usage[1].Path != empty {
		t.Fatalf("Usage = %+v", usage)
	}
	if u := usage[0]; u.Err != nil || u.UsedRatio < 0.95 || u.UsedRatio > 1 || u.InodesUsedRatio <= 0 || u.InodesUsedRatio >= 0.95 {
		t.Errorf("full: %+v", u)
	}
	if u := usage[1]; u.Err != nil || u.UsedRatio != 0 {
		t.Errorf("empty: %+v", u)
	}
	if !health.Up() || health.Errors() != 0 || health.Events() != 1 {
		t.Errorf("health: up %v errors %d events %d", health.Up(), health.Errors(), health.Events())
	}

	// Freed space: no more pressure.
	if err := os.Remove(filepath.Join(full, "blob")); err != nil {
		t.Fatal(err)
	}
	s.Measure() // what Run does every Interval
	if ev := s.Pressure(now); len(ev) != 0 {
		t.Errorf("Pressure after rm = %+v", ev)
	}
}

func TestUsageMatchesDf(t *testing.T) {
	dir := mountTmpfs(t, "size=1m")
	fill(t, filepath.Join(dir, "half"), 512<<10)
	u := New([]string{dir}, 0.95, nil, nil).Usage()[0]
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	// tmpfs has no reserved blocks: used/(used+avail) = used/blocks.
	want := float64(st.Blocks-st.Bfree) / float64(st.Blocks)
	if u.Err != nil || u.UsedRatio != want || u.UsedRatio < 0.45 || u.UsedRatio > 0.55 {
		t.Errorf("usage %+v, want ratio %v", u, want)
	}
}

func TestInodePressure(t *testing.T) {
	dir := mountTmpfs(t, "size=1m,nr_inodes=20")
	for i := range 19 {
		fill(t, filepath.Join(dir, "f"+strconv.Itoa(i)), 0)
	}
	s := New(nil, 95, nil, nil) // a percentage works too
	s.AddPath(dir)
	u := s.Usage()[0]
	if u.Err != nil || u.InodesUsedRatio < 0.95 || u.UsedRatio >= 0.95 {
		t.Fatalf("usage %+v", u)
	}
	ev := s.Pressure(time.Now())
	if len(ev) != 1 || !regexp.MustCompile(`^`+regexp.QuoteMeta(dir)+` inodes 100\.0% used \(threshold 95%\)$`).MatchString(ev[0].Detail) {
		t.Errorf("Pressure = %+v", ev)
	}

	// Space and inodes both.
	fill(t, filepath.Join(dir, "f0"), 1000<<10)
	s.Measure()
	ev = s.Pressure(time.Now())
	if len(ev) != 1 || !regexp.MustCompile(` 9\d\.\d% used, inodes 100\.0% used \(threshold 95%\)$`).MatchString(ev[0].Detail) {
		t.Errorf("Pressure = %+v", ev)
	}
}

func TestErroredPathsAndHealth(t *testing.T) {
	good := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing")
	health := source.NewRegistry().Source("disk")
	s := New([]string{missing}, 0.9, health, nil)

	u := s.Usage()
	if len(u) != 1 || !errors.Is(u[0].Err, unix.ENOENT) || !strings.Contains(u[0].Err.Error(), missing) {
		t.Fatalf("Usage = %+v", u)
	}
	if health.Up() || health.Errors() != 1 {
		t.Errorf("up %v errors %d, want down with 1 error", health.Up(), health.Errors())
	}
	// The same error again is not counted again.
	s.Usage()
	s.Pressure(time.Now())
	if health.Errors() != 1 {
		t.Errorf("errors = %d after repeats, want 1", health.Errors())
	}

	// Another path works: up, and the broken one is still reported.
	s.AddPath(good + "/")
	s.AddPath(good)
	s.AddPath("")
	if got := s.Paths(); len(got) != 2 || got[1] != good {
		t.Fatalf("Paths = %v", got)
	}
	u = s.Usage() // the new path is measured, the other is fresh
	if len(u) != 2 || u[0].Err == nil || u[1].Err != nil {
		t.Fatalf("Usage = %+v", u)
	}
	if !health.Up() {
		t.Error("down while a path works")
	}

	// The path appears (error cleared), then goes away (a new error).
	if err := os.Mkdir(missing, 0o755); err != nil {
		t.Fatal(err)
	}
	if u := s.Measure(); u[0].Err != nil {
		t.Fatalf("Usage = %+v", u)
	}
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	s.Measure()
	if health.Errors() != 2 {
		t.Errorf("errors = %d, want 2", health.Errors())
	}
}

func TestThreshold(t *testing.T) {
	for in, want := range map[float64]float64{0.9: 0.9, 90: 0.9, 0: DefaultThreshold, -1: DefaultThreshold, 1: 1} {
		if got := New(nil, in, nil, nil).Threshold(); got != want {
			t.Errorf("New(threshold %v).Threshold() = %v, want %v", in, got, want)
		}
	}
	if got := New(nil, 0.955, nil, nil); got.Threshold() != 0.955 {
		t.Error(got.Threshold())
	}
}

func TestNoPaths(t *testing.T) {
	health := source.NewRegistry().Source("disk")
	s := New(nil, 0.95, health, nil)
	if u := s.Usage(); len(u) != 0 {
		t.Errorf("Usage = %+v", u)
	}
	if ev := s.Pressure(time.Now()); ev != nil {
		t.Errorf("Pressure = %+v", ev)
	}
	if health.Up() {
		t.Error("up without paths")
	}
}
