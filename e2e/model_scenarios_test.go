package e2e

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// The five scenarios of issue 10, each on its own, against the real
// daemon, with the exporter's connection going through a SocketProxy that
// is cut at the awkward moment.

// proxiedExporter starts an exporter whose Docker connection goes through
// a proxy that is up, and waits for its source.
func proxiedExporter(t *testing.T, extra ...string) (*testrig.Exporter, *testrig.SocketProxy) {
	t.Helper()
	proxy := testrig.NewSocketProxy(t)
	proxy.Up(t)
	args := append(append([]string{}, fastSettle...), "--docker.host="+proxy.Host(), sigtraceOff, "--systemd.bus=none")
	e := testrig.StartExporter(t, append(args, extra...)...)
	e.WaitFor(t, 30*time.Second, "docker source up", dockerUp(1))
	return e, proxy
}

// cutFor cuts the proxy, waits until the exporter says its source is
// down, runs during, and heals when at least d has passed.
func cutFor(t *testing.T, e *testrig.Exporter, proxy *testrig.SocketProxy, d time.Duration, during func()) {
	t.Helper()
	began := time.Now()
	proxy.Down()
	e.WaitFor(t, 15*time.Second, "docker source_up 0", dockerUp(0))
	during()
	if rest := d - time.Since(began); rest > 0 {
		time.Sleep(rest)
	}
	proxy.Up(t)
	e.WaitFor(t, 30*time.Second, "docker source up after the heal", dockerUp(1))
}

// wantExits waits until name's exits reach want, then past twice the
// settle, and checks they are exactly want, all with code.
func wantExits(t *testing.T, e *testrig.Exporter, name string, want float64, code string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && e.Scrape(t).Sum("exit137_container_exits_total", exitsOf(name)) < want {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	m := e.Scrape(t)
	if got := m.Sum("exit137_container_exits_total", exitsOf(name)); got != want {
		t.Errorf("%s: %v exits counted, want %v: %v", name, got, want, m.Series("exit137_container_exits_total", exitsOf(name)))
	} else if got := m.Sum("exit137_container_exits_total", exitsOf(name, "exit_code", code)); got != want {
		t.Errorf("%s: want all %v exits with exit_code %s: %v", name, want, code, m.Series("exit137_container_exits_total", exitsOf(name)))
	}
}

// A container runs before the exporter starts and the exporter sees no
// event before its connection is cut; the container is killed and started
// again during the cut. That exit is counted once.
func TestQuietHostKillAndStartDuringCutCountedOnce(t *testing.T) {
	testrig.Docker(t)
	name := testrig.UniqueName(t, "quiet")
	testrig.Start(t, name, nil)
	time.Sleep(500 * time.Millisecond)
	e, proxy := proxiedExporter(t)
	cutFor(t, e, proxy, 2*time.Second, func() {
		testrig.Run(t, "docker", "kill", name)
		testrig.WaitExited(t, name, 10*time.Second)
		testrig.Run(t, "docker", "start", name)
	})
	wantExits(t, e, name, 1, "137")
}

// A killed container's death is counted, the connection is cut before its
// destroy event, and it is removed during the cut: still counted once
// (the replay after the heal delivers the same die again).
func TestCountedDeathRemovedDuringCutCountedOnce(t *testing.T) {
	testrig.Docker(t)
	e, proxy := proxiedExporter(t)
	name := testrig.UniqueName(t, "counted-rm")
	testrig.Start(t, name, nil)
	time.Sleep(300 * time.Millisecond)
	testrig.Run(t, "docker", "kill", name)
	e.WaitFor(t, 15*time.Second, "the kill counted", func(m testrig.Metrics) bool {
		return m.Sum("exit137_container_exits_total", exitsOf(name)) >= 1
	})
	cutFor(t, e, proxy, 2*time.Second, func() {
		testrig.Run(t, "docker", "rm", "-f", name)
	})
	wantExits(t, e, name, 1, "137")
}

// A container is killed and started again during a cut, then killed once
// more after the heal: two exits, both counted.
func TestKilledAndRestartedDuringCutThenKilledLiveCountedTwice(t *testing.T) {
	testrig.Docker(t)
	e, proxy := proxiedExporter(t)
	name := testrig.UniqueName(t, "cut-restart")
	testrig.Start(t, name, nil)
	time.Sleep(500 * time.Millisecond) // the exporter has seen its start
	cutFor(t, e, proxy, 2*time.Second, func() {
		testrig.Run(t, "docker", "kill", name)
		testrig.WaitExited(t, name, 10*time.Second)
		testrig.Run(t, "docker", "start", name)
	})
	time.Sleep(time.Second)
	testrig.Run(t, "docker", "kill", name)
	wantExits(t, e, name, 2, "137")
}

// A crash loop (--restart on-failure:5 of a process that exits 1 at once)
// while the exporter's event stream lags the daemon by 1.5s: by the time
// it handles a start, inspect shows a later run. Every one of the six
// exits is counted.
func TestCrashLoopWithEventLagCountsEveryExit(t *testing.T) {
	testrig.Docker(t)
	e, proxy := proxiedExporter(t)
	proxy.SetLag(1500 * time.Millisecond)
	name := testrig.UniqueName(t, "lagloop")
	testrig.Start(t, name, []string{"--restart", "on-failure:5"}, "-exit", "1")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := testrig.Try("docker", "inspect", "-f", "{{.State.Running}} {{.State.Restarting}} {{.RestartCount}}", name)
		if err == nil && out == "false false 5" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the crash loop did not end: %s %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the lagged events are on their way
	proxy.SetLag(0)
	wantExits(t, e, name, 6, "1")
}

// Exits that happen while the exporter is down (stopped with SIGTERM, then
// crashed with SIGKILL) are counted, once, by the next incarnation, which
// runs with the same --state.path; an exit the previous one counted is not
// counted again, and its count is not lost either.
func TestExitsWhileExporterDownCountedOnRestart(t *testing.T) {
	testrig.Docker(t)
	requireStatePath(t)
	e, _ := proxiedExporter(t, "--state.path="+t.TempDir()+"/state")
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		live := testrig.UniqueName(t, "live"+strconv.Itoa(i))
		killed := testrig.UniqueName(t, "down-kill"+strconv.Itoa(i))
		exits := testrig.UniqueName(t, "down-exit"+strconv.Itoa(i))
		removed := testrig.UniqueName(t, "down-rm"+strconv.Itoa(i))
		testrig.Start(t, live, nil)
		testrig.Start(t, killed, nil)
		time.Sleep(300 * time.Millisecond)
		testrig.Run(t, "docker", "kill", live)
		e.WaitFor(t, 15*time.Second, "the live kill counted", func(m testrig.Metrics) bool {
			return m.Sum("exit137_container_exits_total", exitsOf(live)) == 1
		})
		time.Sleep(time.Second) // its verdict and state are written

		if err := e.Stop(t, sig); err == nil && sig == syscall.SIGKILL {
			t.Fatalf("the exporter survived SIGKILL")
		}
		testrig.Run(t, "docker", "kill", killed)
		testrig.Start(t, exits, nil, "-sleep", "100ms", "-exit", "3")
		testrig.Start(t, removed, []string{"--rm"}, "-sleep", "100ms", "-exit", "4")
		testrig.WaitExited(t, exits, 10*time.Second)
		time.Sleep(time.Second) // the --rm container is gone
		e.Start(t)
		e.WaitFor(t, 30*time.Second, "docker source up after the restart", dockerUp(1))

		wantExits(t, e, killed, 1, "137")
		wantExits(t, e, exits, 1, "3")
		wantExits(t, e, removed, 1, "4")
		// The counters go on from the saved state: the exit the previous
		// exporter counted stays 1, neither lost (0) nor counted again (2).
		if got := e.Scrape(t).Sum("exit137_container_exits_total", exitsOf(live)); got != 1 {
			t.Errorf("after %s: the exit the previous exporter counted now stands at %v, want 1", sig, got)
		}
	}
}
