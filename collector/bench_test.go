package collector_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/internal/bench"
)

// BenchmarkScrape is the full /metrics scrape (the handler as the
// exporter builds it, every collector) over a generated cgroup tree whose
// containers the tracker knows by name. Each op is one scrape; after
// each, untimed, the floor (os.ReadFile of the same cgroup files) and the
// first pass's handler (every series gathered by the registry, encoded
// by promhttp: "registry-…") are each run and timed on their own, so
// "x-floor" and "registry-x-floor" compare wall times under the same load
// (the target is x-floor ≤ 1.2); "x-floor-cpu" compares CPU times (the
// collectors run in parallel, the floor on one core).
//
//	go test -run '^$' -bench Scrape -benchtime 20x ./collector
func BenchmarkScrape(b *testing.B) {
	for _, mode := range []cgroupfs.Mode{cgroupfs.ModeLegacy, cgroupfs.ModeUnified} {
		for _, n := range []int{100, 1000, 5000} {
			dir, err := os.MkdirTemp("", "exit137-bench-")
			if err != nil {
				b.Fatal(err)
			}
			var host *bench.Host
			for _, enc := range []string{bench.Identity, bench.Gzip} {
				b.Run(fmt.Sprintf("%s/%d/%s", modeName(mode), n, enc), func(b *testing.B) {
					if host == nil { // generated once, for the runs that need it
						if host, err = bench.NewHost(dir, mode, n); err != nil {
							b.Fatal(err)
						}
					}
					benchScrape(b, host, enc)
				})
			}
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func benchScrape(b *testing.B, host *bench.Host, encoding string) {
	n := len(host.Containers)
	req := bench.ScrapeRequest("/metrics", encoding)
	w := &bench.Discard{}
	scrapeWith := func(h http.Handler) func() {
		return func() {
			w.Reset()
			h.ServeHTTP(w, req)
			if w.Status != 0 && w.Status != http.StatusOK {
				b.Fatalf("scrape: status %d", w.Status)
			}
		}
	}
	scrape, registry := scrapeWith(host.Handler), scrapeWith(host.Registry)
	readFloor := func() {
		if err := bench.ReadFloor(host.Floor); err != nil {
			b.Fatal(err)
		}
	}
	// Warm the page cache, the label caches and the pools.
	scrape()
	registry()
	readFloor()
	allocs := testing.AllocsPerRun(3, scrape)
	regAllocs := testing.AllocsPerRun(3, registry)

	// timed runs f untimed and adds its wall and CPU time.
	timed := func(f func(), wall, cpu *time.Duration) {
		start, c := time.Now(), bench.SelfCPU()
		f()
		*wall, *cpu = *wall+time.Since(start), *cpu+bench.SelfCPU()-c
	}
	b.ReportAllocs()
	b.ResetTimer()
	var floor, cpu, floorCPU, reg, regCPU time.Duration
	var served int // bytes of the exporter's scrape, not of the registry's after it
	for i := 0; i < b.N; i++ {
		c := bench.SelfCPU()
		scrape()
		b.StopTimer()
		cpu += bench.SelfCPU() - c
		served = w.Bytes
		timed(readFloor, &floor, &floorCPU)
		timed(registry, &reg, &regCPU)
		b.StartTimer()
	}
	elapsed := b.Elapsed()
	b.ReportMetric(bench.Ratio(elapsed, floor), "x-floor")
	b.ReportMetric(bench.Ratio(cpu, floorCPU), "x-floor-cpu")
	b.ReportMetric(bench.Ratio(reg, floor), "registry-x-floor")
	b.ReportMetric(bench.Ratio(regCPU, floorCPU), "registry-x-floor-cpu")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*n), "ns/container")
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N*n), "floor-ns/container")
	b.ReportMetric(allocs/float64(n), "allocs/container")
	b.ReportMetric(regAllocs/float64(n), "registry-allocs/container")
	b.ReportMetric(float64(served), "bytes/scrape")
}

func modeName(m cgroupfs.Mode) string {
	if m.V2() {
		return "v2"
	}
	return "v1"
}
