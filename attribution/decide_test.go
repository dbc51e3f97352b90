package attribution

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	cid   = "4f1c2a9be0d3c7a8f6e5b4a3928170f6e5d4c3b2a190817263544536271809ab"
	other = "0b9a8f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a"
	win   = 5 * time.Minute
	sec   = time.Second
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// Evidence builders; at is the offset from the exit.
func dockerOOM(at time.Duration) Evidence {
	return Evidence{Container: cid, Time: t0.Add(at), Source: "docker", Kind: KindDockerOOM}
}
func kernelOOM(at time.Duration, constraint string) Evidence {
	return Evidence{Container: cid, Time: t0.Add(at), Source: "kmsg", Kind: KindKernelOOM, Constraint: constraint}
}
func cgroupOOM(at time.Duration) Evidence {
	return Evidence{Container: cid, Time: t0.Add(at), Source: "cgroupfs", Kind: KindCgroupOOMKill}
}
func partOf(at time.Duration) Evidence {
	return Evidence{Container: cid, Time: t0.Add(at), Source: "systemd", Kind: KindSystemdPartOf,
		Unit: "app.service", PartOf: "db.service"}
}
func withDetail(e Evidence, detail string) Evidence {
	e.Detail = detail
	return e
}
func dockerKill(at time.Duration, sig int) Evidence {
	return Evidence{Container: cid, Time: t0.Add(at), Source: "docker", Kind: KindDockerKill, Signal: sig}
}
func dockerStop(at time.Duration) Evidence {
	return Evidence{Container: cid, Time: t0.Add(at), Source: "docker", Kind: KindDockerStop}
}
func traced(at time.Duration, sig int, sender string) Evidence {
	return Evidence{Container: cid, Time: t0.Add(at), Source: "sigtrace", Kind: KindSignal, Signal: sig, Sender: sender}
}
func disk(at time.Duration) Evidence {
	return Evidence{Time: t0.Add(at), Source: "disk", Kind: KindDiskPressure}
}
func flag() Evidence {
	return Evidence{Container: cid, Source: "docker", Kind: KindOOMKilledFlag}
}

// For another container.
func forOther(e Evidence) Evidence { e.Container = other; return e }

// With a human detail (also the item's identity in the test).
func detail(e Evidence, d string) Evidence { e.Detail = d; return e }

func TestDecide(t *testing.T) {
	tests := []struct {
		name      string
		code      int
		oomKilled bool
		ev        []Evidence
		cause     Cause
		weak      bool
		// cited: indices into ev, in the order the verdict must list them.
		cited []int
		// decisive: indices into ev marked decisive.
		decisive []int
		summary  []string // substrings
	}{
		// Every rule alone.
		{name: "docker oom alone", code: 137,
			ev:    []Evidence{dockerOOM(-300 * time.Millisecond)},
			cause: CauseOOM, cited: []int{0}, decisive: []int{0},
			summary: []string{"OOM-killed: Docker reported an oom event", "0.3s before the exit"}},
		{name: "kernel memcg oom alone", code: 137,
			ev:    []Evidence{detail(kernelOOM(-300*time.Millisecond, "CONSTRAINT_MEMCG"), "Killed process 4242 (alloc)")},
			cause: CauseOOM, cited: []int{0}, decisive: []int{0},
			summary: []string{"OOM-killed: ", "container's memory limit (CONSTRAINT_MEMCG), 0.3s before the exit", "(kmsg: Killed process 4242 (alloc))"}},
		{name: "kernel host-wide oom alone", code: 137,
			ev:    []Evidence{kernelOOM(-sec, "CONSTRAINT_NONE")},
			cause: CauseOOM, cited: []int{0}, decisive: []int{0},
			summary: []string{"host-wide OOM", "CONSTRAINT_NONE", "1.0s before the exit"}},
		{name: "cgroup oom_kill rise alone", code: 137,
			ev:    []Evidence{cgroupOOM(-2 * sec)},
			cause: CauseOOM, cited: []int{0}, decisive: []int{0},
			summary: []string{"oom_kill counter rose", "2.0s before the exit"}},
		{name: "all three oom sources decisive", code: 137,
			ev:    []Evidence{cgroupOOM(0), kernelOOM(-200*time.Millisecond, "CONSTRAINT_MEMCG"), dockerOOM(-100 * time.Millisecond), dockerOOM(-150 * time.Millisecond)},
			cause: CauseOOM, cited: []int{1, 3, 2, 0}, decisive: []int{0, 1, 2, 3},
			summary: []string{"CONSTRAINT_MEMCG", "0.2s before the exit"}},
		{name: "systemd partof alone", code: 137,
			ev:    []Evidence{partOf(-1500 * time.Millisecond)},
			cause: CauseSystemdPartOf, cited: []int{0}, decisive: []int{0},
			summary: []string{"Stopped by systemd: #0", "1.5s before the exit"}},
		{name: "systemd partof with the source's chain", code: 137,
			ev:    []Evidence{withDetail(partOf(-time.Second), "db.service restarted → app.service stopped (PartOf=db.service)")},
			cause: CauseSystemdPartOf, cited: []int{0}, decisive: []int{0},
			summary: []string{"Stopped by systemd: db.service restarted → app.service stopped (PartOf=db.service), 1.0s before the exit"}},
		{name: "docker kill 9 alone", code: 137,
			ev:    []Evidence{dockerKill(-100*time.Millisecond, 9)},
			cause: CauseManual, cited: []int{0}, decisive: []int{0},
			summary: []string{"Killed manually: docker kill (signal 9), 0.1s before the exit"}},
		{name: "docker stop alone", code: 137,
			ev:    []Evidence{dockerStop(10 * time.Millisecond)},
			cause: CauseManual, cited: []int{0}, decisive: []int{0},
			summary: []string{"docker stop ended in SIGKILL"}},
		{name: "docker stop with kill 15 and kill 9: stop timeout", code: 137,
			ev:    []Evidence{dockerStop(10 * time.Millisecond), dockerKill(-10*sec, 15), dockerKill(-10*time.Millisecond, 9)},
			cause: CauseManual, cited: []int{1, 2, 0}, decisive: []int{0, 1, 2},
			summary: []string{"docker stop: SIGTERM ignored, SIGKILL after the timeout", "SIGTERM 10.0s before the exit"}},
		{name: "kill 15 then kill 9 without the stop event: stop timeout", code: 137,
			ev:    []Evidence{dockerKill(-10*sec, 15), dockerKill(-10*time.Millisecond, 9)},
			cause: CauseManual, cited: []int{0, 1}, decisive: []int{0, 1},
			summary: []string{"docker stop: SIGTERM ignored, SIGKILL after the timeout"}},
		{name: "docker kill 15 alone is not decisive", code: 137,
			ev:    []Evidence{dockerKill(-3*sec, 15)},
			cause: CauseUnknown, weak: true, cited: []int{0},
			summary: []string{"SIGKILL with no evidence of who sent it"}},
		{name: "traced kill -9 by a user", code: 137,
			ev:    []Evidence{detail(traced(-40*time.Millisecond, 9, "user"), "bash (pid 812, uid 0, loginuid 1000)")},
			cause: CauseManual, cited: []int{0}, decisive: []int{0},
			summary: []string{"kill -9 by bash (pid 812, uid 0, loginuid 1000), at the exit"}},
		{name: "traced SIGKILL from systemd", code: 137,
			ev:    []Evidence{traced(-sec, 9, "systemd")},
			cause: CauseManual, cited: []int{0}, decisive: []int{0},
			summary: []string{"Killed manually: kill -9 by ", "1.0s before the exit"}},
		{name: "traced SIGKILL from docker", code: 137,
			ev:    []Evidence{traced(-sec, 9, "docker")},
			cause: CauseManual, cited: []int{0}, decisive: []int{0}},
		{name: "traced SIGKILL from other", code: 137,
			ev:    []Evidence{traced(-sec, 9, "other")},
			cause: CauseManual, cited: []int{0}, decisive: []int{0}},
		{name: "traced signal of unknown number from a user", code: 137,
			ev:    []Evidence{traced(-sec, 0, "user")},
			cause: CauseManual, cited: []int{0}, decisive: []int{0}},
		{name: "traced kernel SIGKILL is not manual", code: 137,
			ev:    []Evidence{traced(-100*time.Millisecond, 9, "kernel")},
			cause: CauseUnknown, weak: true, cited: []int{0}},
		{name: "traced SIGTERM from a user is not a SIGKILL", code: 137,
			ev:    []Evidence{traced(-sec, 15, "user")},
			cause: CauseUnknown, weak: true, cited: []int{0}},
		{name: "host-wide disk pressure alone", code: 137,
			ev:    []Evidence{detail(disk(0), "/var/lib/docker 97% used (threshold 90%)")},
			cause: CauseDisk, cited: []int{0}, decisive: []int{0},
			summary: []string{"disk pressure", "/var/lib/docker 97% used (threshold 90%), at the exit"}},
		{name: "sticky flag alone: weak oom", code: 137,
			ev:    []Evidence{flag()},
			cause: CauseOOM, weak: true, cited: []int{0}, decisive: []int{0},
			summary: []string{"Probably OOM-killed", "sticky OOMKilled flag", "no time"}},
		{name: "nothing: unknown", code: 137,
			cause: CauseUnknown, weak: true,
			summary: []string{"SIGKILL with no evidence of who sent it"}},

		// Precedence pairs.
		{name: "oom > partof", code: 137,
			ev:    []Evidence{partOf(-2 * sec), dockerOOM(-sec)},
			cause: CauseOOM, cited: []int{0, 1}, decisive: []int{1}},
		{name: "oom > manual", code: 137,
			ev:    []Evidence{dockerKill(-sec, 9), kernelOOM(-2*sec, "CONSTRAINT_MEMCG")},
			cause: CauseOOM, cited: []int{1, 0}, decisive: []int{1}},
		{name: "oom > disk", code: 137,
			ev:    []Evidence{disk(sec), cgroupOOM(-sec)},
			cause: CauseOOM, cited: []int{1, 0}, decisive: []int{1}},
		{name: "partof > manual: systemd ran the docker stop", code: 137,
			ev:    []Evidence{partOf(-11 * sec), dockerKill(-10*sec, 15), dockerKill(-100*time.Millisecond, 9), dockerStop(0), traced(-100*time.Millisecond, 9, "docker")},
			cause: CauseSystemdPartOf, cited: []int{0, 1, 2, 4, 3}, decisive: []int{0},
			summary: []string{"Stopped by systemd", "the docker stop/kill seen was systemd carrying it out"}},
		{name: "partof > disk", code: 137,
			ev:    []Evidence{disk(-sec), partOf(-sec)},
			cause: CauseSystemdPartOf, cited: []int{0, 1}, decisive: []int{1}},
		{name: "manual > disk", code: 137,
			ev:    []Evidence{disk(-sec), dockerKill(-sec, 9)},
			cause: CauseManual, cited: []int{0, 1}, decisive: []int{1}},
		{name: "manual > flag", code: 137,
			ev:    []Evidence{flag(), dockerKill(-sec, 9)},
			cause: CauseManual, cited: []int{1, 0}, decisive: []int{1}},
		{name: "partof > flag", code: 137,
			ev:    []Evidence{flag(), partOf(-sec)},
			cause: CauseSystemdPartOf, cited: []int{1, 0}, decisive: []int{1}},
		{name: "disk > flag", code: 137,
			ev:    []Evidence{flag(), disk(-sec)},
			cause: CauseDisk, cited: []int{1, 0}, decisive: []int{1}},
		{name: "timed oom with the flag: not weak, flag not decisive", code: 137,
			ev:    []Evidence{flag(), dockerOOM(-sec)},
			cause: CauseOOM, cited: []int{1, 0}, decisive: []int{1}},

		// Time and container filtering.
		{name: "late evidence within clock skew counts", code: 137,
			ev:    []Evidence{dockerOOM(1900 * time.Millisecond)},
			cause: CauseOOM, cited: []int{0}, decisive: []int{0},
			summary: []string{"1.9s after the exit"}},
		{name: "late evidence exactly at clock skew counts", code: 137,
			ev:    []Evidence{dockerKill(ClockSkew, 9)},
			cause: CauseManual, cited: []int{0}, decisive: []int{0}},
		{name: "late evidence beyond clock skew ignored", code: 137,
			ev:    []Evidence{dockerOOM(ClockSkew + time.Millisecond)},
			cause: CauseUnknown, weak: true},
		{name: "evidence before the window ignored", code: 137,
			ev:    []Evidence{dockerOOM(-win - time.Millisecond), disk(-win - sec)},
			cause: CauseUnknown, weak: true},
		{name: "evidence at the window's start counts", code: 137,
			ev:    []Evidence{dockerOOM(-win)},
			cause: CauseOOM, cited: []int{0}, decisive: []int{0},
			summary: []string{"300.0s before the exit"}},
		{name: "another container's evidence ignored", code: 137,
			ev:    []Evidence{forOther(dockerOOM(-sec)), forOther(kernelOOM(-sec, "CONSTRAINT_MEMCG")), forOther(dockerKill(-sec, 9)), forOther(partOf(-sec)), forOther(flag()), disk(-sec)},
			cause: CauseDisk, cited: []int{5}, decisive: []int{5}},
		{name: "only disk pressure is host-wide", code: 137,
			ev: []Evidence{
				{Time: t0.Add(-sec), Source: "docker", Kind: KindDockerOOM},
				{Time: t0.Add(-sec), Source: "docker", Kind: KindDockerKill, Signal: 9},
				{Source: "docker", Kind: KindOOMKilledFlag},
			},
			cause: CauseUnknown, weak: true},
		{name: "disk pressure stamped with the container counts too", code: 137,
			ev:    []Evidence{func() Evidence { e := disk(-sec); e.Container = cid; return e }()},
			cause: CauseDisk, cited: []int{0}, decisive: []int{0}},
		{name: "the flag counts whatever its time", code: 137,
			ev:    []Evidence{func() Evidence { e := flag(); e.Time = t0.Add(-time.Hour); return e }()},
			cause: CauseOOM, weak: true, cited: []int{0}, decisive: []int{0}},

		// Exits that are not SIGKILL.
		{name: "exit 1 with a child oom kill", code: 1,
			ev:    []Evidence{kernelOOM(-3*sec, "CONSTRAINT_MEMCG"), dockerOOM(-3 * sec)},
			cause: CauseOOM, cited: []int{0, 1}, decisive: []int{0, 1},
			summary: []string{"Exited with code 1 after an OOM kill in the container", "3.0s before the exit"}},
		{name: "exit 1 with only the sticky flag: none", code: 1,
			ev:    []Evidence{flag()},
			cause: CauseNone, cited: []int{0},
			summary: []string{"Exited with code 1: not a SIGKILL"}},
		{name: "exit 0: none", code: 0,
			ev:    []Evidence{dockerStop(0), disk(-sec)},
			cause: CauseNone, cited: []int{1, 0}},
		{name: "exit 143: none", code: 143,
			ev:    []Evidence{dockerKill(-sec, 15), dockerStop(0), partOf(-2 * sec)},
			cause: CauseNone, cited: []int{2, 0, 1},
			summary: []string{"Exited with code 143 (SIGTERM): not a SIGKILL"}},
		{name: "exit 2 from a stop a Go PID 1 ignored: none", code: 2,
			ev:    []Evidence{dockerKill(-sec, 15), dockerStop(0)},
			cause: CauseNone, cited: []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := slices.Clone(tt.ev)
			for i := range ev {
				if ev[i].Detail == "" {
					ev[i].Detail = fmt.Sprintf("#%d", i)
				}
			}
			exit := Exit{ContainerID: cid, Name: "app", Image: "app:1", ExitCode: tt.code, Time: t0, OOMKilled: tt.oomKilled}
			v := Decide(exit, ev, win)

			if v.Cause != tt.cause || v.Weak != tt.weak {
				t.Errorf("cause %s weak %v, want %s weak %v (summary %q)", v.Cause, v.Weak, tt.cause, tt.weak, v.Summary)
			}
			if v.Exit != exit {
				t.Errorf("exit %+v, want %+v", v.Exit, exit)
			}
			if v.Signal != SignalName(tt.code) {
				t.Errorf("signal %q, want %q", v.Signal, SignalName(tt.code))
			}
			var cited, decisive []int
			for _, c := range v.Evidence {
				i := slices.IndexFunc(ev, func(e Evidence) bool { return e.Detail == c.Detail })
				if i < 0 {
					t.Fatalf("cited %+v is not in the input", c)
				}
				cited = append(cited, i)
				if c.Decisive {
					decisive = append(decisive, i)
				}
			}
			if !slices.Equal(cited, tt.cited) {
				t.Errorf("cited %v, want %v", cited, tt.cited)
			}
			slices.Sort(decisive)
			if !slices.Equal(decisive, tt.decisive) {
				t.Errorf("decisive %v, want %v", decisive, tt.decisive)
			}
			for _, s := range tt.summary {
				if !strings.Contains(v.Summary, s) {
					t.Errorf("summary %q lacks %q", v.Summary, s)
				}
			}
			if v.Summary == "" {
				t.Error("empty summary")
			}
		})
	}
}

func TestDecideOrderAndOffsets(t *testing.T) {
	ev := []Evidence{
		disk(1500 * time.Millisecond),
		forOther(dockerOOM(-time.Second)),
		dockerKill(-10*time.Second, 15),
		flag(),
		dockerKill(-20*time.Millisecond, 9),
		dockerStop(5 * time.Millisecond),
	}
	v := Decide(Exit{ContainerID: cid, ExitCode: 137, Time: t0}, ev, win)
	want := []struct {
		kind   Kind
		offset time.Duration
	}{
		{KindDockerKill, -10 * time.Second},
		{KindDockerKill, -20 * time.Millisecond},
		{KindOOMKilledFlag, 0}, // no time of its own: placed at the exit
		{KindDockerStop, 5 * time.Millisecond},
		{KindDiskPressure, 1500 * time.Millisecond},
	}
	if len(v.Evidence) != len(want) {
		t.Fatalf("cited %d items, want %d: %+v", len(v.Evidence), len(want), v.Evidence)
	}
	for i, w := range want {
		c := v.Evidence[i]
		if c.Kind != w.kind || c.Offset != w.offset || !c.Time.Equal(t0.Add(w.offset)) {
			t.Errorf("item %d: %s at %v (time %v), want %s at %v", i, c.Kind, c.Offset, c.Time, w.kind, w.offset)
		}
	}
	if v.Cause != CauseManual {
		t.Errorf("cause %s, want manual", v.Cause)
	}
	for i := 1; i < len(v.Evidence); i++ {
		if v.Evidence[i].Time.Before(v.Evidence[i-1].Time) {
			t.Errorf("evidence not sorted by time at %d", i)
		}
	}
	if ev[3].Time != (time.Time{}) {
		t.Error("Decide modified its input")
	}
}

// Exit.OOMKilled stands for the flag when no flag evidence was passed.
func TestDecideExitOOMKilledField(t *testing.T) {
	exit := Exit{ContainerID: cid, ExitCode: 137, Time: t0, OOMKilled: true}
	v := Decide(exit, nil, win)
	if v.Cause != CauseOOM || !v.Weak {
		t.Fatalf("cause %s weak %v, want weak oom", v.Cause, v.Weak)
	}
	if len(v.Evidence) != 1 || v.Evidence[0].Kind != KindOOMKilledFlag || !v.Evidence[0].Decisive || v.Evidence[0].Offset != 0 {
		t.Fatalf("evidence %+v, want one decisive flag at the exit", v.Evidence)
	}
	// Not doubled when the flag evidence is passed too.
	v = Decide(exit, []Evidence{flag(), dockerKill(-time.Second, 9)}, win)
	if v.Cause != CauseManual || len(v.Evidence) != 2 {
		t.Fatalf("cause %s with %d items, want manual with 2", v.Cause, len(v.Evidence))
	}
	// Listed, not decisive, for another exit code.
	exit.ExitCode = 1
	v = Decide(exit, nil, win)
	if v.Cause != CauseNone || v.Weak || len(v.Evidence) != 1 || v.Evidence[0].Decisive {
		t.Fatalf("got %+v, want none with the flag listed", v)
	}
}

func TestDecideTracedSenderWithoutDetail(t *testing.T) {
	v := Decide(Exit{ContainerID: cid, ExitCode: 137, Time: t0}, []Evidence{traced(-time.Second, 9, "systemd")}, win)
	if want := "Killed manually: kill -9 by a systemd process, 1.0s before the exit"; v.Summary != want {
		t.Errorf("summary %q, want %q", v.Summary, want)
	}
}

func TestDecideNegativeWindow(t *testing.T) {
	v := Decide(Exit{ContainerID: cid, ExitCode: 137, Time: t0}, []Evidence{dockerOOM(-time.Millisecond), dockerKill(time.Second, 9)}, -time.Minute)
	if v.Cause != CauseManual || len(v.Evidence) != 1 {
		t.Fatalf("cause %s with %d items, want manual from the late kill only", v.Cause, len(v.Evidence))
	}
}

func TestSignalName(t *testing.T) {
	for code, want := range map[int]string{
		137: "SIGKILL", 143: "SIGTERM", 139: "SIGSEGV", 134: "SIGABRT", 130: "SIGINT", 129: "SIGHUP",
		131: "SIGQUIT", 135: "SIGBUS", 136: "SIGFPE", 138: "SIGUSR1", 140: "SIGUSR2", 141: "SIGPIPE",
		142: "SIGALRM", 144: "SIGSTKFLT", 145: "SIGCHLD", 159: "SIGSYS",
		0: "none", 1: "none", 2: "none", 127: "none", 128: "none", 160: "none", 255: "none", -1: "none", -137: "none",
	} {
		if got := SignalName(code); got != want {
			t.Errorf("SignalName(%d) = %q, want %q", code, got, want)
		}
	}
	for n := 1; n <= 31; n++ {
		if s := SignalName(128 + n); !strings.HasPrefix(s, "SIG") || len(s) < 5 {
			t.Errorf("SignalName(%d) = %q", 128+n, s)
		}
	}
}

// benchEvidence is a busy host: an OOM among kills, stops, other
// containers' events, disk samples and evidence outside the window.
func benchEvidence() []Evidence {
	ev := []Evidence{
		dockerOOM(-300 * time.Millisecond), dockerOOM(-200 * time.Millisecond),
		detail(kernelOOM(-250*time.Millisecond, "CONSTRAINT_MEMCG"), "Killed process 4242 (alloc)"),
		cgroupOOM(0), flag(), dockerKill(-time.Minute, 15), traced(-time.Second, 9, "kernel"),
		disk(-30 * time.Second), disk(-10 * time.Second), disk(time.Second),
		dockerOOM(-time.Hour), dockerKill(10*time.Second, 9),
	}
	for i := range 8 {
		ev = append(ev, forOther(dockerKill(-time.Duration(i)*time.Second, 9)))
	}
	return ev
}

func TestDecideAllocs(t *testing.T) {
	ev := benchEvidence()
	exit := Exit{ContainerID: cid, ExitCode: 137, Time: t0}
	// One slice for the evidence, one string for the summary.
	if n := testing.AllocsPerRun(100, func() { Decide(exit, ev, win) }); n > 2 {
		t.Errorf("Decide allocates %v times, want at most 2", n)
	}
}

func BenchmarkDecide(b *testing.B) {
	ev := benchEvidence()
	exit := Exit{ContainerID: cid, ExitCode: 137, Time: t0}
	b.ReportAllocs()
	for b.Loop() {
		Decide(exit, ev, win)
	}
}
