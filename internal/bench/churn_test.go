package bench_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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
// and the run's exit series are gone, and its level (rssLevel) before the
// churn and after the retention. EXIT137_BENCH_CHURN_PARALLEL (8)
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

	var r churnRun
	r.measureStart(b, e, pid)
	hostBefore := r.before.Sum("exit137_exits_total", nil)

	ctx, cancel := context.WithTimeout(context.Background(), churn+5*time.Minute)
	defer cancel()
	stopScrapes := scrapeEvery(e, 15*time.Second, nil)
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
	r.n, r.took = done.Load(), time.Since(begin)
	r.measureEnd(b, e, pid, prefix, hostBefore, retention)
	stopScrapes()
	stopSampling()
	r.peak = max(peak.Load(), r.end.PeakRSS)

	t := bench.NewTable(fmt.Sprintf("churn: %d lifecycles/min asked for %s, --exits.retention=%s, scraped every 15s", rate, churn, retention))
	t.Row("lifecycles done / failed / skipped (dockerd behind)", fmt.Sprintf("%d / %d / %d", r.n, failed.Load(), behind.Load()))
	r.rows(t)
	t.Flush()
	r.report(b)
}

// churnRun is what a churn benchmark measured of the exporter: at the
// start, at the end of the churn and after the retention.
type churnRun struct {
	n    int64         // lifecycles done
	took time.Duration // the churn's wall time
	// before is the baseline scrape, start the process then, and cpuFrom
	// the process once the start's level was read.
	before                 testrig.Metrics
	start, cpuFrom         bench.Proc
	end, after             bench.Proc
	startLevel, afterLevel level // rssLevel before the churn and after the retention
	peak                   int64 // the highest RSS seen
	endMetrics             testrig.Metrics
	afterMetrics           testrig.Metrics
	counted                float64 // exit137_exits_total since the baseline
	// namesAtEnd and namesLeft are the exit series of the run's names at
	// the end and after the retention.
	namesAtEnd, namesLeft int
}

// measureEnd measures the exporter once the churn is done: after a last
// settle, then after the retention, when the run's exit series expire on
// a scrape once it has passed since each name's removal, and the heap
// has settled.
func (r *churnRun) measureEnd(b *testing.B, e *testrig.Exporter, pid int, prefix string, hostBefore float64, retention time.Duration) {
	time.Sleep(3 * time.Second) // the last settle
	var err error
	if r.end, err = bench.ReadProc(pid); err != nil {
		b.Fatal(err)
	}
	r.endMetrics = e.Scrape(b)
	r.counted = r.endMetrics.Sum("exit137_exits_total", nil) - hostBefore
	r.namesAtEnd = len(runSeries(r.endMetrics, prefix))

	expireBy := time.Now().Add(retention + 2*time.Minute)
	for {
		r.namesLeft = len(runSeries(e.Scrape(b), prefix))
		if r.namesLeft == 0 || time.Now().After(expireBy) {
			break
		}
		time.Sleep(15 * time.Second)
	}
	time.Sleep(30 * time.Second) // scrapes go on; the heap settles
	r.afterMetrics = e.Scrape(b)
	if r.after, err = bench.ReadProc(pid); err != nil {
		b.Fatal(err)
	}
	r.afterLevel = rssLevel(b, pid)
}

// rows prints what every churn benchmark reports, after its own first
// rows.
func (r *churnRun) rows(t *bench.Table) {
	t.Row("rate reached", fmt.Sprintf("%.0f per minute", float64(r.n)/r.took.Minutes()))
	t.Row("exits counted (exit137_exits_total delta)", fmt.Sprintf("%.0f of %d", r.counted, r.n))
	t.Row("exporter CPU during the churn / per lifecycle", fmt.Sprintf("%s / %.2f ms", r.end.CPU-r.cpuFrom.CPU, perLifecycle(r.end.CPU-r.cpuFrom.CPU, r.n)))
	t.Row("exit series of the run's names at the end / after the retention", fmt.Sprintf("%d / %d", r.namesAtEnd, r.namesLeft))
	t.Row("exporter RSS start / end of churn / peak / after the retention", fmt.Sprintf("%s / %s / %s / %s",
		bench.MB(r.start.RSS), bench.MB(r.end.RSS), bench.MB(r.peak), bench.MB(r.after.RSS)))
	t.Row("RSS anonymous / file-backed, start and after the retention", fmt.Sprintf("%s / %s, %s / %s",
		bench.MB(r.start.AnonRSS), bench.MB(r.start.FileRSS), bench.MB(r.after.AnonRSS), bench.MB(r.after.FileRSS)))
	t.Row("Go heap in use start / after the retention (go_memstats_heap_inuse_bytes)", fmt.Sprintf("%s / %s",
		bench.MB(heapInuse(r.before)), bench.MB(heapInuse(r.afterMetrics))))
	t.Row("RSS after the retention − start, one read each", fmt.Sprintf("%+.1f MB", float64(r.after.RSS-r.start.RSS)/1e6))
	t.Row("RSS over a minute, min / median / max: start", r.startLevel.String())
	t.Row("RSS over a minute, min / median / max: after the retention", r.afterLevel.String())
	t.Row("RSS over a minute, median anonymous / file-backed: start, after the retention", fmt.Sprintf("%s / %s, %s / %s",
		bench.MB(r.startLevel.anonMedian), bench.MB(r.startLevel.fileMedian), bench.MB(r.afterLevel.anonMedian), bench.MB(r.afterLevel.fileMedian)))
	t.Row("RSS after the retention − start: min, median", fmt.Sprintf("%+.1f, %+.1f MB (target within 2 MB)",
		float64(r.afterLevel.min-r.startLevel.min)/1e6, float64(r.afterLevel.median-r.startLevel.median)/1e6))
}

// report gives the same figures to the benchmark's output.
func (r *churnRun) report(b *testing.B) {
	b.ReportMetric(float64(r.n)/r.took.Minutes(), "lifecycles/min")
	b.ReportMetric(perLifecycle(r.end.CPU-r.cpuFrom.CPU, r.n), "cpu-ms/lifecycle")
	b.ReportMetric(float64(r.start.RSS)/1e6, "rss-start-MB")
	b.ReportMetric(float64(r.end.RSS)/1e6, "rss-end-MB")
	b.ReportMetric(float64(r.after.RSS)/1e6, "rss-after-retention-MB")
	b.ReportMetric(float64(r.afterLevel.min-r.startLevel.min)/1e6, "rss-min-growth-MB")
	b.ReportMetric(float64(r.afterLevel.median-r.startLevel.median)/1e6, "rss-median-growth-MB")
}

// measureStart lets the exporter settle over a few scrapes and reads
// what a churn run is measured from: a scrape, the process, its RSS
// level over the next minute, and the process again for the CPU.
func (r *churnRun) measureStart(b *testing.B, e *testrig.Exporter, pid int) {
	for range 3 {
		e.Scrape(b)
		time.Sleep(5 * time.Second)
	}
	r.before = e.Scrape(b)
	var err error
	if r.start, err = bench.ReadProc(pid); err != nil {
		b.Fatal(err)
	}
	stopScrapes := scrapeEvery(e, 15*time.Second, nil)
	r.startLevel = rssLevel(b, pid)
	stopScrapes()
	if r.cpuFrom, err = bench.ReadProc(pid); err != nil {
		b.Fatal(err)
	}
}

// rssLevel is the exporter's RSS read every second for a minute, the
// caller scraping it every 15 s. Within seconds RSS moves by up to a
// megabyte and a half as a scrape allocates and a release returns the
// free heap, so one read each side compared two arbitrary points of that
// sawtooth: the same code read +0.4 and +2.4 MB after a churn.
func rssLevel(b *testing.B, pid int) level {
	var reads, anon, file []int64
	for range 60 {
		p, err := bench.ReadProc(pid)
		if err != nil {
			b.Fatal(err)
		}
		reads, anon, file = append(reads, p.RSS), append(anon, p.AnonRSS), append(file, p.FileRSS)
		time.Sleep(time.Second)
	}
	for _, r := range [][]int64{reads, anon, file} {
		slices.Sort(r)
	}
	return level{min: reads[0], median: reads[len(reads)/2], max: reads[len(reads)-1],
		anonMedian: anon[len(anon)/2], fileMedian: file[len(file)/2]}
}

// level is RSS over a minute: its floor is what was not given back. The
// medians of its anonymous and file-backed parts tell the heap and the
// runtime from the pages of the binary that code first run brought in.
type level struct{ min, median, max, anonMedian, fileMedian int64 }

func (l level) String() string {
	return fmt.Sprintf("%s / %s / %s", bench.MB(l.min), bench.MB(l.median), bench.MB(l.max))
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
// called; seen, if not nil, is given each scrape parsed.
func scrapeEvery(e *testrig.Exporter, d time.Duration, seen func(testrig.Metrics)) func() {
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
				resp, err := http.Get(e.URL + "/metrics")
				if err != nil {
					continue
				}
				if seen == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
				} else {
					parser := expfmt.NewTextParser(model.UTF8Validation)
					if m, err := parser.TextToMetricFamilies(resp.Body); err == nil {
						seen(m)
					}
				}
				resp.Body.Close()
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
