package collector

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// BenchmarkMemoryUpdate is one memory collector Update over 1000
// running containers the tracker knows, all in Docker's layout ("scan"),
// or a tenth of them under a custom cgroup parent, found from their
// inits' pids and then cached ("pid"): the cached ones cost what the
// scanned ones do, and no scrape reads /proc after the first.
//
//	go test -run '^$' -bench MemoryUpdate -benchmem ./collector
func BenchmarkMemoryUpdate(b *testing.B) {
	const n = 1000
	for _, byPID := range []int{0, n / 10} {
		name := "scan"
		if byPID > 0 {
			name = "pid"
		}
		b.Run(name, func(b *testing.B) {
			dir, proc := b.TempDir(), b.TempDir()
			ids, err := cgroupfs.GenerateTree(dir, cgroupfs.ModeLegacy, n)
			if err != nil {
				b.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(dir, "memory", "mygroup"), 0o755); err != nil {
				b.Fatal(err)
			}
			logger := slog.New(slog.DiscardHandler)
			tr := tracker.New(tracker.Config{Settle: time.Second, Window: time.Minute, Retention: time.Hour}, logger)
			for i, id := range ids {
				pid := 1000 + i
				tr.Upsert(tracker.Meta{ID: id, Name: "bench-" + strconv.Itoa(i), Image: "img", Pid: pid})
				tr.Started(id, time.Now())
				if i >= byPID {
					continue
				}
				if err := os.Rename(filepath.Join(dir, "memory", "docker", id), filepath.Join(dir, "memory", "mygroup", id)); err != nil {
					b.Fatal(err)
				}
				p := filepath.Join(proc, strconv.Itoa(pid))
				if err := os.MkdirAll(p, 0o755); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(p, "cgroup"), []byte("4:memory:/mygroup/"+id+"\n0::/\n"), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			fs, err := cgroupfs.NewFS(dir)
			if err != nil {
				b.Fatal(err)
			}
			c := &memoryCollector{fs: &fs, tracker: tr, health: source.NewRegistry().Source("cgroupfs"), logger: logger, procRoot: proc, ids: &identities{}}
			ch := make(chan prometheus.Metric, 8*n)
			update := func() {
				if err := c.Update(ch); err != nil {
					b.Fatal(err)
				}
				if got := len(ch); got < 5*n {
					b.Fatalf("%d series, want at least %d", got, 5*n)
				}
				for len(ch) > 0 {
					<-ch
				}
			}
			update() // resolve, warm the page cache
			if err := os.RemoveAll(proc); err != nil {
				b.Fatal(err) // later scrapes must not need /proc
			}
			b.ReportAllocs()
			for b.Loop() {
				update()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/container")
		})
	}
}
