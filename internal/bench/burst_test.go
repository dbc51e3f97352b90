package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/exit137-exporter/exit137-exporter/internal/bench"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// BenchmarkDockerBurst: N real containers (EXIT137_BENCH_N, default 500)
// killed at once, by EXIT137_BENCH_KILL: "pid" (default) sends SIGKILL to
// every container's process from the host, all within milliseconds;
// "docker" calls the kill API, 64 at a time, as an orchestrator would.
// Then: exits counted, verdicts, lost and duplicate counts, and verdict
// latency: when the verdict was stored (the exporter logs "container
// exit" as it stores it, to the millisecond) minus the container's
// FinishedAt, split at the moment the die event reached a separate
// client of the daemon, to tell the daemon's lag from the exporter's.
func BenchmarkDockerBurst(b *testing.B) {
	needDocker(b)
	n := bench.EnvInt("EXIT137_BENCH_N", 500)
	how := bench.EnvString("EXIT137_BENCH_KILL", "pid")
	const settle = 2 * time.Second // the exporter's default
	// testrig runs it at debug: the tracker's "die applied" lines split
	// the exporter's share.
	e, pid := startDockerExporter(b, "--attribution.settle="+settle.String())
	cs := bench.StartContainers(b, n, memoryLimit, bench.EnvDuration("EXIT137_BENCH_START_WITHIN", 10*time.Minute))
	waitKnown(b, e, cs)
	kills := map[string]string{"exit_code": "137"}
	hostBefore := e.Scrape(b).Sum("exit137_exits_total", kills)
	before, err := bench.ReadProc(pid)
	if err != nil {
		b.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dies := watchDies(b, ctx, cs)
	killTook := killAll(b, ctx, cs, how)
	// Wait for a verdict on every container, then for the settle delay
	// and a second more, so that a late duplicate would show.
	waitVerdicts(b, e, cs, settle+2*time.Minute)
	time.Sleep(settle + time.Second)
	verdicts := explainVerdicts(b, e, cs)
	after, err := bench.ReadProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	m := e.Scrape(b)
	finished := finishedAt(b, ctx, cs)
	decided, applied := loggedAt(e.Log(), "container exit"), loggedAt(e.Log(), "die applied")
	dieSeen, dieCodes := dies()

	var lost, dup, perName int
	causes := map[string]int{}
	var total, daemon, exporter, stream, settled bench.Durations
	var first, last time.Time
	for i, id := range cs.IDs {
		switch vs := verdicts[id]; {
		case len(vs) == 0:
			lost++
		case len(vs) > 1:
			dup += len(vs) - 1
		}
		for _, c := range verdicts[id] {
			causes[c]++
		}
		if m.Sum("exit137_container_exits_total", map[string]string{"name": cs.Names[i]}) == 1 {
			perName++
		}
		fin := finished[id]
		if first.IsZero() || fin.Before(first) {
			first = fin
		}
		last = maxTime(last, fin)
		at, ok := decided[cs.Names[i]]
		seen, seenOK := dieSeen[id]
		if ok {
			total = append(total, at.Sub(fin))
		}
		if ok && seenOK {
			daemon, exporter = append(daemon, seen.Sub(fin)), append(exporter, at.Sub(seen))
			if app, ok := applied[cs.Names[i]]; ok {
				stream, settled = append(stream, app.Sub(seen)), append(settled, at.Sub(app))
			}
		}
	}
	counted := m.Sum("exit137_exits_total", kills) - hostBefore

	t := bench.NewTable(fmt.Sprintf("burst: %d real containers killed at once (%s)", len(cs.IDs), killHow[how]))
	if cs.Stopped != "" {
		t.Row(fmt.Sprintf("NOTE: %d of %d started (%s)", len(cs.IDs), n, cs.Stopped))
	}
	t.Row("containers started in", cs.Took.Round(time.Second).String())
	t.Row("kills sent in / deaths spread over (FinishedAt)", killTook.Round(time.Millisecond).String()+" / "+last.Sub(first).Round(time.Millisecond).String())
	t.Row("exits counted (exit137_exits_total 137 delta)", fmt.Sprintf("%.0f of %d", counted, len(cs.IDs)))
	t.Row("exit codes of the die events at a separate client", tally(dieCodes))
	t.Row("names with exactly one counted exit", fmt.Sprintf("%d of %d", perName, len(cs.IDs)))
	t.Row("verdicts in /explain", fmt.Sprintf("%d (lost %d, duplicates %d), causes %s", len(cs.IDs)-lost+dup, lost, dup, tally(causes)))
	t.Row("latency", "p50 / p99 / max", "")
	t.Row(fmt.Sprintf("  verdict − FinishedAt (%d)", len(total)), latencies(total), fmt.Sprintf("target p99 ≤ settle %s + 1s", settle))
	t.Row("  die event at a client − FinishedAt (dockerd)", latencies(daemon), "")
	t.Row("  verdict − die event at a client (exporter)", latencies(exporter), "includes the settle delay")
	t.Row(fmt.Sprintf("    die applied by the exporter − at the client (%d)", len(stream)), latencies(stream), "the stream and the event loop")
	t.Row("    verdict − die applied", latencies(settled), "the settle left, the decision")
	t.Row("exporter CPU during the burst", (after.CPU - before.CPU).String(), "")
	t.Row("exporter RSS after / peak", bench.MB(after.RSS)+" / "+bench.MB(after.PeakRSS), "")
	t.Flush()
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(dup), "duplicates")
	b.ReportMetric(total.Median().Seconds(), "latency-p50-s")
	b.ReportMetric(total.Quantile(0.99).Seconds(), "latency-p99-s")
}

var killHow = map[string]string{
	"pid":    "SIGKILL to each container's process from the host",
	"docker": "docker kill through the API, 64 at a time",
}

// killAll kills every container and returns how long sending took.
func killAll(b *testing.B, ctx context.Context, cs *bench.Containers, how string) time.Duration {
	switch how {
	case "docker":
		start := time.Now()
		bench.Parallel(len(cs.IDs), 64, func(i int) {
			if err := cs.Client.ContainerKill(ctx, cs.IDs[i], "KILL"); err != nil {
				b.Errorf("kill %s: %v", cs.Names[i], err)
			}
		})
		return time.Since(start)
	case "pid":
		pids := make([]int, len(cs.IDs))
		bench.Parallel(len(cs.IDs), 8, func(i int) {
			info, err := cs.Client.ContainerInspect(ctx, cs.IDs[i])
			if err != nil || info.State == nil || info.State.Pid == 0 {
				b.Errorf("no pid for %s: %v", cs.Names[i], err)
				return
			}
			pids[i] = info.State.Pid
		})
		start := time.Now()
		for i, pid := range pids {
			if pid == 0 {
				continue
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				b.Errorf("kill -9 %d (%s): %v", pid, cs.Names[i], err)
			}
		}
		return time.Since(start)
	}
	b.Fatalf("EXIT137_BENCH_KILL=%q: want pid or docker", how)
	return 0
}

// watchDies follows the daemon's die events for the run's containers from
// a client of its own; the returned function stops and reports when each
// arrived, and how many carried each exit code (the daemon's word, against
// which the exporter's counts by code are read).
func watchDies(b *testing.B, ctx context.Context, cs *bench.Containers) func() (map[string]time.Time, map[string]int) {
	ctx, cancel := context.WithCancel(ctx)
	msgs, errs := cs.Client.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)), filters.Arg("event", "die"),
		filters.Arg("label", bench.Label+"="+cs.Run))})
	seen := map[string]time.Time{}
	codes := map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				if _, ok := seen[m.Actor.ID]; !ok {
					seen[m.Actor.ID] = time.Now()
					codes[m.Actor.Attributes["exitCode"]]++
				}
			case <-errs:
				return
			}
		}
	}()
	b.Cleanup(cancel)
	return func() (map[string]time.Time, map[string]int) {
		cancel()
		<-done
		return seen, codes
	}
}

// explainVerdicts reads every verdict /explain holds for the containers:
// their causes, by container id.
func explainVerdicts(b *testing.B, e *testrig.Exporter, cs *bench.Containers) map[string][]string {
	var resp struct {
		Verdicts []struct {
			Exit struct {
				ContainerID string `json:"container_id"`
			} `json:"exit"`
			Cause string `json:"cause"`
		} `json:"verdicts"`
	}
	body := e.Get(b, fmt.Sprintf("/explain?limit=%d", 4*len(cs.IDs)+1000))
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		b.Fatal(err)
	}
	ours := map[string]bool{}
	for _, id := range cs.IDs {
		ours[id] = true
	}
	out := map[string][]string{}
	for _, v := range resp.Verdicts {
		if ours[v.Exit.ContainerID] {
			out[v.Exit.ContainerID] = append(out[v.Exit.ContainerID], v.Cause)
		}
	}
	return out
}

// waitVerdicts polls /explain until every container has a verdict or
// within passes.
func waitVerdicts(b *testing.B, e *testrig.Exporter, cs *bench.Containers, within time.Duration) {
	deadline := time.Now().Add(within)
	for len(explainVerdicts(b, e, cs)) < len(cs.IDs) && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
}

// finishedAt inspects every container for its State.FinishedAt.
func finishedAt(b *testing.B, ctx context.Context, cs *bench.Containers) map[string]time.Time {
	out := make(map[string]time.Time, len(cs.IDs))
	var mu sync.Mutex
	bench.Parallel(len(cs.IDs), 8, func(i int) {
		info, err := cs.Client.ContainerInspect(ctx, cs.IDs[i])
		if err != nil || info.State == nil {
			b.Errorf("inspect %s: %v", cs.Names[i], err)
			return
		}
		at, err := time.Parse(time.RFC3339Nano, info.State.FinishedAt)
		if err != nil {
			b.Errorf("%s FinishedAt %q: %v", cs.Names[i], info.State.FinishedAt, err)
			return
		}
		mu.Lock()
		out[cs.IDs[i]] = at
		mu.Unlock()
	})
	return out
}

// loggedLine is a tracker's log line about a container, by message
// (promslog logfmt, time to the millisecond).
var loggedLine = regexp.MustCompile(`^time=(\S+) .*msg="([^"]+)" name=(\S+)`)

// loggedAt reads when the tracker first logged msg about each container:
// "die applied" (debug) when the exporter's event loop applied the die,
// "container exit" when the verdict was stored.
func loggedAt(log, msg string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, line := range strings.Split(log, "\n") {
		m := loggedLine.FindStringSubmatch(line)
		if m == nil || m[2] != msg {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if _, seen := out[m[3]]; err == nil && !seen {
			out[m[3]] = at
		}
	}
	return out
}

func latencies(d bench.Durations) string {
	r := func(x time.Duration) string { return x.Round(time.Millisecond).String() }
	return r(d.Median()) + " / " + r(d.Quantile(0.99)) + " / " + r(d.Max())
}

// tally lists counts by key, sorted: "manual 3, oom 2".
func tally(counts map[string]int) string {
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
