package collector

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// Containers of the fixture trees that Docker's layouts do not hold (see
// cgroupfs/testdata/README.md), and their inits' pids in
// cgroupfs/testdata/proc.
const (
	customV1 = "415dc894c70c809aed2c3ab0d3db6fdec28b3be2cd07ebbe6e1c290760d4dabb" // memory/mygroup/<id>, pid 103
	podmanV1 = "e1fe49b85341d3c51265904af9b2068b4e34a48c38516444f715e6e13bd398b7" // memory/libpod_parent/libpod-<id>, pid 104
	customV2 = "686125134d468d4054daf7effe01d36ee48d5d9d8958b7ec9f2738988b5ccab2" // my.slice/docker-<id>.scope, pid 202
	podmanV2 = "1766c2c3e01894733c0b6677fc33ee187a67d6e5dd45d94888ab895dc097ff0e" // machine.slice/libpod-<id>.scope, pid 203
)

// memoryFixture is a memory collector over a copy of a fixture tree and
// of the fixture /proc, so that a test can change both.
func memoryFixture(t *testing.T, tree string) (*memoryCollector, *tracker.Tracker, string, string) {
	t.Helper()
	root, proc := t.TempDir(), t.TempDir()
	copyTree(t, filepath.Join(testrig.RepoRoot(), "cgroupfs", "testdata", tree), root)
	copyTree(t, filepath.Join(testrig.RepoRoot(), "cgroupfs", "testdata", "proc"), proc)
	fs, err := cgroupfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	tr := tracker.New(tracker.Config{Settle: time.Second, Window: time.Minute, Retention: time.Hour}, testrig.Logger(t))
	c := &memoryCollector{fs: &fs, tracker: tr, health: source.NewRegistry().Source("cgroupfs"), logger: testrig.Logger(t), procRoot: proc, ids: &identities{}}
	return c, tr, fs.MemoryRoot(), proc
}

func run(tr *tracker.Tracker, id, name string, pid int) {
	tr.Upsert(tracker.Meta{ID: id, Name: name, Image: "img", Pid: pid})
	tr.Started(id, time.Now())
}

// usage returns the exit137_container_memory_usage_bytes series, by name.
func usage(t *testing.T, c Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(kmsgDiskPromCollector{c})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "exit137_container_memory_usage_bytes" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "name" {
					out[l.GetValue()] = m.Gauge.GetValue()
				}
			}
		}
	}
	return out
}

func TestMemoryFindsContainersByTheirInitsPid(t *testing.T) {
	for _, tt := range []struct {
		tree           string
		custom, podman string
		pids           [2]int
		want           map[string]float64 // usage by name
	}{
		// The custom-parent container holds b8dc0741e7bb's bytes, the
		// podman one 8a62eeb9281e's (v1); 54adf8a15c86's and
		// d28cf2b1cf5d's (v2).
		{"v1-cgroupfs", customV1, podmanV1, [2]int{103, 104},
			map[string]float64{"custom": 30322688, "podman": 127533056}},
		{"v2-systemd", customV2, podmanV2, [2]int{202, 203},
			map[string]float64{"custom": 61767680, "podman": 17727488}},
	} {
		t.Run(tt.tree, func(t *testing.T) {
			c, tr, _, proc := memoryFixture(t, tt.tree)
			before := usage(t, c)
			if _, ok := before["custom"]; ok || len(before) != 1 {
				t.Fatalf("before the tracker knows them: %v, want only the scan's (unnamed)", before)
			}
			run(tr, tt.custom, "custom", tt.pids[0])
			run(tr, tt.podman, "podman", tt.pids[1])
			got := usage(t, c)
			// The scan's containers carry no name here: the sum checks them.
			if got["custom"] != tt.want["custom"] || got["podman"] != tt.want["podman"] {
				t.Errorf("usage %v, want %v", got, tt.want)
			}
			if n := len(c.byPID); n != 2 {
				t.Errorf("%d cached paths, want 2", n)
			}

			// Cached: a second scrape reads no /proc (the files are gone).
			if err := os.RemoveAll(filepath.Join(proc, "103")); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(proc, "202")); err != nil {
				t.Fatal(err)
			}
			if got := usage(t, c); got["custom"] != tt.want["custom"] {
				t.Errorf("second scrape: %v, want the cached path read", got)
			}
			if c.health.Errors() != 0 {
				t.Errorf("%d errors", c.health.Errors())
			}
		})
	}
}

func TestMemoryByPidInvalidation(t *testing.T) {
	c, tr, memRoot, proc := memoryFixture(t, "v1-cgroupfs")
	run(tr, customV1, "custom", 103)
	if got := usage(t, c); got["custom"] == 0 {
		t.Fatalf("usage %v, want custom", got)
	}

	// The container restarts: a new init pid (106, a host process's
	// cgroup: the pid does not name the container) is read afresh and
	// gives nothing, without an error.
	run(tr, customV1, "custom", 106)
	if got := usage(t, c); got["custom"] != 0 {
		t.Errorf("usage %v with a pid of another cgroup, want no custom", got)
	}
	if p := c.byPID[customV1]; p == nil || p.pid != 106 || p.path != "" {
		t.Errorf("cache %+v, want a failure for pid 106", p)
	}
	run(tr, customV1, "custom", 103)
	if got := usage(t, c); got["custom"] == 0 {
		t.Errorf("usage %v back on pid 103, want custom", got)
	}

	// The path vanishes (the container died before the tracker knew):
	// resolved again, the init is gone (a zombie) too: nothing, and not
	// tried again until pidRetry.
	if err := os.Rename(filepath.Join(memRoot, "mygroup"), filepath.Join(memRoot, "gone")); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(proc, "105", "cgroup"), filepath.Join(proc, "103", "cgroup"))
	copyFile(t, filepath.Join(proc, "105", "stat"), filepath.Join(proc, "103", "stat"))
	if got := usage(t, c); got["custom"] != 0 {
		t.Errorf("usage %v after the cgroup vanished, want no custom", got)
	}
	if p := c.byPID[customV1]; p == nil || p.path != "" || !p.retry.After(time.Now()) {
		t.Errorf("cache %+v, want a failure to retry later", p)
	}
	if c.health.Errors() != 0 {
		t.Errorf("%d errors; a vanished process is not one", c.health.Errors())
	}

	// A container the tracker no longer knows as running is dropped.
	c.tracker = tracker.New(tracker.Config{Settle: time.Second, Window: time.Minute, Retention: time.Hour}, testrig.Logger(t))
	usage(t, c)
	if len(c.byPID) != 0 {
		t.Errorf("cache %v after the container went, want empty", c.byPID)
	}
}

// TestMemoryByPidError counts a resolution that fails for a reason other
// than a gone process once per pid, not once per scrape.
func TestMemoryByPidError(t *testing.T) {
	c, tr, _, _ := memoryFixture(t, "v2-systemd")
	run(tr, customV2, "custom", 205) // outside the cgroup namespace
	for range 3 {
		usage(t, c)
	}
	if n := c.health.Errors(); n != 1 {
		t.Errorf("%d errors, want 1", n)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		copyFile(t, p, filepath.Join(to, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
