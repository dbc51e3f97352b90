package bench_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/internal/bench"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// BenchmarkExporter runs the real exporter binary over a generated cgroup
// tree, with a fake Docker daemon that names every container, and reports
// what the real-Docker benchmark reports at sizes no test host can run:
// scrape time over HTTP next to the floor, RSS with that many containers
// known, and idle CPU over EXIT137_BENCH_IDLE (default 1m) with no scrape.
// One op is the whole measurement.
//
//	go test -run '^$' -bench Exporter -benchtime 1x -timeout 30m ./internal/bench
func BenchmarkExporter(b *testing.B) {
	rounds := bench.EnvInt("EXIT137_BENCH_SCRAPES", 20)
	idle := bench.EnvDuration("EXIT137_BENCH_IDLE", time.Minute)
	for _, mode := range []cgroupfs.Mode{cgroupfs.ModeLegacy, cgroupfs.ModeUnified} {
		for _, n := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				tree, err := bench.NewTree(b.TempDir(), mode, n)
				if err != nil {
					b.Fatal(err)
				}
				e, pid := startExporter(b, "--cgroup.root="+tree.FS.Root(), "--docker.host="+bench.FakeDocker(b, tree.IDs))
				e.WaitFor(b, 2*time.Minute, fmt.Sprintf("%d containers named", n), func(m testrig.Metrics) bool {
					return len(m["exit137_container_info"].GetMetric()) == n
				})
				stats, err := bench.MeasureScrapes(e.URL+"/metrics", tree.Floor, rounds)
				if err != nil {
					b.Fatal(err)
				}
				busy, err := bench.ReadProc(pid)
				if err != nil {
					b.Fatal(err)
				}
				cpu, err := bench.IdleCPU(pid, idle)
				if err != nil {
					b.Fatal(err)
				}
				rested, err := bench.ReadProc(pid)
				if err != nil {
					b.Fatal(err)
				}
				t := bench.NewTable(fmt.Sprintf("exporter binary, generated %s tree, %d containers known (fake Docker daemon)", mode, n))
				scrapeRows(t, stats)
				t.Row("RSS after the scrapes / after idling / peak", bench.MB(busy.RSS)+" / "+bench.MB(rested.RSS)+" / "+bench.MB(rested.PeakRSS))
				t.Row("idle CPU, no scrapes, over "+idle.String(), bench.PerMinute(cpu, idle))
				t.Flush()
				reportScrape(b, stats)
				b.ReportMetric(float64(busy.RSS)/1e6, "rss-MB")
				b.ReportMetric(cpu.Seconds()*float64(time.Minute)/float64(idle), "idle-cpu-s/min")
			})
		}
	}
}

// startExporter starts the exporter binary as a user runs it: the
// profiler (and with it Go's heap sampling, which costs RSS of its own)
// only when EXIT137_BENCH_PPROF_DIR asks for profiles.
func startExporter(b testing.TB, args ...string) (*testrig.Exporter, int) {
	if os.Getenv("EXIT137_BENCH_PPROF_DIR") != "" {
		args = append([]string{"--web.enable-pprof"}, args...)
	}
	e := testrig.StartExporter(b, args...)
	return e, e.PID()
}

// scrapeRows prints the exporter's scrapes next to the floor.
func scrapeRows(t *bench.Table, s bench.ScrapeStats) {
	t.Row("measure", "min / median / max", "vs floor (medians)")
	t.Row("floor: os.ReadFile of the same cgroup files", s.Floor.String(), "1.00x")
	t.Row(fmt.Sprintf("exporter /metrics, text (%d kB)", s.Bytes/1000), s.Identity.String(), bench.X(bench.Ratio(s.Identity.Median(), s.Floor.Median())))
	t.Row(fmt.Sprintf("exporter /metrics, gzip (%d kB)", s.GzipBytes/1000), s.Gzip.String(), bench.X(bench.Ratio(s.Gzip.Median(), s.Floor.Median())))
}

func reportScrape(b *testing.B, s bench.ScrapeStats) {
	b.ReportMetric(float64(s.Identity.Median())/1e6, "scrape-ms")
	b.ReportMetric(float64(s.Floor.Median())/1e6, "floor-ms")
	b.ReportMetric(bench.Ratio(s.Identity.Median(), s.Floor.Median()), "x-floor")
	b.ReportMetric(bench.Ratio(s.Gzip.Median(), s.Floor.Median()), "x-floor-gzip")
}

// TestPprofFlag: /debug/pprof is off by default and on with its flag.
func TestPprofFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		args := []string{"--docker.disable", "--kmsg.path="}
		if on {
			args = append(args, "--web.enable-pprof")
		}
		e := testrig.StartExporter(t, args...)
		resp, err := http.Get(e.URL + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != on {
			t.Errorf("--web.enable-pprof=%v: /debug/pprof/cmdline answers %s", on, resp.Status)
		}
	}
}
