package attribution

import (
	"fmt"
	"reflect"
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

// The init's pid in the pid-aware cases, and a child's.
const (
	initPid  = 100
	childPid = 4242
)

// kernelVictim is a kernel OOM kill naming its victim.
func kernelVictim(at time.Duration, pid int, comm string) Evidence {
	e := kernelOOM(at, "CONSTRAINT_MEMCG")
	e.Pid, e.Comm = pid, comm
	return e
}

// sigKernel is a traced SIGKILL the kernel generated itself (SI_KERNEL),
// sent from a task of container from ("" when not in one).
func sigKernel(at time.Duration, pid int, from string) Evidence {
	e := traced(at, 9, "kernel")
	e.Code, e.Pid, e.SenderContainer = siKernel, pid, from
	return e
}

// tracedTo is a traced SIGKILL from sender to pid.
func tracedTo(at time.Duration, sender string, pid int) Evidence {
	e := traced(at, 9, sender)
	e.Pid = pid
	return e
}

// kube is the kubelet's kill of the container, from the Kubernetes API.
func kube(at time.Duration, kind Kind) Evidence {
	return Evidence{Container: cid, Time: t0.Add(at), Source: "kubernetes", Kind: kind}
}

// apiDown is the Kubernetes API unavailable at the death: host-wide.
func apiDown() Evidence {
	return Evidence{Time: t0, Source: "kubernetes", Kind: KindKubeAPIUnavailable}
}

// byPid drops the container of e: evidence joined to the exit by pid only.
func byPid(e Evidence) Evidence { e.Container = ""; return e }

// For another container.
func forOther(e Evidence) Evidence { e.Container = other; return e }

// With a human detail (also the item's identity in the test).
func detail(e Evidence, d string) Evidence { e.Detail = d; return e }

func TestDecide(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name      string
		code      int
		pid       int // the init's pid; 0 unknown
		oomKilled bool
		kube      bool // a Kubernetes container
		ev        []Evidence
		cause     Cause
		strength  Strength
		rule      string // when set, the rule that must decide
		// cited: indices into ev, in the order the verdict must list them.
		cited []int
		// decisive: indices into ev marked as what the verdict rests on.
		decisive []int
		summary  []string // substrings
		lacks    []string // substrings the summary must not have
	}{
		// Every rule alone, the init's pid unknown.
		{name: "docker oom alone", code: 137,
			ev:    []Evidence{dockerOOM(-300 * ms)},
			cause: CauseOOM, strength: StrengthStrong, rule: "oom_at_death", cited: []int{0}, decisive: []int{0},
			summary: []string{"OOM-killed: Docker reported an oom event", "0.3s before the exit", "the init's pid is not known"}},
		{name: "kernel memcg oom alone", code: 137,
			ev:    []Evidence{detail(kernelOOM(-300*ms, "CONSTRAINT_MEMCG"), "Killed process 4242 (alloc)")},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"OOM-killed: ", "container's memory limit (CONSTRAINT_MEMCG), 0.3s before the exit", "(kmsg: Killed process 4242 (alloc))"}},
		{name: "kernel host-wide oom alone", code: 137,
			ev:    []Evidence{kernelOOM(-sec, "CONSTRAINT_NONE")},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"host-wide OOM", "CONSTRAINT_NONE", "1.0s before the exit"}},
		{name: "cgroup oom_kill rise alone, 2s before: the init outlived it", code: 137,
			ev:    []Evidence{cgroupOOM(-2 * sec)},
			cause: CauseOOM, strength: StrengthStrong, rule: "oom_container", cited: []int{0}, decisive: []int{0},
			summary: []string{"oom_kill counter rose", "2.0s before the exit", "a wrapper passing on its child's death"}},
		{name: "all three oom sources", code: 137,
			ev:    []Evidence{cgroupOOM(0), kernelOOM(-200*ms, "CONSTRAINT_MEMCG"), dockerOOM(-100 * ms), dockerOOM(-150 * ms)},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{1, 3, 2, 0}, decisive: []int{0, 1, 2, 3},
			summary: []string{"CONSTRAINT_MEMCG", "0.2s before the exit"}},
		{name: "systemd partof alone", code: 137,
			ev:    []Evidence{partOf(-1500 * ms)},
			cause: CauseSystemdPartOf, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"Stopped by systemd: #0", "1.5s before the exit"}},
		{name: "systemd partof with the source's chain", code: 137,
			ev:    []Evidence{withDetail(partOf(-time.Second), "db.service restarted → app.service stopped (PartOf=db.service)")},
			cause: CauseSystemdPartOf, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"Stopped by systemd: db.service restarted → app.service stopped (PartOf=db.service), 1.0s before the exit"}},
		{name: "docker kill 9 alone", code: 137,
			ev:    []Evidence{dockerKill(-100*ms, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"Killed manually: docker kill (signal 9), 0.1s before the exit"}},
		{name: "docker stop alone", code: 137,
			ev:    []Evidence{dockerStop(10 * ms)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"docker stop ended in SIGKILL"}},
		{name: "docker stop with kill 15 and kill 9: stop timeout", code: 137,
			ev:    []Evidence{dockerStop(10 * ms), dockerKill(-10*sec, 15), dockerKill(-10*ms, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{1, 2, 0}, decisive: []int{0, 1, 2},
			summary: []string{"docker stop: SIGTERM ignored, SIGKILL after the timeout", "SIGTERM 10.0s before the exit"}},
		{name: "kill 15 then kill 9 without the stop event: stop timeout", code: 137,
			ev:    []Evidence{dockerKill(-10*sec, 15), dockerKill(-10*ms, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{0, 1},
			summary: []string{"docker stop: SIGTERM ignored, SIGKILL after the timeout"}},
		{name: "docker kill 15 alone is no kill", code: 137,
			ev:    []Evidence{dockerKill(-3*sec, 15)},
			cause: CauseUnknown, strength: StrengthWeak, cited: []int{0},
			summary: []string{"SIGKILL with no evidence of who sent it"}},
		{name: "traced kill -9 by a user, no target pid", code: 137,
			ev:    []Evidence{detail(traced(-40*ms, 9, "user"), "bash (pid 812, uid 0, loginuid 1000)")},
			cause: CauseManual, strength: StrengthStrong, rule: "manual", cited: []int{0}, decisive: []int{0},
			summary: []string{"kill -9 by bash (pid 812, uid 0, loginuid 1000), at the exit", "its target pid was not traced"}},
		{name: "traced SIGKILL from systemd", code: 137,
			ev:    []Evidence{traced(-sec, 9, "systemd")},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"Killed manually: kill -9 by ", "1.0s before the exit"}},
		{name: "traced SIGKILL from docker", code: 137,
			ev:    []Evidence{traced(-sec, 9, "runtime")},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0}, decisive: []int{0}},
		{name: "traced SIGKILL from other", code: 137,
			ev:    []Evidence{traced(-sec, 9, "other")},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0}, decisive: []int{0}},
		{name: "traced signal of unknown number from a user", code: 137,
			ev:    []Evidence{traced(-sec, 0, "user")},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0}, decisive: []int{0}},
		{name: "traced kernel SIGKILL that is not SI_KERNEL is nothing", code: 137,
			ev:    []Evidence{traced(-100*ms, 9, "kernel")},
			cause: CauseUnknown, strength: StrengthWeak, cited: []int{0}},
		{name: "traced SIGTERM from a user is not a SIGKILL", code: 137,
			ev:    []Evidence{traced(-sec, 15, "user")},
			cause: CauseUnknown, strength: StrengthWeak, cited: []int{0}},
		{name: "disk pressure alone: a weak coincidence", code: 137,
			ev:    []Evidence{detail(disk(0), "/var/lib/docker 97% used (threshold 90%)")},
			cause: CauseDisk, strength: StrengthWeak, cited: []int{0}, decisive: []int{0},
			summary: []string{"disk pressure, a coincidence", "/var/lib/docker 97% used (threshold 90%), at the exit", "nothing ties it to the kill"}},
		{name: "sticky flag alone: weak oom", code: 137,
			ev:    []Evidence{flag()},
			cause: CauseOOM, strength: StrengthWeak, cited: []int{0}, decisive: []int{0},
			summary: []string{"Probably OOM-killed", "sticky OOMKilled flag", "no time"}},
		{name: "nothing: unknown", code: 137,
			cause: CauseUnknown, strength: StrengthWeak,
			summary: []string{"SIGKILL with no evidence of who sent it"}},

		// Precedence pairs, the init's pid unknown.
		{name: "nameless oom at the death > partof", code: 137,
			ev:    []Evidence{partOf(-2 * sec), dockerOOM(-sec)},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"a stop or kill was seen too"}},
		{name: "nameless oom at the death > docker kill", code: 137,
			ev:    []Evidence{dockerKill(-100*ms, 9), kernelOOM(-500*ms, "CONSTRAINT_MEMCG")},
			cause: CauseOOM, strength: StrengthStrong, rule: "oom_at_death", cited: []int{1, 0}, decisive: []int{1},
			summary: []string{"a stop or kill was seen too, but an OOM kill as the init died is the likelier killer"}},
		{name: "docker kill > nameless oom the init outlived by more than 1s", code: 137,
			ev:    []Evidence{dockerKill(-sec, 9), kernelOOM(-2500*ms, "CONSTRAINT_MEMCG")},
			cause: CauseManual, strength: StrengthStrong, cited: []int{1, 0}, decisive: []int{0},
			summary: []string{"docker kill (signal 9), 1.0s before the exit", "an OOM kill in the container (the kernel OOM killer fired", "2.5s before the exit, and the init outlived it: not the cause"}},
		{name: "partof > nameless oom the init outlived", code: 137,
			ev:    []Evidence{dockerOOM(-5 * sec), partOf(-sec)},
			cause: CauseSystemdPartOf, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"Stopped by systemd", "Docker reported an oom event for the container), 5.0s before the exit, and the init outlived it"}},
		{name: "oom at the death > disk", code: 137,
			ev:    []Evidence{disk(sec), cgroupOOM(-sec)},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{1, 0}, decisive: []int{1}},
		{name: "partof > manual: systemd ran the docker stop", code: 137,
			ev:    []Evidence{partOf(-11 * sec), dockerKill(-10*sec, 15), dockerKill(-100*ms, 9), dockerStop(0), traced(-100*ms, 9, "runtime")},
			cause: CauseSystemdPartOf, strength: StrengthStrong, cited: []int{0, 1, 2, 4, 3}, decisive: []int{0},
			summary: []string{"Stopped by systemd", "the docker stop/kill seen was systemd carrying it out"}},
		{name: "partof > disk", code: 137,
			ev:    []Evidence{disk(-sec), partOf(-sec)},
			cause: CauseSystemdPartOf, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{1}},
		{name: "manual > disk", code: 137,
			ev:    []Evidence{disk(-sec), dockerKill(-sec, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{1}},
		{name: "manual > flag", code: 137,
			ev:    []Evidence{flag(), dockerKill(-sec, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{1, 0}, decisive: []int{1}},
		{name: "partof > flag", code: 137,
			ev:    []Evidence{flag(), partOf(-sec)},
			cause: CauseSystemdPartOf, strength: StrengthStrong, cited: []int{1, 0}, decisive: []int{1}},
		{name: "disk > flag", code: 137,
			ev:    []Evidence{flag(), disk(-sec)},
			cause: CauseDisk, strength: StrengthWeak, cited: []int{1, 0}, decisive: []int{1}},
		{name: "timed oom with the flag: strong, the flag not what it rests on", code: 137,
			ev:    []Evidence{flag(), dockerOOM(-sec)},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{1, 0}, decisive: []int{1}},

		// The init's pid known: decide on the process that died.
		{name: "kernel victim is the init: decisive", code: 137, pid: initPid,
			ev:    []Evidence{detail(kernelVictim(-300*ms, initPid, "java"), "Killed process 100 (java)")},
			cause: CauseOOM, strength: StrengthDecisive, rule: "oom_init", cited: []int{0}, decisive: []int{0},
			summary: []string{"OOM-killed: the kernel OOM killer fired at the container's memory limit (CONSTRAINT_MEMCG) and killed the container's init (pid 100, java), 0.3s before the exit"}},
		{name: "kernel victim is the init > docker kill", code: 137, pid: initPid,
			ev:    []Evidence{dockerKill(-100*ms, 9), kernelVictim(-300*ms, initPid, "app")},
			cause: CauseOOM, strength: StrengthDecisive, cited: []int{1, 0}, decisive: []int{1},
			summary: []string{"(pid 100, app)", "a stop or kill was seen too, but the kernel killed the init"}},
		{name: "kernel victim is the init > partof", code: 137, pid: initPid,
			ev:    []Evidence{partOf(-5 * sec), kernelVictim(-300*ms, initPid, "app")},
			cause: CauseOOM, strength: StrengthDecisive, cited: []int{0, 1}, decisive: []int{1}},
		{name: "host-wide oom of the init keeps its wording", code: 137, pid: initPid,
			ev:    []Evidence{func() Evidence { e := kernelVictim(-sec, initPid, "app"); e.Constraint = "CONSTRAINT_NONE"; return e }()},
			cause: CauseOOM, strength: StrengthDecisive, cited: []int{0}, decisive: []int{0},
			summary: []string{"host-wide OOM: the host, not the container's limit, ran out of memory", "CONSTRAINT_NONE", "killed the container's init (pid 100, app)"}},
		{name: "SI_KERNEL SIGKILL to the init from its container: decisive oom", code: 137, pid: initPid,
			ev:    []Evidence{dockerOOM(-200 * ms), sigKernel(-100*ms, initPid, cid)},
			cause: CauseOOM, strength: StrengthDecisive, rule: "oom_init", cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"the kernel itself (SI_KERNEL) sent SIGKILL to the container's init (pid 100) from a task of the container", "0.1s before the exit"}},
		{name: "SI_KERNEL SIGKILL to the init, sender's container unknown: decisive oom", code: 137, pid: initPid,
			ev:    []Evidence{sigKernel(-100*ms, initPid, "")},
			cause: CauseOOM, strength: StrengthDecisive, cited: []int{0}, decisive: []int{0},
			summary: []string{"from a task outside any known container"}},
		{name: "SI_KERNEL SIGKILL to the init from another container is not oom", code: 137, pid: initPid,
			ev:    []Evidence{sigKernel(-100*ms, initPid, other)},
			cause: CauseUnknown, strength: StrengthWeak, cited: []int{0}},
		{name: "SI_KERNEL SIGKILL and kernel victim both the init", code: 137, pid: initPid,
			ev:    []Evidence{kernelVictim(-120*ms, initPid, "app"), sigKernel(-121*ms, initPid, cid)},
			cause: CauseOOM, strength: StrengthDecisive, cited: []int{1, 0}, decisive: []int{0, 1},
			summary: []string{"killed the container's init (pid 100, app)", "sigtrace saw the kernel's SIGKILL (SI_KERNEL) to it"}},
		{name: "SI_KERNEL kill of a child at the death (zap) + exit 1: none", code: 1, pid: initPid,
			ev:    []Evidence{sigKernel(50*ms, childPid, cid)},
			cause: CauseNone, strength: StrengthStrong, rule: "none", cited: []int{0},
			summary: []string{"Exited with code 1: not a SIGKILL, and no OOM kill in the container"}},
		{name: "SI_KERNEL kill of a child + exit 137 alone: unknown", code: 137, pid: initPid,
			ev:    []Evidence{sigKernel(0, childPid, cid)},
			cause: CauseUnknown, strength: StrengthWeak, cited: []int{0},
			summary: []string{"(SI_KERNEL) was traced to pid 4242", "not matched to an OOM kill of the init"}},
		{name: "SI_KERNEL kills of children at the death + docker kill: manual", code: 137, pid: initPid,
			ev:    []Evidence{dockerKill(-100*ms, 9), sigKernel(0, childPid, cid)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{0}},
		{name: "child OOM 20s before + docker kill 9: manual, the child named", code: 137, pid: initPid,
			ev:    []Evidence{kernelVictim(-20*sec, childPid, "worker"), dockerOOM(-20 * sec), dockerKill(-100*ms, 9)},
			cause: CauseManual, strength: StrengthStrong, rule: "manual", cited: []int{0, 1, 2}, decisive: []int{2},
			summary: []string{"Killed manually: docker kill (signal 9), 0.1s before the exit",
				"a child process (pid 4242, worker) was OOM-killed at the container's memory limit, 20.0s before the exit: not the cause"}},
		{name: "two children OOM-killed before a docker kill", code: 137, pid: initPid,
			ev:    []Evidence{kernelVictim(-20*sec, childPid, "worker"), kernelVictim(-10*sec, childPid+1, "worker"), dockerKill(-100*ms, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0, 1, 2}, decisive: []int{2},
			summary: []string{"2 child processes were OOM-killed, the last (pid 4243, worker) at the container's memory limit, 10.0s before the exit"}},
		{name: "child OOM at the death + docker oom + docker kill: manual, the kernel named the victim", code: 137, pid: initPid,
			ev:    []Evidence{kernelVictim(-300*ms, childPid, "worker"), dockerOOM(-300 * ms), dockerKill(-100*ms, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0, 1, 2}, decisive: []int{2},
			summary: []string{"a child process (pid 4242, worker) was OOM-killed"}},
		{name: "child OOM + exit 0: none", code: 0, pid: initPid,
			ev:    []Evidence{kernelVictim(-20*sec, childPid, "worker"), dockerOOM(-20 * sec)},
			cause: CauseNone, strength: StrengthStrong, rule: "exit_zero", cited: []int{0, 1},
			summary: []string{"Exited with code 0: the init ended on its own", "a child process (pid 4242, worker) was OOM-killed", "not the cause"}},
		{name: "child OOM + exit 143 after docker stop: none", code: 143, pid: initPid,
			ev:    []Evidence{kernelVictim(-20*sec, childPid, "worker"), dockerKill(-10*sec, 15), dockerStop(10 * ms)},
			cause: CauseNone, strength: StrengthStrong, rule: "graceful_stop", cited: []int{0, 1, 2}, decisive: []int{1, 2},
			summary: []string{"Stopped gracefully: docker stop sent SIGTERM 10.0s before the exit and the init died of it, code 143 (SIGTERM)", "(pid 4242, worker)"}},
		{name: "child OOM + exit 1: oom, the gap shown", code: 1, pid: initPid,
			ev:    []Evidence{detail(kernelVictim(-4200*ms, childPid, "worker"), "Killed process 4242 (worker)")},
			cause: CauseOOM, strength: StrengthStrong, rule: "oom_child", cited: []int{0}, decisive: []int{0},
			summary: []string{"Exited with code 1, 4.2s after a child process (pid 4242, worker) was OOM-killed (at the container's memory limit, 4.2s before the exit)", "the init was not the victim"}},
		{name: "wrapper exits 137 after its child's OOM kill: oom (child)", code: 137, pid: initPid,
			ev:    []Evidence{kernelVictim(-300*ms, childPid, "worker"), dockerOOM(-300 * ms)},
			cause: CauseOOM, strength: StrengthStrong, rule: "oom_container", cited: []int{0, 1}, decisive: []int{0, 1},
			summary: []string{"OOM-killed: a child process (pid 4242, worker) was OOM-killed at the container's memory limit, 0.3s before the exit",
				"the init exited 137 itself (a wrapper passing on its child's death)"}},
		{name: "traced user SIGKILL to a child + exit 137: unknown", code: 137, pid: initPid,
			ev:    []Evidence{detail(tracedTo(-sec, "user", childPid), "bash (pid 812, uid 0)")},
			cause: CauseUnknown, strength: StrengthWeak, cited: []int{0},
			summary: []string{"SIGKILL with no evidence", "a SIGKILL from bash (pid 812, uid 0) to another process (pid 4242) was traced", "not a kill of the init (pid 100)"}},
		{name: "traced user SIGKILL to the init: decisive manual", code: 137, pid: initPid,
			ev:    []Evidence{detail(tracedTo(-40*ms, "user", initPid), "bash (pid 812, uid 0, loginuid 1000)")},
			cause: CauseManual, strength: StrengthDecisive, rule: "manual_traced", cited: []int{0}, decisive: []int{0},
			summary: []string{"Killed manually: kill -9 of the init (pid 100) by bash (pid 812, uid 0, loginuid 1000), at the exit"}},
		{name: "docker kill traced to the init: decisive manual", code: 137, pid: initPid,
			ev:    []Evidence{dockerKill(-100*ms, 9), tracedTo(-90*ms, "runtime", initPid)},
			cause: CauseManual, strength: StrengthDecisive, cited: []int{0, 1}, decisive: []int{0, 1},
			summary: []string{"kill -9 of the init (pid 100) by #1", "from a docker kill"}},
		{name: "traced SIGKILL to the init > nameless oom at the death", code: 137, pid: initPid,
			ev:    []Evidence{dockerOOM(-300 * ms), tracedTo(-100*ms, "user", initPid)},
			cause: CauseManual, strength: StrengthDecisive, cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"no victim matched to the init, not taken as the cause"}},
		{name: "partof > docker's SIGKILL traced to the init", code: 137, pid: initPid,
			ev:    []Evidence{partOf(-11 * sec), dockerKill(-10*sec, 15), tracedTo(-100*ms, "runtime", initPid), dockerStop(0)},
			cause: CauseSystemdPartOf, strength: StrengthStrong, cited: []int{0, 1, 2, 3}, decisive: []int{0}},
		{name: "traced SIGKILL to the init > child OOM", code: 137, pid: initPid,
			ev:    []Evidence{kernelVictim(-5*sec, childPid, "worker"), tracedTo(-100*ms, "systemd", initPid)},
			cause: CauseManual, strength: StrengthDecisive, cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"(pid 4242, worker) was OOM-killed", "not the cause"}},
		{name: "init OOM-killed after a docker stop's SIGTERM, exit 143: oom", code: 143, pid: initPid,
			ev:    []Evidence{dockerKill(-5*sec, 15), kernelVictim(-300*ms, initPid, "app")},
			cause: CauseOOM, strength: StrengthDecisive, rule: "oom_init", cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"OOM-killed, though the exit code is 143: "}},
		{name: "init OOM-killed but exit 0: none", code: 0, pid: initPid,
			ev:    []Evidence{kernelVictim(-300*ms, initPid, "app")},
			cause: CauseNone, strength: StrengthStrong, cited: []int{0}},
		{name: "pid-matched evidence without a container joins", code: 137, pid: initPid,
			ev:    []Evidence{byPid(kernelVictim(-300*ms, initPid, "app"))},
			cause: CauseOOM, strength: StrengthDecisive, cited: []int{0}, decisive: []int{0},
			summary: []string{"(pid 100, app)"}},
		{name: "evidence without a container for other pids ignored", code: 137, pid: initPid,
			ev: []Evidence{byPid(kernelVictim(-300*ms, childPid, "app")), byPid(tracedTo(-100*ms, "user", 7)),
				byPid(dockerOOM(-100 * ms)), byPid(kernelOOM(-100*ms, "CONSTRAINT_MEMCG"))},
			cause: CauseUnknown, strength: StrengthWeak},
		{name: "evidence without a container never joins an init of unknown pid", code: 137,
			ev:    []Evidence{byPid(kernelVictim(-300*ms, childPid, "app")), byPid(kernelOOM(-100*ms, "CONSTRAINT_MEMCG"))},
			cause: CauseUnknown, strength: StrengthWeak},

		// The init's pid unknown: no pid can be matched.
		{name: "init pid unknown: a kernel victim is nameless oom", code: 137,
			ev:    []Evidence{kernelVictim(-300*ms, childPid, "app")},
			cause: CauseOOM, strength: StrengthStrong, rule: "oom_at_death", cited: []int{0}, decisive: []int{0},
			summary: []string{"killed pid 4242 (app), 0.3s before the exit", "the init's pid is not known, so the victim cannot be matched to it"}},
		{name: "init pid unknown: a kernel victim 20s before + docker kill: manual", code: 137,
			ev:    []Evidence{kernelVictim(-20*sec, childPid, "worker"), dockerKill(-100*ms, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"killed pid 4242 (worker)), 20.0s before the exit, and the init outlived it"}},
		{name: "init pid unknown: a SI_KERNEL SIGKILL is not oom", code: 137,
			ev:    []Evidence{sigKernel(-100*ms, childPid, cid)},
			cause: CauseUnknown, strength: StrengthWeak, cited: []int{0}},
		{name: "init pid unknown: a traced user SIGKILL with a target is strong manual", code: 137,
			ev:    []Evidence{tracedTo(-100*ms, "user", childPid)},
			cause: CauseManual, strength: StrengthStrong, rule: "manual", cited: []int{0}, decisive: []int{0},
			summary: []string{"it went to pid 4242 and the init's pid is not known"}},
		{name: "init pid known: a traced SIGKILL without a target is strong manual", code: 137, pid: initPid,
			ev:    []Evidence{tracedTo(-100*ms, "user", 0)},
			cause: CauseManual, strength: StrengthStrong, rule: "manual", cited: []int{0}, decisive: []int{0}},
		{name: "init pid unknown: child wording needs a known init", code: 1,
			ev:    []Evidence{kernelVictim(-3*sec, childPid, "worker")},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"Exited with code 1, 3.0s after an OOM kill in the container", "killed pid 4242 (worker)", "the init's pid is not known"},
			lacks:   []string{"a child process (pid"}},

		// Time and container filtering.
		{name: "late evidence within clock skew counts", code: 137,
			ev:    []Evidence{dockerOOM(1900 * ms)},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"1.9s after the exit"}},
		{name: "late evidence exactly at clock skew counts", code: 137,
			ev:    []Evidence{dockerKill(ClockSkew, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0}, decisive: []int{0}},
		{name: "late evidence beyond clock skew ignored", code: 137,
			ev:    []Evidence{dockerOOM(ClockSkew + ms)},
			cause: CauseUnknown, strength: StrengthWeak},
		{name: "evidence before the window ignored", code: 137,
			ev:    []Evidence{dockerOOM(-win - ms), disk(-win - sec)},
			cause: CauseUnknown, strength: StrengthWeak},
		{name: "evidence at the window's start counts", code: 137,
			ev:    []Evidence{dockerOOM(-win)},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"300.0s before the exit"}},
		{name: "another container's evidence ignored", code: 137,
			ev:    []Evidence{forOther(dockerOOM(-sec)), forOther(kernelOOM(-sec, "CONSTRAINT_MEMCG")), forOther(dockerKill(-sec, 9)), forOther(partOf(-sec)), forOther(flag()), disk(-sec)},
			cause: CauseDisk, strength: StrengthWeak, cited: []int{5}, decisive: []int{5}},
		{name: "another container's evidence ignored even with the init's pid", code: 137, pid: initPid,
			ev:    []Evidence{forOther(kernelVictim(-sec, initPid, "app")), forOther(tracedTo(-sec, "user", initPid))},
			cause: CauseUnknown, strength: StrengthWeak},
		{name: "only disk pressure is host-wide", code: 137,
			ev: []Evidence{
				{Time: t0.Add(-sec), Source: "docker", Kind: KindDockerOOM},
				{Time: t0.Add(-sec), Source: "docker", Kind: KindDockerKill, Signal: 9},
				{Source: "docker", Kind: KindOOMKilledFlag},
			},
			cause: CauseUnknown, strength: StrengthWeak},
		{name: "disk pressure stamped with the container counts too", code: 137,
			ev:    []Evidence{func() Evidence { e := disk(-sec); e.Container = cid; return e }()},
			cause: CauseDisk, strength: StrengthWeak, cited: []int{0}, decisive: []int{0}},
		{name: "the flag counts whatever its time", code: 137,
			ev:    []Evidence{func() Evidence { e := flag(); e.Time = t0.Add(-time.Hour); return e }()},
			cause: CauseOOM, strength: StrengthWeak, cited: []int{0}, decisive: []int{0}},

		// Exits that are not SIGKILL.
		{name: "exit 1 after a nameless oom kill", code: 1,
			ev:    []Evidence{kernelOOM(-3*sec, "CONSTRAINT_MEMCG"), dockerOOM(-3 * sec)},
			cause: CauseOOM, strength: StrengthStrong, rule: "oom_child", cited: []int{0, 1}, decisive: []int{0, 1},
			summary: []string{"Exited with code 1, 3.0s after an OOM kill in the container", "likely a child process was the victim"}},
		{name: "exit 1 with an oom stamped just after the exit", code: 1,
			ev:    []Evidence{dockerOOM(500 * ms)},
			cause: CauseOOM, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"Exited with code 1, just before (stamped 0.5s after the exit, within clock skew) an OOM kill"}},
		{name: "exit 1 with only the sticky flag: none", code: 1,
			ev:    []Evidence{flag()},
			cause: CauseNone, strength: StrengthStrong, cited: []int{0},
			summary: []string{"Exited with code 1: not a SIGKILL"}},
		{name: "exit 0: none", code: 0,
			ev:    []Evidence{dockerStop(0), disk(-sec)},
			cause: CauseNone, strength: StrengthStrong, cited: []int{1, 0}},
		{name: "exit 0 after a nameless oom: none", code: 0,
			ev:    []Evidence{cgroupOOM(-sec)},
			cause: CauseNone, strength: StrengthStrong, cited: []int{0},
			summary: []string{"the cgroup's oom_kill counter rose), 1.0s before the exit: no victim matched to the init"}},
		{name: "exit 143 after docker stop: none", code: 143,
			ev:    []Evidence{dockerKill(-sec, 15), dockerStop(0), partOf(-2 * sec)},
			cause: CauseNone, strength: StrengthStrong, rule: "graceful_stop", cited: []int{2, 0, 1}, decisive: []int{0, 1},
			summary: []string{"Stopped gracefully: docker stop sent SIGTERM 1.0s before the exit and the init died of it, code 143 (SIGTERM)"}},
		{name: "exit 143 with no stop seen: none", code: 143,
			cause: CauseNone, strength: StrengthStrong, rule: "graceful_stop",
			summary: []string{"Exited with code 143 (SIGTERM): a graceful stop, not a SIGKILL"}},
		{name: "exit 2 from a stop a Go PID 1 ignored: none", code: 2,
			ev:    []Evidence{dockerKill(-sec, 15), dockerStop(0)},
			cause: CauseNone, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{0, 1},
			summary: []string{"the init exited with its own code 2"}},
		{name: "exit 2 from a stop after a nameless oom: none", code: 2,
			ev:    []Evidence{dockerOOM(-5 * sec), dockerKill(-sec, 15), dockerStop(0)},
			cause: CauseNone, strength: StrengthStrong, cited: []int{0, 1, 2}, decisive: []int{1, 2}},

		// The kubelet's kills, from the Kubernetes API.
		{name: "probe kill alone", code: 137, kube: true,
			ev:    []Evidence{detail(kube(-30*sec, KindKubeProbe), "event Killing: Container app failed liveness probe, will be restarted")},
			cause: CauseProbe, strength: StrengthStrong, rule: "kube_probe", cited: []int{0}, decisive: []int{0},
			summary: []string{"Killed by the kubelet for a failed probe (event Killing: Container app failed liveness probe, will be restarted, 30.0s before the exit)",
				"outlived its grace period after the SIGTERM and got SIGKILL"}},
		{name: "eviction alone", code: 137, kube: true,
			ev:    []Evidence{kube(-2*sec, KindKubeEviction)},
			cause: CauseEviction, strength: StrengthStrong, rule: "kube_eviction", cited: []int{0}, decisive: []int{0},
			summary: []string{"Killed by the kubelet for the pod's eviction (#0, 2.0s before the exit)"}},
		{name: "preemption alone", code: 137, kube: true,
			ev:    []Evidence{kube(-2*sec, KindKubePreemption)},
			cause: CausePreemption, strength: StrengthStrong, rule: "kube_preemption", cited: []int{0}, decisive: []int{0},
			summary: []string{"for the pod's preemption"}},
		{name: "deletion alone", code: 137, kube: true,
			ev:    []Evidence{kube(-30*sec, KindKubeDeletion)},
			cause: CauseDeletion, strength: StrengthStrong, rule: "kube_deletion", cited: []int{0}, decisive: []int{0},
			summary: []string{"for the pod's deletion through the API"}},
		{name: "the kubelet's kill counts without the Kubernetes flag too", code: 137,
			ev:    []Evidence{kube(-30*sec, KindKubeProbe)},
			cause: CauseProbe, strength: StrengthStrong, cited: []int{0}, decisive: []int{0}},
		{name: "another container's probe kill ignored", code: 137, kube: true,
			ev:    []Evidence{forOther(kube(-30*sec, KindKubeProbe))},
			cause: CauseUnknown, strength: StrengthWeak,
			summary: []string{"no kill by the kubelet in the Kubernetes API (probe, eviction, preemption, deletion)"}},
		{name: "init OOM-killed > probe kill", code: 137, pid: initPid, kube: true,
			ev:    []Evidence{kube(-20*sec, KindKubeProbe), kernelVictim(-sec, initPid, "app")},
			cause: CauseOOM, strength: StrengthDecisive, rule: "oom_init", cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"a stop or kill was seen too, but the kernel killed the init"}},
		{name: "oom at the death > deletion", code: 137, kube: true,
			ev:    []Evidence{kube(-30*sec, KindKubeDeletion), dockerOOM(-100 * ms)},
			cause: CauseOOM, strength: StrengthStrong, rule: "oom_at_death", cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"an OOM kill as the init died is the likelier killer"}},
		{name: "partof > eviction", code: 137, kube: true,
			ev:    []Evidence{kube(-3*sec, KindKubeEviction), partOf(-2 * sec)},
			cause: CauseSystemdPartOf, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{1}},
		{name: "probe kill > the runtime's SIGKILL traced to the init", code: 137, pid: initPid, kube: true,
			ev:    []Evidence{kube(-30*sec, KindKubeProbe), tracedTo(-100*ms, "runtime", initPid)},
			cause: CauseProbe, strength: StrengthStrong, rule: "kube_probe", cited: []int{0, 1}, decisive: []int{0},
			summary: []string{"the kill seen at the runtime was the kubelet carrying it out"}},
		{name: "deletion > child OOM", code: 137, pid: initPid, kube: true,
			ev:    []Evidence{kernelVictim(-40*sec, childPid, "worker"), kube(-30*sec, KindKubeDeletion)},
			cause: CauseDeletion, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{1},
			summary: []string{"a child process (pid 4242, worker) was OOM-killed", "not the cause"}},
		{name: "probe kill > disk and the CRI's OOMKilled", code: 137, kube: true,
			ev:    []Evidence{flag(), disk(0), kube(-30*sec, KindKubeProbe)},
			cause: CauseProbe, strength: StrengthStrong, cited: []int{2, 0, 1}, decisive: []int{2}},
		{name: "eviction > a deletion nearer the death", code: 137, kube: true,
			ev:    []Evidence{kube(-3*sec, KindKubeEviction), kube(-2*sec, KindKubeDeletion)},
			cause: CauseEviction, strength: StrengthStrong, rule: "kube_eviction", cited: []int{0, 1}, decisive: []int{0},
			summary: []string{"the pod's deletion seen was how it was carried out"}},
		{name: "preemption > a deletion nearer the death", code: 137, kube: true,
			ev:    []Evidence{kube(-3*sec, KindKubePreemption), kube(-2*sec, KindKubeDeletion)},
			cause: CausePreemption, strength: StrengthStrong, rule: "kube_preemption", cited: []int{0, 1}, decisive: []int{0}},
		{name: "a deletion nearer the death > a probe kill", code: 137, kube: true,
			ev:    []Evidence{kube(-40*sec, KindKubeProbe), kube(-10*sec, KindKubeDeletion)},
			cause: CauseDeletion, strength: StrengthStrong, rule: "kube_deletion", cited: []int{0, 1}, decisive: []int{1}},
		{name: "a probe kill nearer the death > a deletion", code: 137, kube: true,
			ev:    []Evidence{kube(-40*sec, KindKubeDeletion), kube(-10*sec, KindKubeProbe)},
			cause: CauseProbe, strength: StrengthStrong, rule: "kube_probe", cited: []int{0, 1}, decisive: []int{1},
			lacks: []string{"how it was carried out"}},
		{name: "an eviction nearer the death > a probe kill", code: 137, kube: true,
			ev:    []Evidence{kube(-40*sec, KindKubeProbe), kube(-2*sec, KindKubeEviction)},
			cause: CauseEviction, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{1}},
		{name: "a probe kill nearer the death > an eviction", code: 137, kube: true,
			ev:    []Evidence{kube(-40*sec, KindKubeEviction), kube(-2*sec, KindKubeProbe)},
			cause: CauseProbe, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{1}},
		{name: "same second: eviction > probe kill > deletion, whatever the order", code: 137, kube: true,
			ev:    []Evidence{kube(-2*sec, KindKubeEviction), kube(-2*sec, KindKubeProbe), kube(-2*sec, KindKubeDeletion)},
			cause: CauseEviction, strength: StrengthStrong, cited: []int{0, 1, 2}, decisive: []int{0}},
		{name: "same second: probe kill > deletion", code: 137, kube: true,
			ev:    []Evidence{kube(-2*sec, KindKubeProbe), kube(-2*sec, KindKubeDeletion)},
			cause: CauseProbe, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{0}},
		{name: "probe kill, then exit 2 after its SIGTERM: none", code: 2, kube: true,
			ev:    []Evidence{detail(kube(-sec, KindKubeProbe), "event Killing: Container app failed liveness probe, will be restarted")},
			cause: CauseNone, strength: StrengthStrong, rule: "graceful_stop", cited: []int{0}, decisive: []int{0},
			summary: []string{"Stopped gracefully: the kubelet sent SIGTERM for a failed probe (event Killing", "the init exited with its own code 2"}},
		{name: "deletion, then exit 143: none", code: 143, kube: true,
			ev:    []Evidence{kube(-sec, KindKubeDeletion)},
			cause: CauseNone, strength: StrengthStrong, rule: "graceful_stop", cited: []int{0}, decisive: []int{0},
			summary: []string{"for the pod's deletion through the API", "the init died of it, code 143 (SIGTERM)"}},
		{name: "deletion, then exit 1 after a child's OOM kill: none", code: 1, pid: initPid, kube: true,
			ev:    []Evidence{kernelVictim(-20*sec, childPid, "worker"), kube(-sec, KindKubeDeletion)},
			cause: CauseNone, strength: StrengthStrong, rule: "graceful_stop", cited: []int{0, 1}, decisive: []int{1}},
		{name: "eviction, then exit 0: none", code: 0, kube: true,
			ev:    []Evidence{kube(-sec, KindKubeEviction)},
			cause: CauseNone, strength: StrengthStrong, rule: "exit_zero", cited: []int{0}},
		{name: "code unknown, deletion: deletion", code: ExitCodeUnknown, kube: true,
			ev:    []Evidence{kube(-sec, KindKubeDeletion)},
			cause: CauseDeletion, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"Exit code unknown"}, lacks: []string{"SIGKILL"}},

		// The Kubernetes API unavailable at a Kubernetes container's death.
		{name: "API unavailable, nothing else: unknown, and what could not be known", code: 137, kube: true,
			ev:    []Evidence{detail(apiDown(), "403 Forbidden")},
			cause: CauseUnknown, strength: StrengthWeak, cited: []int{0},
			summary: []string{"SIGKILL with no evidence of who sent it", "the Kubernetes API was unavailable (kubernetes: 403 Forbidden), so whether the kubelet killed the container (a failed liveness or startup probe, a deletion past its grace period, an eviction, a preemption) cannot be known"},
			lacks:   []string{"no kill by the kubelet in the Kubernetes API"}},
		{name: "API unavailable, the runtime's kill traced: manual, and what could not be known", code: 137, pid: initPid, kube: true,
			ev:    []Evidence{tracedTo(-100*ms, "runtime", initPid), apiDown()},
			cause: CauseManual, strength: StrengthDecisive, cited: []int{0, 1}, decisive: []int{0},
			summary: []string{"Killed manually", "the Kubernetes API was unavailable"}},
		{name: "API unavailable, the CRI's OOMKilled: weak oom, and what could not be known", code: 137, kube: true,
			ev:    []Evidence{flag(), apiDown()},
			cause: CauseOOM, strength: StrengthWeak, rule: "oomkilled_flag", cited: []int{0, 1}, decisive: []int{0},
			summary: []string{"the container runtime's sticky OOMKilled reason", "the Kubernetes API was unavailable"}},
		{name: "API unavailable, the init OOM-killed: nothing the API could change", code: 137, pid: initPid, kube: true,
			ev:    []Evidence{kernelVictim(-sec, initPid, "app"), apiDown()},
			cause: CauseOOM, strength: StrengthDecisive, cited: []int{0, 1}, decisive: []int{0},
			lacks: []string{"API"}},
		{name: "API unavailable then back with the probe kill: probe", code: 137, kube: true,
			ev:    []Evidence{kube(-30*sec, KindKubeProbe), apiDown()},
			cause: CauseProbe, strength: StrengthStrong, cited: []int{0, 1}, decisive: []int{0},
			lacks: []string{"API was unavailable"}},
		{name: "API unavailable ignored for a container not Kubernetes'", code: 137,
			ev:    []Evidence{apiDown()},
			cause: CauseUnknown, strength: StrengthWeak,
			lacks: []string{"Kubernetes"}},
		{name: "API unavailable, exit 1: none, nothing to say", code: 1, kube: true,
			ev:    []Evidence{apiDown()},
			cause: CauseNone, strength: StrengthStrong, cited: []int{0},
			lacks: []string{"API"}},

		// Exits whose code is unknown (found by a reconcile).
		{name: "code unknown, docker kill: manual", code: ExitCodeUnknown,
			ev:    []Evidence{dockerKill(-sec, 9)},
			cause: CauseManual, strength: StrengthStrong, cited: []int{0}, decisive: []int{0},
			summary: []string{"Exit code unknown", "docker kill (signal 9)"}},
		{name: "code unknown, the init OOM-killed: decisive oom", code: ExitCodeUnknown, pid: initPid,
			ev:    []Evidence{kernelVictim(-sec, initPid, "app")},
			cause: CauseOOM, strength: StrengthDecisive, cited: []int{0}, decisive: []int{0}},
		{name: "code unknown, disk pressure only: unknown", code: ExitCodeUnknown,
			ev:    []Evidence{disk(0)},
			cause: CauseUnknown, strength: StrengthWeak, cited: []int{0},
			summary: []string{"Exit code unknown", "No evidence of a kill"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := slices.Clone(tt.ev)
			for i := range ev {
				if ev[i].Detail == "" {
					ev[i].Detail = fmt.Sprintf("#%d", i)
				}
			}
			exit := Exit{ContainerID: cid, Name: "app", Image: "app:1", ExitCode: tt.code, Time: t0, OOMKilled: tt.oomKilled, Pid: tt.pid,
				Kubernetes: tt.kube}
			v := Decide(exit, ev, win)
			t.Logf("%s %s (%s): %s", v.Cause, v.Strength, v.Rule, v.Summary)

			if v.Cause != tt.cause || v.Strength != tt.strength {
				t.Errorf("cause %s strength %s (rule %s), want %s %s (summary %q)", v.Cause, v.Strength, v.Rule, tt.cause, tt.strength, v.Summary)
			}
			if tt.rule != "" && v.Rule != tt.rule {
				t.Errorf("rule %s, want %s", v.Rule, tt.rule)
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
			for _, s := range tt.lacks {
				if strings.Contains(v.Summary, s) {
					t.Errorf("summary %q has %q", v.Summary, s)
				}
			}
			if v.Summary == "" {
				t.Error("empty summary")
			}
			if again := Decide(v.Exit, v.CitedEvidence(), win); !reflect.DeepEqual(again, v) {
				t.Errorf("the verdict decided again from what it cites differs:\n%+v\nwant\n%+v", again, v)
			}
		})
	}
}

// Each cited item carries its own strength: what it could establish about
// the init's death on its own, whatever the verdict.
func TestDecideCitedStrength(t *testing.T) {
	ev := []Evidence{
		kernelVictim(-20*sec, childPid, "worker"), // a child's OOM kill
		dockerKill(-12*sec, 15),                   // a stop's SIGTERM, escalated below
		dockerKill(-2*sec, 9),
		tracedTo(-2*sec, "runtime", initPid),
		tracedTo(-3*sec, "user", childPid), // not the init
		sigKernel(0, childPid+1, cid),      // the kernel emptying the pid namespace
		traced(-sec, 15, "user"),           // not a SIGKILL
		disk(0),
		flag(),
	}
	want := map[int]Strength{0: StrengthStrong, 1: StrengthStrong, 2: StrengthStrong, 3: StrengthDecisive,
		4: "", 5: "", 6: "", 7: StrengthWeak, 8: StrengthWeak}
	for i := range ev {
		ev[i].Detail = fmt.Sprintf("#%d", i)
	}
	v := Decide(Exit{ContainerID: cid, ExitCode: 137, Time: t0, Pid: initPid}, ev, win)
	if v.Cause != CauseManual || v.Strength != StrengthDecisive || v.Rule != "manual_traced" {
		t.Fatalf("%s %s (%s), want manual decisive: %s", v.Cause, v.Strength, v.Rule, v.Summary)
	}
	if len(v.Evidence) != len(ev) {
		t.Fatalf("cited %d items, want %d", len(v.Evidence), len(ev))
	}
	for _, c := range v.Evidence {
		i := slices.IndexFunc(ev, func(e Evidence) bool { return e.Detail == c.Detail })
		if c.Strength != want[i] {
			t.Errorf("item %d (%s): strength %q, want %q", i, c.Kind, c.Strength, want[i])
		}
		if rests := i == 1 || i == 2 || i == 3; c.Decisive != rests {
			t.Errorf("item %d (%s): decisive %v, want %v", i, c.Kind, c.Decisive, rests)
		}
	}
	// A lone SIGTERM points at nothing.
	v = Decide(Exit{ContainerID: cid, ExitCode: 137, Time: t0}, []Evidence{dockerKill(-sec, 15)}, win)
	if v.Evidence[0].Strength != "" {
		t.Errorf("lone docker kill 15: strength %q, want none", v.Evidence[0].Strength)
	}
}

// The tables: names unique, the last row of each always holds, strengths
// and causes set.
func TestRuleTables(t *testing.T) {
	for _, rules := range [][]rule{killRules, exitRules} {
		seen := map[string]bool{}
		for i, r := range rules {
			if seen[r.name] {
				t.Errorf("rule %s twice in a table", r.name)
			}
			seen[r.name] = true
			if r.cause == "" || r.strength == "" || r.when == nil {
				t.Errorf("rule %s: cause %q strength %q", r.name, r.cause, r.strength)
			}
			if i == len(rules)-1 && !r.when(facts{}) {
				t.Errorf("the last rule %s does not always hold", r.name)
			}
		}
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
	if v.Cause != CauseOOM || v.Strength != StrengthWeak {
		t.Fatalf("cause %s strength %s, want weak oom", v.Cause, v.Strength)
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
	if v.Cause != CauseNone || v.Strength != StrengthStrong || len(v.Evidence) != 1 || v.Evidence[0].Decisive {
		t.Fatalf("got %+v, want none with the flag listed", v)
	}
}

func TestDecideTracedSenderWithoutDetail(t *testing.T) {
	v := Decide(Exit{ContainerID: cid, ExitCode: 137, Time: t0}, []Evidence{traced(-time.Second, 9, "systemd")}, win)
	if want := "Killed manually: kill -9 by a systemd process, 1.0s before the exit; its target pid was not traced"; v.Summary != want {
		t.Errorf("summary %q, want %q", v.Summary, want)
	}
}

// The kubelet's kill counts for a death up to its grace period past the
// window: the SIGKILL comes when the grace period runs out.
func TestDecideGraceReach(t *testing.T) {
	exit := Exit{ContainerID: cid, ExitCode: 137, Time: t0, Kubernetes: true}
	probe := kube(-50*sec, KindKubeProbe)
	if v := Decide(exit, []Evidence{probe}, 30*sec); v.Cause != CauseUnknown {
		t.Errorf("a probe kill 50s before a 30s window, no grace: %s, want unknown", v.Cause)
	}
	probe.GraceSeconds = 30
	v := Decide(exit, []Evidence{probe}, 30*sec)
	if v.Cause != CauseProbe || len(v.Evidence) != 1 || v.Evidence[0].Offset != -50*sec {
		t.Errorf("a probe kill 50s before, grace 30s, window 30s: %s %+v, want probe at -50s", v.Cause, v.Evidence)
	}
	probe.Time = t0.Add(-61 * sec)
	if v := Decide(exit, []Evidence{probe}, 30*sec); v.Cause != CauseUnknown {
		t.Errorf("a probe kill 61s before, grace 30s, window 30s: %s, want unknown", v.Cause)
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

// pidEvidence is the pid-aware path with the longest summary: a child's
// OOM kill, then a docker kill traced to the init, and the zap after.
func pidEvidence() []Evidence {
	return []Evidence{
		detail(kernelVictim(-20*time.Second, childPid, "worker"), "Memory cgroup out of memory: Killed process 4242 (worker) total-vm:210000kB"),
		dockerOOM(-20 * time.Second), cgroupOOM(-19 * time.Second),
		dockerKill(-100*time.Millisecond, 9),
		detail(tracedTo(-90*time.Millisecond, "runtime", initPid), "runc (pid 31337, uid 0), /usr/bin/runc, parent containerd-shim"),
		sigKernel(10*time.Millisecond, childPid+1, cid), disk(0),
		forOther(dockerKill(-time.Second, 9)), forOther(kernelVictim(-time.Second, initPid, "app")),
	}
}

func TestDecideAllocsWithPids(t *testing.T) {
	ev := pidEvidence()
	exit := Exit{ContainerID: cid, ExitCode: 137, Time: t0, Pid: initPid}
	if v := Decide(exit, ev, win); v.Cause != CauseManual || v.Strength != StrengthDecisive {
		t.Fatalf("%s %s: %s", v.Cause, v.Strength, v.Summary)
	}
	if n := testing.AllocsPerRun(100, func() { Decide(exit, ev, win) }); n > 2 {
		t.Errorf("Decide allocates %v times, want at most 2", n)
	}
}

func BenchmarkDecidePids(b *testing.B) {
	ev := pidEvidence()
	exit := Exit{ContainerID: cid, ExitCode: 137, Time: t0, Pid: initPid}
	b.ReportAllocs()
	for b.Loop() {
		Decide(exit, ev, win)
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

// The kubelet's kills weigh as strong on their own; the API being
// unavailable points at nothing.
func TestDecideKubeCitedStrength(t *testing.T) {
	ev := []Evidence{kube(-3*sec, KindKubeEviction), kube(-3*sec, KindKubeProbe), kube(-2*sec, KindKubeDeletion),
		kube(-sec, KindKubePreemption), apiDown()}
	v := Decide(Exit{ContainerID: cid, ExitCode: 137, Time: t0, Kubernetes: true}, ev, win)
	if v.Cause != CausePreemption || len(v.Evidence) != len(ev) {
		t.Fatalf("%s with %d items, want preemption with %d: %s", v.Cause, len(v.Evidence), len(ev), v.Summary)
	}
	for _, c := range v.Evidence {
		want := StrengthStrong
		if c.Kind == KindKubeAPIUnavailable {
			want = ""
		}
		if c.Strength != want {
			t.Errorf("%s: strength %q, want %q", c.Kind, c.Strength, want)
		}
	}
}

// Every cause a rule gives is listed, the Kubernetes ones among them.
func TestCausesListed(t *testing.T) {
	for _, rules := range [][]rule{killRules, exitRules} {
		for _, r := range rules {
			if !slices.Contains(Causes, r.cause) {
				t.Errorf("rule %s: cause %s not in Causes", r.name, r.cause)
			}
		}
	}
	for _, c := range KubernetesCauses {
		if !slices.Contains(Causes, c) {
			t.Errorf("Kubernetes cause %s not in Causes", c)
		}
	}
}
