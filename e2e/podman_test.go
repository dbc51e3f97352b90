package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// TestPodman points the exporter at Podman's Docker-compatible service
// (Debian's podman 4.3.1, cgroupfs manager, cgroup v1) and makes each
// kind of death happen. Podman says less than dockerd: it never reports
// an OOM kill (no oom event, State.OOMKilled false), its kill event
// names no signal, and a stop past its timeout emits only die 137. The
// verdicts must come from the kernel's log and the traced SIGKILLs.
// Podman needs no Docker daemon, so it takes no daemon lock; kmsg and
// the exporter binary are shared with other tests, hence names of its
// own and counts per name.
func TestPodman(t *testing.T) {
	mountTracefsView(t) // sigtrace needs tracefs: fails in CI, skips elsewhere
	p := testrig.StartPodman(t)
	e := testrig.StartExporter(t, append(fastSettle, "--docker.host="+p.Host())...)
	waitSources(t, e, "docker", "kmsg", "sigtrace")
	e.WaitFor(t, 10*time.Second, "exit137_runtime_info says podman", func(m testrig.Metrics) bool {
		return len(m.Series("exit137_runtime_info", map[string]string{"runtime": "podman"})) == 1
	})
	if !strings.Contains(e.Log(), "runtime=podman") {
		t.Errorf("the exporter did not log the runtime it found:\n%s", e.LogTail(40))
	}
	started := time.Now()

	t.Run("memory series of a limited container", func(t *testing.T) {
		name := testrig.UniqueName(t, "pm-mem")
		c := p.Start(t, name, limit32, "-alloc", "8")
		m := e.WaitFor(t, 20*time.Second, "memory series of "+name, func(m testrig.Metrics) bool {
			v, ok := m.Value("exit137_container_memory_limit_bytes", map[string]string{"name": name})
			return ok && v == 32<<20
		})
		usage, ok := m.Value("exit137_container_memory_usage_bytes", map[string]string{"name": name})
		if !ok || usage < 8<<20 {
			t.Errorf("usage of %s: %v, %v; want at least the 8 MiB it touched", name, usage, ok)
		}
		for _, metric := range []string{"exit137_container_memory_working_set_bytes", "exit137_container_memory_max_usage_bytes",
			"exit137_container_oom_kills_total", "exit137_container_info"} {
			if s := m.Series(metric, map[string]string{"name": name, "id": c.ID[:12]}); len(s) != 1 {
				t.Errorf("%s for %s (%.12s): %v", metric, name, c.ID, s)
			}
		}
		t.Logf("%s: usage %.1f MiB of a %d MiB limit, read from /libpod_parent/libpod-%.12s…", name, usage/(1<<20), 32, c.ID)
	})

	// Kept until the end (registered on the test, not the subtest): the
	// after-the-fact explain inspects it.
	oomName := testrig.UniqueName(t, "pm-oom")
	// A second before it allocates: Podman's start event reaches its API
	// late (its event log is a file), and the init's pid, which makes the
	// kernel's word decisive, is read at that start. A container killed
	// before its start is seen still gets oom, strong.
	p.Start(t, oomName, limit32, "-delay", "1s", "-alloc", "200")
	t.Run("an OOM kill is oom from the kernel's word, though podman says nothing", func(t *testing.T) {
		// No podman command here until the verdict: the die event must
		// come from conmon's cleanup, not from a command that syncs.
		v := requireExplained(t, e, oomName, attribution.CauseOOM, "137", "decisive", attribution.KindKernelOOM)
		t.Logf("verdict: %s (%s): %s", v.Cause, v.Strength, v.Summary)
		if flag := p.Inspect(t, oomName, "{{.State.OOMKilled}}"); flag != "false" {
			t.Logf("podman's OOMKilled flag is %s (4.3.1 leaves it false)", flag)
		}
		events := p.Events(t, oomName, started)
		t.Logf("podman events: %v", events)
		for _, ev := range events {
			if strings.HasPrefix(ev, "oom") {
				t.Logf("this podman reports oom events: the kernel's word decides anyway")
			}
		}
		for _, c := range v.Evidence {
			if c.Kind == attribution.KindOOMKilledFlag || c.Kind == attribution.KindDockerOOM {
				t.Logf("podman gave %s evidence: %s", c.Kind, c.Detail)
			}
		}
	})

	t.Run("podman kill is manual, traced to the runtime", func(t *testing.T) {
		name := testrig.UniqueName(t, "pm-kill")
		p.Start(t, name, nil)
		time.Sleep(300 * time.Millisecond)
		p.Run(t, "kill", name)
		v := requireExplained(t, e, name, attribution.CauseManual, "137", "decisive", attribution.KindSignal)
		t.Logf("verdict: %s (%s): %s", v.Cause, v.Strength, v.Summary)
		c := signalEvidence(v.Verdict)
		if c == nil || c.Sender != "runtime" || !c.Decisive {
			t.Errorf("signal evidence %+v, want a decisive SIGKILL from class runtime", c)
		}
		for _, cited := range v.Evidence {
			if cited.Kind == attribution.KindDockerKill && !strings.Contains(cited.Detail, "podman event: kill") {
				t.Errorf("kill event detail %q does not say podman", cited.Detail)
			}
		}
	})

	t.Run("podman stop past its timeout is manual, though podman emits only die", func(t *testing.T) {
		name := testrig.UniqueName(t, "pm-stop")
		p.Start(t, name, nil, "-ignore-term")
		time.Sleep(300 * time.Millisecond)
		since := time.Now()
		p.Run(t, "stop", "-t", "1", name)
		v := requireExplained(t, e, name, attribution.CauseManual, "137", "decisive", attribution.KindSignal)
		t.Logf("verdict: %s (%s): %s", v.Cause, v.Strength, v.Summary)
		events := p.Events(t, name, since)
		t.Logf("podman events: %v", events)
		for _, ev := range events {
			if strings.HasPrefix(ev, "kill") || strings.HasPrefix(ev, "stop") {
				t.Logf("this podman reports %q at a stop", ev)
			}
		}
	})

	t.Run("an exit code 3 is none", func(t *testing.T) {
		name := testrig.UniqueName(t, "pm-exit3")
		p.Start(t, name, nil, "-sleep", "300ms", "-exit", "3")
		v := requireExplained(t, e, name, attribution.CauseNone, "3", "")
		t.Logf("verdict: %s (%s): %s", v.Cause, v.Strength, v.Summary)
	})

	t.Run("sigkills from the runtime are counted as runtime", func(t *testing.T) {
		if got := sigkills(t, e, "runtime"); got < 2 {
			t.Errorf("sigkills_total{sender=runtime} %v, want the kill's and the stop's", got)
		}
	})

	t.Run("explain after the fact on the podman host", func(t *testing.T) {
		if err := e.Stop(t, syscall.SIGTERM); err != nil {
			t.Logf("exporter stop: %v", err)
		}
		out := testrig.Run(t, testrig.BuildBinary(t, "cmd/exit137-exporter"), "explain", oomName,
			"--exporter.url="+deadURL, "--timeout=1s", "--docker.host="+p.Host(), "--kmsg.path=/dev/kmsg")
		t.Logf("explain %s:\n%s", oomName, out)
		if !strings.Contains(out, "after the fact") || !strings.Contains(out, "cause    oom") || !strings.Contains(out, "libpod-") {
			t.Errorf("after-the-fact explain of a podman OOM kill does not say oom from the kernel's line")
		}
	})
}
