package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// verdictOf waits for the exporter's verdict on a container's exit.
func verdictOf(t *testing.T, e *testrig.Exporter, name string) attribution.Verdict {
	t.Helper()
	var v attribution.Verdict
	e.WaitFor(t, 60*time.Second, "a verdict for "+name, func(testrig.Metrics) bool {
		var body struct{ Verdicts []attribution.Verdict }
		if err := json.Unmarshal([]byte(e.Get(t, "/explain?container="+name)), &body); err != nil {
			t.Fatalf("/explain: %v", err)
		}
		if len(body.Verdicts) == 0 {
			return false
		}
		v = body.Verdicts[0]
		return true
	})
	return v
}

// requireVerdict checks the cause, the exit code, the evidence kinds and
// the counter: exactly one exit of that cause for the name.
func requireVerdict(t *testing.T, e *testrig.Exporter, name string, cause attribution.Cause, code string, kinds ...attribution.Kind) attribution.Verdict {
	t.Helper()
	v := verdictOf(t, e, name)
	if v.Cause != cause {
		t.Errorf("%s: cause %s, want %s; summary %q; evidence %+v", name, v.Cause, cause, v.Summary, v.Evidence)
	}
	for _, k := range kinds {
		found := false
		for _, c := range v.Evidence {
			found = found || c.Kind == k
		}
		if !found {
			t.Errorf("%s: no %s evidence in %+v", name, k, v.Evidence)
		}
	}
	m := e.Scrape(t)
	if got := m.Sum("exit137_container_exits_total", exitsOf(name)); got != 1 {
		t.Errorf("%s: %v exits counted, want 1: %v", name, got, m.Series("exit137_container_exits_total", exitsOf(name)))
	}
	if got := m.Sum("exit137_container_exits_total", exitsOf(name, "cause", string(cause), "exit_code", code)); got != 1 {
		t.Errorf("%s: want one exit with cause=%s exit_code=%s: %v", name, cause, code, m.Series("exit137_container_exits_total", exitsOf(name)))
	}
	return v
}

// deadURL is where no exporter answers: explain must diagnose after the
// fact.
const deadURL = "http://127.0.0.1:1"

func TestOOMKillIsOOM(t *testing.T) {
	testrig.Docker(t)
	e := testrig.StartExporter(t, fastSettle...)
	name := testrig.UniqueName(t, "oom")
	testrig.Start(t, name, []string{"--memory", "32m", "--memory-swap", "32m"}, "-alloc", "200")
	v := requireExplained(t, e, name, attribution.CauseOOM, "137", "decisive", attribution.KindDockerOOM, attribution.KindKernelOOM)
	if v.Signal != "SIGKILL" {
		t.Errorf("signal %s", v.Signal)
	}
	if out := testrig.Explain(t, e.URL, name); !strings.Contains(out, "cause    oom") || !strings.Contains(out, "kernel") {
		t.Errorf("live explain:\n%s", out)
	}
	out := testrig.Explain(t, deadURL, name)
	if !strings.Contains(out, "after the fact") || !strings.Contains(out, "cause    oom") {
		t.Errorf("after-the-fact explain:\n%s", out)
	}
}

func TestDockerKillAndStopTimeoutAreManual(t *testing.T) {
	testrig.Docker(t)
	e := testrig.StartExporter(t, fastSettle...)
	killed := testrig.UniqueName(t, "killed")
	stopped := testrig.UniqueName(t, "stopped")
	testrig.Start(t, killed, nil)
	testrig.Start(t, stopped, nil, "-ignore-term")
	time.Sleep(500 * time.Millisecond)
	testrig.Run(t, "docker", "kill", killed)
	testrig.Run(t, "docker", "stop", "-t", "1", stopped)

	// sigtrace is on: both kills of the init are traced to runc, decisive.
	v := requireExplained(t, e, killed, attribution.CauseManual, "137", "decisive", attribution.KindDockerKill)
	if !strings.Contains(v.Summary, "docker kill") {
		t.Errorf("summary %q does not say docker kill", v.Summary)
	}
	v = requireExplained(t, e, stopped, attribution.CauseManual, "137", "decisive", attribution.KindDockerStop)
	// Traced: "kill -9 of the init … at the end of a docker stop"; from
	// Docker's events alone: "SIGTERM ignored, SIGKILL after the timeout".
	if !strings.Contains(v.Summary, "end of a docker stop") && !strings.Contains(v.Summary, "timeout") {
		t.Errorf("summary %q does not say the SIGKILL ended a docker stop", v.Summary)
	}
	if out := testrig.Explain(t, deadURL, killed); !strings.Contains(out, "cause    manual") {
		t.Errorf("after-the-fact explain of a docker kill:\n%s", out)
	}
}

// A kill -9 from the host leaves no Docker event. With a watched
// filesystem full it is a disk kill; without, it is unknown.
func TestHostKillUnderDiskPressureIsDiskOtherwiseUnknown(t *testing.T) {
	testrig.Docker(t)
	full := mountFullTmpfs(t)
	e := testrig.StartExporter(t, append(fastSettle, "--disk.path="+full.dir, sigtraceOff)...)
	e.WaitFor(t, 10*time.Second, "disk pressure seen", func(m testrig.Metrics) bool {
		v, _ := m.Value("exit137_disk_usage_ratio", map[string]string{"path": full.dir})
		return v >= 0.95
	})
	pressed := testrig.UniqueName(t, "pressed")
	testrig.Start(t, pressed, nil)
	testrig.Run(t, "kill", "-9", testrig.PID(t, pressed))
	// A full disk at the death is a coincidence unless something ties it
	// to the kill: weak.
	v := requireExplained(t, e, pressed, attribution.CauseDisk, "137", "weak", attribution.KindDiskPressure)
	if !strings.Contains(v.Summary, full.dir) {
		t.Errorf("summary %q does not name %s", v.Summary, full.dir)
	}

	full.drain(t)
	// The disk source samples in the background: wait for a sample of
	// the drained filesystem before the next death.
	e.WaitFor(t, 10*time.Second, "disk pressure gone", func(m testrig.Metrics) bool {
		v, ok := m.Value("exit137_disk_usage_ratio", map[string]string{"path": full.dir})
		return ok && v < 0.95
	})
	plain := testrig.UniqueName(t, "plain")
	testrig.Start(t, plain, nil)
	testrig.Run(t, "kill", "-9", testrig.PID(t, plain))
	// An unknown verdict must say it is weak.
	requireExplained(t, e, plain, attribution.CauseUnknown, "137", "weak")
	if out := testrig.Explain(t, deadURL, plain); !strings.Contains(out, "cause    unknown") || !strings.Contains(out, "Could not see") {
		t.Errorf("after-the-fact explain of an unexplained kill:\n%s", out)
	}
}

func TestCleanExitIsNone(t *testing.T) {
	testrig.Docker(t)
	e := testrig.StartExporter(t, fastSettle...)
	name := testrig.UniqueName(t, "clean")
	testrig.Start(t, name, nil, "-sleep", "200ms", "-exit", "0")
	v := requireVerdict(t, e, name, attribution.CauseNone, "0")
	if v.Signal != "none" {
		t.Errorf("signal %q, want none", v.Signal)
	}
	m := e.Scrape(t)
	if v, ok := m.Value("exit137_container_last_kill_cause", map[string]string{"name": name, "cause": "none"}); !ok || v != 1 {
		t.Errorf("last_kill_cause{cause=none} = %v, %v", v, ok)
	}
}

// fullTmpfs is a small tmpfs the test mounts and fills.
type fullTmpfs struct{ dir, fill string }

func mountFullTmpfs(t *testing.T) fullTmpfs {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "full")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := testrig.Try("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir); err != nil {
		testrig.Need(t, "cannot mount a tmpfs (root needed): %v %s", err, out)
	}
	t.Cleanup(func() { _, _ = testrig.Try("umount", dir) })
	fill := filepath.Join(dir, "fill")
	// dd stops at ENOSPC: the filesystem is then full.
	_, _ = testrig.Try("dd", "if=/dev/zero", "of="+fill, "bs=64k")
	return fullTmpfs{dir: dir, fill: fill}
}

func (f fullTmpfs) drain(t *testing.T) {
	t.Helper()
	if err := os.Remove(f.fill); err != nil {
		t.Fatal(err)
	}
}
