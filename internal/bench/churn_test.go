package bench_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/exit137-exporter/exit137-exporter/internal/bench"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// BenchmarkDockerChurn: container lifecycles (create, start, exit, remove)
// at EXIT137_BENCH_RATE per minute (default 1,000) for EXIT137_BENCH_CHURN
// (default 5m), each a new name, as one-off jobs and --rm containers make
// them: most exit by themselves (0 or 1 after 200 ms), every fifth is
// killed with docker kill (137). The exporter runs with a short
// --exits.retention (EXIT137_BENCH_RETENTION, default 1m) and is scraped
// every 15 s, as Prometheus would, throughout. Reported: lifecycles done
// and the rate reached, exits counted, exporter CPU per lifecycle, RSS at
// the start, at the end of the churn and after the retention has passed
// and the run's exit series are gone. EXIT137_BENCH_CHURN_PARALLEL (8)
// bounds the lifecycles in flight.
func BenchmarkDockerChurn(b *testing.B) {
	needDocker(b)
	rate := bench.EnvInt("EXIT137_BENCH_RATE", 1000)
	churn := bench.EnvDuration("EXIT137_BENCH_CHURN", 5*time.Minute)
	retention := bench.EnvDuration("EXIT137_BENCH_RETENTION", time.Minute)
	e, pid := startDockerExporter(b, "--exits.retention="+retention.String())
	c := bench.DockerClient(b)
	prefix := testrig.UniqueName(b, "bench")
	run := strings.TrimPrefix(prefix, "e137-bench-")
	bench.TellScript(b, "run", run)
	b.Cleanup(func() { bench.RemoveRun(b, c, run) })

	// Settle: a few scrapes, then the baseline.
	for range 3 {
		e.Scrape(b)
		time.Sleep(5 * time.Second)
	}
	before := e.Scrape(b)
	hostBefore := before.Sum("exit137_exits_total", nil)
	start, err := bench.ReadProc(pid)
	if err != nil {
		b.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), churn+5*time.Minute)
	defer cancel()
	stopScrapes := scrapeEvery(e, 15*time.Second)
	var peak atomic.Int64
	stopSampling := sampleRSS(pid, &peak)

	var done, failed, behind atomic.Int64
	var firstErr sync.Once
	// dockerd's parallelism, not ours, bounds the rate; past a few
	// lifecycles in flight on a small host dockerd only thrashes.
	inFlight := make(chan struct{}, bench.EnvInt("EXIT137_BENCH_CHURN_PARALLEL", 8))
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Minute / time.Duration(rate))
	begin := time.Now()
	for i := 0; time.Since(begin) < churn; i++ {
		<-tick.C
		select {
		case inFlight <- struct{}{}:
		default:
			behind.Add(1) // dockerd cannot keep up: this lifecycle is skipped
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-inFlight }()
			if err := lifecycle(ctx, c, fmt.Sprintf("%s-c%06d", prefix, i), run, i); err != nil {
				failed.Add(1)
				firstErr.Do(func() { fmt.Fprintf(os.Stderr, "bench: lifecycle %d: %v\n", i, err) })
				return
			}
			if n := done.Add(1); n%500 == 0 {
				fmt.Fprintf(os.Stderr, "bench: %d lifecycles (%s)\n", n, time.Since(begin).Round(time.Second))
			}
		}(i)
	}
	tick.Stop()
	wg.Wait()
	took := time.Since(begin)
	time.Sleep(3 * time.Second) // the last settle
	end, err := bench.ReadProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	endMetrics := e.Scrape(b)
	counted := endMetrics.Sum("exit137_exits_total", nil) - hostBefore
	namesAtEnd := len(runSeries(endMetrics, prefix))

	// After the retention: the run's exit series expire on a scrape once
	// it has passed since each name's removal.
	expireBy := time.Now().Add(retention + 2*time.Minute)
	var left int
	for {
		left = len(runSeries(e.Scrape(b), prefix))
		if left == 0 || time.Now().After(expireBy) {
			break
		}
		time.Sleep(15 * time.Second)
	}
	time.Sleep(30 * time.Second) // scrapes go on; the heap settles
	afterMetrics := e.Scrape(b)
	after, err := bench.ReadProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	stopScrapes()
	stopSampling()

	n := done.Load()
	t := bench.NewTable(fmt.Sprintf("churn: %d lifecycles/min asked for %s, --exits.retention=%s, scraped every 15s", rate, churn, retention))
	t.Row("lifecycles done / failed / skipped (dockerd behind)", fmt.Sprintf("%d / %d / %d", n, failed.Load(), behind.Load()))
	t.Row("rate reached", fmt.Sprintf("%.0f per minute", float64(n)/took.Minutes()))
	t.Row("exits counted (exit137_exits_total delta)", fmt.Sprintf("%.0f of %d", counted, n))
	t.Row("exporter CPU during the churn / per lifecycle", fmt.Sprintf("%s / %.2f ms", end.CPU-start.CPU, perLifecycle(end.CPU-start.CPU, n)))
	t.Row("exit series of the run's names at the end / after the retention", fmt.Sprintf("%d / %d", namesAtEnd, left))
	t.Row("exporter RSS start / end of churn / peak / after the retention", fmt.Sprintf("%s / %s / %s / %s",
		bench.MB(start.RSS), bench.MB(end.RSS), bench.MB(max(peak.Load(), end.PeakRSS)), bench.MB(after.RSS)))
	t.Row("RSS anonymous / file-backed, start and after the retention", fmt.Sprintf("%s / %s, %s / %s",
		bench.MB(start.AnonRSS), bench.MB(start.FileRSS), bench.MB(after.AnonRSS), bench.MB(after.FileRSS)))
	t.Row("Go heap in use start / after the retention (go_memstats_heap_inuse_bytes)", fmt.Sprintf("%s / %s",
		bench.MB(heapInuse(before)), bench.MB(heapInuse(afterMetrics))))
	t.Row("RSS after the retention − start", fmt.Sprintf("%+.1f MB (target within 2 MB)", float64(after.RSS-start.RSS)/1e6))
	t.Flush()
	b.ReportMetric(float64(n)/took.Minutes(), "lifecycles/min")
	b.ReportMetric(perLifecycle(end.CPU-start.CPU, n), "cpu-ms/lifecycle")
	b.ReportMetric(float64(start.RSS)/1e6, "rss-start-MB")
	b.ReportMetric(float64(end.RSS)/1e6, "rss-end-MB")
	b.ReportMetric(float64(after.RSS)/1e6, "rss-after-retention-MB")
}

func heapInuse(m testrig.Metrics) int64 {
	v, _ := m.Value("go_memstats_heap_inuse_bytes", nil)
	return int64(v)
}

// lifecycle creates, starts and removes one container; it exits by
// itself, or (every fifth) is killed.
func lifecycle(ctx context.Context, c *client.Client, name, run string, i int) error {
	cmd := []string{"-sleep", "200ms", "-exit", fmt.Sprint(i % 2)}
	kill := i%5 == 4
	if kill {
		cmd = []string{"-exit", "-1"} // sleeps until killed
	}
	resp, err := c.ContainerCreate(ctx,
		&container.Config{Image: testrig.HelperImage, Cmd: cmd, Labels: map[string]string{bench.Label: run}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	if err != nil {
		return err
	}
	defer c.ContainerRemove(context.WithoutCancel(ctx), resp.ID, container.RemoveOptions{Force: true})
	wait, errs := c.ContainerWait(ctx, resp.ID, container.WaitConditionNextExit)
	if err := c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return err
	}
	if kill {
		if err := c.ContainerKill(ctx, resp.ID, "KILL"); err != nil {
			return err
		}
	}
	select {
	case <-wait:
	case err := <-errs:
		return err
	}
	return c.ContainerRemove(ctx, resp.ID, container.RemoveOptions{})
}

// runSeries lists the run's container_exits_total series.
func runSeries(m testrig.Metrics, prefix string) []string {
	var out []string
	for _, s := range m.Series("exit137_container_exits_total", nil) {
		if strings.Contains(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// scrapeEvery scrapes the exporter every d until the returned function is
// called.
func scrapeEvery(e *testrig.Exporter, d time.Duration) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if resp, err := http.Get(e.URL + "/metrics"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}()
	return func() { close(stop); <-done }
}

// sampleRSS keeps the highest RSS seen every second in peak.
func sampleRSS(pid int, peak *atomic.Int64) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if p, err := bench.ReadProc(pid); err == nil && p.RSS > peak.Load() {
				peak.Store(p.RSS)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return func() { close(stop); <-done }
}

func perLifecycle(cpu time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(cpu.Milliseconds()) / float64(n)
}
