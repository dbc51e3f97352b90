package bench_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/internal/bench"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// The real-Docker benchmarks start hundreds of containers, so they run
// only from scripts/bench (EXIT137_BENCH=docker). One op is the whole
// measurement; run them with -benchtime 1x.

const memoryLimit = 64 << 20

func needDocker(b *testing.B) {
	if os.Getenv("EXIT137_BENCH") != "docker" {
		b.Skip("starts hundreds of real containers; run scripts/bench")
	}
	testrig.Docker(b)
}

// startDockerExporter starts the exporter on the real daemon and tells
// scripts/bench its pid, so that a run killed by its timeout still stops it.
func startDockerExporter(b *testing.B, args ...string) (*testrig.Exporter, int) {
	e, pid := startExporter(b, args...)
	bench.TellScript(b, "exporter.pid", strconv.Itoa(pid))
	return e, pid
}

// waitKnown waits until the exporter shows the memory of every container
// by name.
func waitKnown(b *testing.B, e *testrig.Exporter, cs *bench.Containers) {
	names := map[string]bool{}
	for _, n := range cs.Names {
		names[n] = true
	}
	e.WaitFor(b, 3*time.Minute, fmt.Sprintf("the memory of %d containers by name", len(names)), func(m testrig.Metrics) bool {
		seen := 0
		for _, s := range m["exit137_container_memory_usage_bytes"].GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "name" && names[l.GetValue()] {
					seen++
				}
			}
		}
		return seen == len(names)
	})
}

// BenchmarkDockerHost: N real containers (EXIT137_BENCH_N, default 200,
// --memory 64m), and side by side in one run: the exporter's scrape, the
// floor, the list+inspect-every-container approach of Docker state
// exporters, `docker stats --no-stream`, and the exporter's idle CPU and
// RSS from /proc.
func BenchmarkDockerHost(b *testing.B) {
	needDocker(b)
	n := bench.EnvInt("EXIT137_BENCH_N", 200)
	rounds := bench.EnvInt("EXIT137_BENCH_SCRAPES", 20)
	statsRounds := bench.EnvInt("EXIT137_BENCH_STATS", 5)
	idle := bench.EnvDuration("EXIT137_BENCH_IDLE", time.Minute)

	e, pid := startDockerExporter(b)
	cs := bench.StartContainers(b, n, memoryLimit, bench.EnvDuration("EXIT137_BENCH_START_WITHIN", 10*time.Minute))
	waitKnown(b, e, cs)
	floor := realFloor(b, cs.IDs)
	time.Sleep(5 * time.Second) // the start events' work is done; now idle
	cpu, err := bench.IdleCPU(pid, idle)
	if err != nil {
		b.Fatal(err)
	}
	idleProc, err := bench.ReadProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	stats, err := bench.MeasureScrapes(e.URL+"/metrics", floor, rounds)
	if err != nil {
		b.Fatal(err)
	}
	proc, err := bench.ReadProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	inspect := inspectEvery(b, cs, rounds)
	dstats := dockerStats(b, cs, statsRounds)

	t := bench.NewTable(fmt.Sprintf("%d real containers (--memory 64m), %d scrapes each", len(cs.IDs), rounds))
	if cs.Stopped != "" {
		t.Row(fmt.Sprintf("NOTE: %d of %d started (%s)", len(cs.IDs), n, cs.Stopped))
	}
	t.Row("containers started in", cs.Took.Round(time.Second).String())
	scrapeRows(t, stats)
	t.Row("list + inspect every container (Docker API)", inspect.String(), bench.X(bench.Ratio(inspect.Median(), stats.Floor.Median())))
	t.Row(fmt.Sprintf("docker stats --no-stream (%d runs)", statsRounds), dstats.String(), bench.X(bench.Ratio(dstats.Median(), stats.Floor.Median())))
	t.Row("exporter idle CPU, no scrapes, over "+idle.String(), bench.PerMinute(cpu, idle))
	t.Row("exporter RSS idle / after the scrapes / peak", bench.MB(idleProc.RSS)+" / "+bench.MB(proc.RSS)+" / "+bench.MB(proc.PeakRSS))
	t.Row("inspect-every / docker stats, times the exporter's scrape (medians)",
		bench.X(bench.Ratio(inspect.Median(), stats.Identity.Median()))+" / "+bench.X(bench.Ratio(dstats.Median(), stats.Identity.Median())))
	t.Flush()
	reportScrape(b, stats)
	b.ReportMetric(float64(inspect.Median())/1e6, "inspect-every-ms")
	b.ReportMetric(float64(dstats.Median())/1e6, "docker-stats-ms")
	b.ReportMetric(cpu.Seconds()*float64(time.Minute)/float64(idle), "idle-cpu-s/min")
	b.ReportMetric(float64(proc.RSS)/1e6, "rss-MB")
}

// realFloor lists the cgroup files the exporter reads for the containers.
func realFloor(b *testing.B, ids []string) []string {
	fs, err := cgroupfs.NewFS(cgroupfs.DefaultMountPoint)
	if err != nil {
		b.Fatal(err)
	}
	cs := make([]cgroupfs.Container, len(ids))
	for i, id := range ids {
		path, err := fs.ContainerPath(id)
		if err != nil {
			b.Fatal(err)
		}
		cs[i] = cgroupfs.Container{ID: id, Path: path}
	}
	return bench.FloorPaths(fs, cs)
}

// inspectEvery times what Docker state exporters do on every scrape: list
// the containers, then inspect each one.
func inspectEvery(b *testing.B, cs *bench.Containers, rounds int) bench.Durations {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts := container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", bench.Label+"="+cs.Run))}
	var d bench.Durations
	for range rounds {
		start := time.Now()
		list, err := cs.Client.ContainerList(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range list {
			if _, err := cs.Client.ContainerInspect(ctx, c.ID); err != nil {
				b.Fatal(err)
			}
		}
		d = append(d, time.Since(start))
	}
	return d
}

// dockerStats times `docker stats --no-stream` for the same containers.
func dockerStats(b *testing.B, cs *bench.Containers, rounds int) bench.Durations {
	args := append([]string{"stats", "--no-stream", "--format", "{{.ID}}"}, cs.IDs...)
	var d bench.Durations
	for range rounds {
		start := time.Now()
		out, err := testrig.Try("docker", args...)
		if err != nil {
			b.Fatalf("docker stats: %v\n%s", err, out)
		}
		if got := len(strings.Fields(out)); got != len(cs.IDs) {
			b.Fatalf("docker stats printed %d containers, want %d", got, len(cs.IDs))
		}
		d = append(d, time.Since(start))
	}
	return d
}
