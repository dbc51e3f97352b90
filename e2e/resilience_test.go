package e2e

import (
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

func dockerUp(want float64) func(testrig.Metrics) bool {
	return func(m testrig.Metrics) bool {
		v, ok := m.Value("exit137_source_up", map[string]string{"source": "docker"})
		return ok && v == want
	}
}

// The exporter starts with no daemon behind its socket, serves metrics,
// says the source is down, and picks the daemon up when it appears.
func TestStartsWithoutDaemonAndRecovers(t *testing.T) {
	testrig.Docker(t)
	proxy := testrig.NewSocketProxy(t)
	e := testrig.StartExporter(t, append(fastSettle, "--docker.host="+proxy.Host())...)
	e.WaitFor(t, 10*time.Second, "docker source_up 0", dockerUp(0))

	proxy.Up(t)
	e.WaitFor(t, 60*time.Second, "docker source_up 1 after the daemon appears", dockerUp(1))
	name := testrig.UniqueName(t, "recovered")
	testrig.Start(t, name, nil, "-sleep", "200ms", "-exit", "3")
	m := e.WaitFor(t, 30*time.Second, "the exit counted", func(m testrig.Metrics) bool {
		return m.Sum("exit137_container_exits_total", exitsOf(name)) >= 1
	})
	if got := m.Sum("exit137_container_exits_total", exitsOf(name, "exit_code", "3")); got != 1 {
		t.Errorf("exit 3 counted %v times: %v", got, m.Series("exit137_container_exits_total", exitsOf(name)))
	}
}

// The event stream drops while containers die; after the reconnect each
// death is counted exactly once, whichever of the replayed events and the
// reconcile saw it first.
func TestStreamDropLosesNoExit(t *testing.T) {
	testrig.Docker(t)
	proxy := testrig.NewSocketProxy(t)
	proxy.Up(t)
	e := testrig.StartExporter(t, append(fastSettle, "--docker.host="+proxy.Host())...)
	e.WaitFor(t, 30*time.Second, "docker source up", dockerUp(1))

	kept := testrig.UniqueName(t, "gap-kept")
	removed := testrig.UniqueName(t, "gap-rm")
	before := testrig.UniqueName(t, "gap-before")
	testrig.Start(t, kept, nil)
	testrig.Start(t, removed, []string{"--rm"})
	testrig.Start(t, before, nil, "-exit", "4")
	testrig.WaitExited(t, before, 30*time.Second)
	e.WaitFor(t, 30*time.Second, "the exit before the gap", func(m testrig.Metrics) bool {
		return m.Sum("exit137_container_exits_total", exitsOf(before)) == 1
	})

	proxy.Down()
	e.WaitFor(t, 30*time.Second, "docker source_up 0", dockerUp(0))
	testrig.Run(t, "docker", "kill", kept, removed)
	testrig.WaitExited(t, kept, 30*time.Second)
	time.Sleep(time.Second) // the --rm container is gone by now
	proxy.Up(t)
	e.WaitFor(t, 60*time.Second, "docker source up again", dockerUp(1))
	m := e.WaitFor(t, 30*time.Second, "the gap's exits counted", func(m testrig.Metrics) bool {
		return m.Sum("exit137_container_exits_total", exitsOf(kept)) >= 1 &&
			m.Sum("exit137_container_exits_total", exitsOf(removed)) >= 1
	})
	time.Sleep(2 * time.Second)
	m = e.Scrape(t)
	for _, n := range []string{kept, removed} {
		if got := m.Sum("exit137_container_exits_total", exitsOf(n, "exit_code", "137")); got != 1 {
			t.Errorf("%s: %v kills counted, want 1: %v", n, got, m.Series("exit137_container_exits_total", exitsOf(n)))
		}
	}
	if got := m.Sum("exit137_container_exits_total", exitsOf(before)); got != 1 {
		t.Errorf("the exit before the gap is now counted %v times", got)
	}
}

// dockerd itself stops (its containers die in its shutdown) and starts
// again: every death is counted exactly once.
func TestDaemonRestartCountsEachExitOnce(t *testing.T) {
	testrig.Docker(t)
	script := testrig.RepoRoot() + "/scripts/dockerd.sh"
	if _, err := testrig.Try(script, "owned"); err != nil {
		testrig.Need(t, "the Docker daemon was not started by scripts/dockerd.sh, so this test may not stop it")
	}
	e := testrig.StartExporter(t, fastSettle...)
	e.WaitFor(t, 30*time.Second, "docker source up", dockerUp(1))
	names := make([]string, 4)
	for i := range names {
		names[i] = testrig.UniqueName(t, "restart")
		testrig.Start(t, names[i], nil)
	}
	time.Sleep(500 * time.Millisecond)
	t.Cleanup(func() { _, _ = testrig.Try(script, "start") })
	testrig.Run(t, script, "stop")
	e.WaitFor(t, 30*time.Second, "docker source_up 0", dockerUp(0))
	testrig.Run(t, script, "start")
	e.WaitFor(t, 90*time.Second, "docker source up again", dockerUp(1))
	m := e.WaitFor(t, 30*time.Second, "the shutdown's exits counted", func(m testrig.Metrics) bool {
		for _, n := range names {
			if m.Sum("exit137_container_exits_total", exitsOf(n)) < 1 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second)
	m = e.Scrape(t)
	for _, n := range names {
		if got := m.Sum("exit137_container_exits_total", exitsOf(n)); got != 1 {
			t.Errorf("%s: counted %v times, want 1: %v", n, got, m.Series("exit137_container_exits_total", exitsOf(n)))
		}
	}
}
