package bench_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/internal/bench"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// churnSteady is how many containers run throughout a generated churn,
// as a host's services would.
const churnSteady = 10

// BenchmarkExporterChurn is BenchmarkDockerChurn at the rate asked for,
// which no dockerd on a test host reaches: the real exporter binary over
// a generated cgroup v1 tree and a fake Docker daemon (bench.FakeChurn)
// that makes EXIT137_BENCH_RATE lifecycles a minute (default 1,000) for
// EXIT137_BENCH_CHURN (default 5m), each a new container: create, its
// memory cgroup, start, die (every fifth killed: kill with signal 9, exit
// 137; the others exit 0 or 1), destroy. The exporter runs with
// --exits.retention=EXIT137_BENCH_RETENTION (default 1m) and is scraped
// every 15 s throughout, and through a second wave (secondWave) after.
// Reported as for BenchmarkDockerChurn, and every lifecycle must be
// counted once: the benchmark fails, naming them, when one was lost or
// counted twice. EXIT137_BENCH_PPROF_DIR, when set, gets
// the exporter's heap profiles and smaps at the start and after the
// retention; EXIT137_BENCH_SMAPS_DIR only its smaps, from an exporter run
// without the profiler (whose sampling costs RSS of its own).
//
//	scripts/bench churn generated [R]
func BenchmarkExporterChurn(b *testing.B) {
	rate := bench.EnvInt("EXIT137_BENCH_RATE", 1000)
	churn := bench.EnvDuration("EXIT137_BENCH_CHURN", 5*time.Minute)
	retention := bench.EnvDuration("EXIT137_BENCH_RETENTION", time.Minute)
	profiles := os.Getenv("EXIT137_BENCH_PPROF_DIR")
	smaps := os.Getenv("EXIT137_BENCH_SMAPS_DIR")
	tree, err := bench.NewTree(b.TempDir(), cgroupfs.ModeLegacy, churnSteady)
	if err != nil {
		b.Fatal(err)
	}
	daemon := bench.FakeChurn(b, tree)
	e, pid := startDockerExporter(b, "--cgroup.root="+tree.FS.Root(), "--docker.host="+daemon.Host(),
		"--exits.retention="+retention.String())
	e.WaitFor(b, time.Minute, fmt.Sprintf("%d containers named", churnSteady), func(m testrig.Metrics) bool {
		return len(m["exit137_container_info"].GetMetric()) == churnSteady
	})

	var r churnRun
	r.measureStart(b, e, pid)
	before := r.before
	hostBefore := before.Sum("exit137_exits_total", nil)
	saveProfile(b, e, pid, profiles, "start")
	saveSmaps(b, pid, smaps, "start")

	prefix := testrig.UniqueName(b, "churn")
	tally := &exitTally{prefix: prefix, counts: map[string]float64{}}
	stopScrapes := scrapeEvery(e, 15*time.Second, tally.see)
	var peak atomic.Int64
	stopSampling := sampleRSS(pid, &peak)

	ctx, cancel := context.WithTimeout(context.Background(), churn+5*time.Minute)
	defer cancel()
	begin := time.Now()
	made := daemon.Run(ctx, prefix, rate, churn, func(n int) {
		if n%500 == 0 {
			fmt.Fprintf(os.Stderr, "bench: %d lifecycles (%s)\n", n, time.Since(begin).Round(time.Second))
		}
	})
	r.n, r.took = int64(len(made)), time.Since(begin)
	r.measureEnd(b, e, pid, prefix, hostBefore, retention)
	tally.see(r.endMetrics)
	again := secondWave(b, e, pid, daemon, prefix+"-again", rate, retention, r.afterMetrics)
	stopScrapes()
	stopSampling()
	r.peak = max(peak.Load(), r.end.PeakRSS)
	saveProfile(b, e, pid, profiles, "after")
	saveSmaps(b, pid, smaps, "after")

	var cgroupErrs int
	madeBy := map[string]int{}
	for _, l := range made {
		if l.Err != nil {
			if cgroupErrs++; cgroupErrs == 1 {
				b.Errorf("%s: cgroup: %v", l.Name, l.Err)
			}
		}
		madeBy[fmt.Sprint(l.ExitCode)]++
	}
	lost, doubled := tally.check(made)

	t := bench.NewTable(fmt.Sprintf("churn, generated: %d lifecycles/min asked for %s, --exits.retention=%s, scraped every 15s; fake Docker daemon, cgroup v1 tree, %d containers running throughout",
		rate, churn, retention, churnSteady))
	t.Row("lifecycles made / cgroup errors / events the live stream missed", fmt.Sprintf("%d / %d / %d", len(made), cgroupErrs, daemon.Dropped()))
	r.rows(t)
	t.Row("names counted other than once: lost / doubled", fmt.Sprintf("%d / %d", len(lost), len(doubled)))
	var codes []string
	for _, code := range []string{"0", "1", "137"} {
		got := r.endMetrics.Sum("exit137_exits_total", map[string]string{"exit_code": code}) -
			before.Sum("exit137_exits_total", map[string]string{"exit_code": code})
		codes = append(codes, fmt.Sprintf("%s: %.0f of %d", code, got, madeBy[code]))
	}
	t.Row("exits counted by exit code", strings.Join(codes, ", "))
	t.Row("Go heap idle / released, start and after the retention", fmt.Sprintf("%s / %s, %s / %s",
		bench.MB(memstat(before, "heap_idle")), bench.MB(memstat(before, "heap_released")),
		bench.MB(memstat(r.afterMetrics, "heap_idle")), bench.MB(memstat(r.afterMetrics, "heap_released"))))
	t.Row("Go heap alloc / in use, start and after the retention", fmt.Sprintf("%s / %s, %s / %s",
		bench.MB(memstat(before, "heap_alloc")), bench.MB(memstat(before, "heap_inuse")),
		bench.MB(memstat(r.afterMetrics, "heap_alloc")), bench.MB(memstat(r.afterMetrics, "heap_inuse"))))
	t.Row("Go runtime outside the heap (stack, GC, mspan, buckhash, other), start and after", fmt.Sprintf("%s, %s",
		runtimeSys(before), runtimeSys(r.afterMetrics)))
	if again.n > 0 {
		t.Row("second wave ("+again.took.Round(time.Second).String()+"): exits counted", fmt.Sprintf("%.0f of %d", again.counted, again.n))
		t.Row("second wave: RSS over a minute after its retention, min / median / max", again.afterLevel.String())
		t.Row("second wave − first, after each retention: min, median", fmt.Sprintf("%+.1f, %+.1f MB",
			float64(again.afterLevel.min-r.afterLevel.min)/1e6, float64(again.afterLevel.median-r.afterLevel.median)/1e6))
	}
	t.Flush()
	r.report(b)
	b.ReportMetric(float64(r.after.RSS-r.start.RSS)/1e6, "rss-growth-MB")
	b.ReportMetric(float64(r.after.AnonRSS-r.start.AnonRSS)/1e6, "rss-anon-growth-MB")
	b.ReportMetric(float64(r.after.FileRSS-r.start.FileRSS)/1e6, "rss-file-growth-MB")
	b.ReportMetric(float64(heapInuse(r.afterMetrics)-heapInuse(before))/1e6, "heap-inuse-growth-MB")

	if left := runSeries(r.afterMetrics, prefix); len(left) > 0 {
		fmt.Printf("exit series of the run's names left after the retention:\n  %s\n", strings.Join(left, "\n  "))
	}
	if again.counted != float64(again.n) {
		b.Errorf("second wave: %.0f exits counted of %d lifecycles", again.counted, again.n)
	}
	if r.counted != float64(len(made)) || len(lost)+len(doubled) > 0 {
		b.Errorf("%.0f exits counted of %d lifecycles; lost (%d): %s; doubled (%d): %s", r.counted, len(made),
			len(lost), firstFew(lost), len(doubled), firstFew(doubled))
	}
}

// secondWave runs a shorter churn, EXIT137_BENCH_CHURN_AGAIN (default 1m;
// 0: none), once the first has been measured after its retention, and
// measures it the same way. What it leaves over the first is what every
// wave keeps; what the first left and the second does not add (the
// /explain ring filled, code first run, the runtime's metadata for the
// peak heap) is paid once.
func secondWave(b *testing.B, e *testrig.Exporter, pid int, daemon *bench.Churn, prefix string, rate int,
	retention time.Duration, before testrig.Metrics) churnRun {
	var r churnRun
	churn := bench.EnvDuration("EXIT137_BENCH_CHURN_AGAIN", time.Minute)
	if churn <= 0 {
		return r
	}
	ctx, cancel := context.WithTimeout(context.Background(), churn+5*time.Minute)
	defer cancel()
	begin := time.Now()
	made := daemon.Run(ctx, prefix, rate, churn, nil)
	r.n, r.took = int64(len(made)), time.Since(begin)
	r.measureEnd(b, e, pid, prefix, before.Sum("exit137_exits_total", nil), retention)
	return r
}

// exitTally keeps, for each name of the run, the most exits any scrape
// showed for it (every exit series of a name, summed): a name's series
// stay the retention after its removal, so the 15 s scrapes each see.
type exitTally struct {
	prefix string
	mu     sync.Mutex
	counts map[string]float64
}

func (x *exitTally) see(m testrig.Metrics) {
	per := map[string]float64{}
	for _, s := range m["exit137_container_exits_total"].GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == "name" && strings.HasPrefix(l.GetValue(), x.prefix) {
				per[l.GetValue()] += s.GetCounter().GetValue()
			}
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for name, n := range per {
		x.counts[name] = max(x.counts[name], n)
	}
}

// check names the lifecycles counted other than once.
func (x *exitTally) check(made []bench.Lifecycle) (lost, doubled []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, l := range made {
		switch n := x.counts[l.Name]; {
		case n == 0:
			lost = append(lost, l.Name)
		case n > 1:
			doubled = append(doubled, fmt.Sprintf("%s (%.0f)", l.Name, n))
		}
	}
	return lost, doubled
}

func firstFew(names []string) string {
	if len(names) > 20 {
		return strings.Join(names[:20], ", ") + fmt.Sprintf(" and %d more", len(names)-20)
	}
	return strings.Join(names, ", ")
}

// memstat is a go_memstats_<name>_bytes gauge.
func memstat(m testrig.Metrics, name string) int64 {
	v, _ := m.Value("go_memstats_"+name+"_bytes", nil)
	return int64(v)
}

// saveProfile writes the exporter's heap profile (and its MemStats, in
// the debug=1 text) and smaps into dir, when dir is set.
func saveProfile(b *testing.B, e *testrig.Exporter, pid int, dir, when string) {
	if dir == "" {
		return
	}
	for name, url := range map[string]string{
		"heap-" + when + ".pb.gz": e.URL + "/debug/pprof/heap",
		"heap-" + when + ".txt":   e.URL + "/debug/pprof/heap?debug=1",
	} {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		saveFile(b, dir, name, body)
	}
	saveSmaps(b, pid, dir, when)
}

// saveSmaps writes the exporter's /proc/<pid>/smaps into dir, when dir
// is set: which mappings its RSS is in.
func saveSmaps(b *testing.B, pid int, dir, when string) {
	if dir == "" {
		return
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		b.Fatal(err)
	}
	saveFile(b, dir, "smaps-"+when, smaps)
}

func saveFile(b *testing.B, dir, name string, data []byte) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		b.Fatal(err)
	}
}

// TestFakeChurn: the fake daemon's lifecycles as Docker's own client sees
// them: on the live stream and in a since/until replay alike, each
// container's create, start, kill (signal 9) before an exit 137 only, die
// with its exit code, destroy; afterwards its inspect is a 404 and only
// the steady containers are listed, and only theirs are in the tree.
func TestFakeChurn(t *testing.T) {
	tree, err := bench.NewTree(t.TempDir(), cgroupfs.ModeLegacy, 2)
	if err != nil {
		t.Fatal(err)
	}
	daemon := bench.FakeChurn(t, tree)
	c, err := client.NewClientWithOpts(client.WithHost(daemon.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	containerEvents := filters.NewArgs(filters.Arg("type", "container"))
	begin := time.Now()
	live, liveErrs := c.Events(ctx, events.ListOptions{Filters: containerEvents})
	made := daemon.Run(ctx, "t", 1200, time.Second, nil)
	if len(made) < 10 {
		t.Fatalf("%d lifecycles made in a second at 1,200 a minute", len(made))
	}
	var seen []events.Message
	for destroyed := 0; destroyed < len(made); {
		select {
		case m := <-live:
			seen = append(seen, m)
			if m.Action == events.ActionDestroy {
				destroyed++
			}
			if m.Action == events.ActionStart || m.Action == events.ActionDie {
				checkInspect(t, ctx, c, m)
			}
		case err := <-liveErrs:
			t.Fatalf("live stream: %v", err)
		}
	}
	replay, replayErrs := c.Events(ctx, events.ListOptions{Filters: containerEvents,
		Since: fmt.Sprintf("%d.%09d", begin.Unix(), begin.Nanosecond()), Until: fmt.Sprintf("%d.%09d", time.Now().Unix(), time.Now().Nanosecond())})
	var replayed []events.Message
	for done := false; !done; {
		select {
		case m := <-replay:
			replayed = append(replayed, m)
		case err := <-replayErrs:
			if !errors.Is(err, io.EOF) {
				t.Fatalf("replay: %v", err)
			}
			done = true
		}
	}
	if !slices.EqualFunc(seen, replayed, func(a, b events.Message) bool {
		return a.Actor.ID == b.Actor.ID && a.Action == b.Action && a.TimeNano == b.TimeNano
	}) {
		t.Errorf("replay of %d events differs from the %d live ones", len(replayed), len(seen))
	}

	byID := map[string][]events.Message{}
	for _, m := range seen {
		if m.Type != events.ContainerEventType || m.Time != m.TimeNano/1e9 {
			t.Errorf("event %+v: not a container's, or its time is not its timeNano's", m)
		}
		byID[m.Actor.ID] = append(byID[m.Actor.ID], m)
	}
	for _, l := range made {
		want := []string{"create", "start", "die", "destroy"}
		if l.Killed {
			want = []string{"create", "start", "kill", "die", "destroy"}
		}
		var got []string
		for _, m := range byID[l.ID] {
			got = append(got, string(m.Action))
			if m.Actor.Attributes["name"] != l.Name {
				t.Errorf("%s: event %s names %q", l.Name, m.Action, m.Actor.Attributes["name"])
			}
			switch m.Action {
			case "die":
				if m.Actor.Attributes["exitCode"] != fmt.Sprint(l.ExitCode) {
					t.Errorf("%s: die with exitCode %q, made %d", l.Name, m.Actor.Attributes["exitCode"], l.ExitCode)
				}
			case "kill":
				if m.Actor.Attributes["signal"] != "9" {
					t.Errorf("%s: kill with signal %q", l.Name, m.Actor.Attributes["signal"])
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: events %v, want %v", l.Name, got, want)
		}
		if l.Killed != (l.ExitCode == 137) || l.Err != nil {
			t.Errorf("%s: killed %v, exit code %d, cgroup error %v", l.Name, l.Killed, l.ExitCode, l.Err)
		}
	}
	_, err = c.ContainerInspect(ctx, made[0].ID)
	if !client.IsErrNotFound(err) || !strings.Contains(err.Error(), "No such container: "+made[0].ID) {
		t.Errorf("inspect of a destroyed container: %v", err)
	}
	if list, err := c.ContainerList(ctx, container.ListOptions{All: true}); err != nil || len(list) != 2 {
		t.Errorf("list after the churn: %d containers (%v), want the 2 steady ones", len(list), err)
	}
	if cs, err := tree.FS.DockerContainers(); err != nil || len(cs) != 2 {
		t.Errorf("cgroups after the churn: %d (%v), want the 2 steady ones'", len(cs), err)
	}
}

// checkInspect holds an inspect made on a start or die event to it: the
// container runs with a pid since before the start, or has exited (with
// the die's code) before the die; a container removed since is a 404.
func checkInspect(t *testing.T, ctx context.Context, c *client.Client, m events.Message) {
	t.Helper()
	info, err := c.ContainerInspect(ctx, m.Actor.ID)
	if client.IsErrNotFound(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(0, m.TimeNano)
	st := info.State
	started, _ := time.Parse(time.RFC3339Nano, st.StartedAt)
	finished, _ := time.Parse(time.RFC3339Nano, st.FinishedAt)
	switch {
	case started.IsZero() || started.After(at) && m.Action == events.ActionStart:
		t.Errorf("%s on %s: StartedAt %s", info.Name, m.Action, st.StartedAt)
	case st.Running && (st.Pid == 0 || finished.Year() > 1 || m.Action == events.ActionDie):
		t.Errorf("%s on %s: running, pid %d, finished %s", info.Name, m.Action, st.Pid, st.FinishedAt)
	case !st.Running && (st.Pid != 0 || finished.Before(started) || fmt.Sprint(st.ExitCode) != exitCodeOf(m, st.ExitCode)):
		t.Errorf("%s on %s: exited with %d, pid %d, finished %s", info.Name, m.Action, st.ExitCode, st.Pid, st.FinishedAt)
	case m.Action == events.ActionDie && finished.After(at):
		t.Errorf("%s: FinishedAt %s after its die", info.Name, st.FinishedAt)
	}
}

// exitCodeOf is a die's exitCode attribute; other events have none to
// hold inspect to.
func exitCodeOf(m events.Message, inspected int) string {
	if code, ok := m.Actor.Attributes["exitCode"]; ok {
		return code
	}
	return fmt.Sprint(inspected)
}

// TestExporterChurnCountsEachLifecycleOnce runs the exporter binary
// through a short generated churn, 1,200 lifecycles a minute for 20 s,
// and checks it against the fake daemon's own list of what it made: each
// name counted exactly once, and once the retention has passed, nothing
// of the removed containers left (no container_info, no exit series: a
// late answer about a removed container must not bring it back).
func TestExporterChurnCountsEachLifecycleOnce(t *testing.T) {
	tree, err := bench.NewTree(t.TempDir(), cgroupfs.ModeLegacy, churnSteady)
	if err != nil {
		t.Fatal(err)
	}
	daemon := bench.FakeChurn(t, tree)
	const retention = 5 * time.Second
	e, _ := startExporter(t, "--cgroup.root="+tree.FS.Root(), "--docker.host="+daemon.Host(),
		"--exits.retention="+retention.String())
	e.WaitFor(t, time.Minute, fmt.Sprintf("%d containers named", churnSteady), func(m testrig.Metrics) bool {
		return len(m["exit137_container_info"].GetMetric()) == churnSteady
	})
	prefix := testrig.UniqueName(t, "churn")
	tally := &exitTally{prefix: prefix, counts: map[string]float64{}}
	stopScrapes := scrapeEvery(e, time.Second, tally.see)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	made := daemon.Run(ctx, prefix, 1200, 20*time.Second, nil)
	time.Sleep(3 * time.Second) // the last verdicts settle; the scrapes go on
	stopScrapes()
	tally.see(e.Scrape(t))
	if len(made) < 100 {
		t.Fatalf("the fake made %d lifecycles in 20 s, asked for 400", len(made))
	}
	if lost, doubled := tally.check(made); len(lost)+len(doubled) > 0 {
		t.Fatalf("of %d lifecycles, lost %d (%s), doubled %d (%s)", len(made), len(lost), firstFew(lost), len(doubled), firstFew(doubled))
	}
	testrig.WaitUntil(t, retention+30*time.Second, "the removed containers' series gone", func() bool {
		m := e.Scrape(t)
		for _, family := range []string{"exit137_container_info", "exit137_container_exits_total"} {
			for _, s := range m.Series(family, nil) {
				if strings.Contains(s, prefix) {
					return false
				}
			}
		}
		return true
	})
}

// runtimeSys lists the Go runtime's own memory beside the heap, from the
// go_memstats gauges of a scrape.
func runtimeSys(m testrig.Metrics) string {
	var parts []string
	for _, name := range []string{"stack_sys", "gc_sys", "mspan_sys", "buck_hash_sys", "other_sys"} {
		parts = append(parts, bench.MB(memstat(m, name)))
	}
	return strings.Join(parts, " / ")
}
