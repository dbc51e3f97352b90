package attribution

import "time"

// This file holds the verdict rules: what each piece of evidence says
// about the death of the container's init (its role), the facts Decide
// gathers from those roles, and the precedence tables over the facts.
// The words of the summaries are in summary.go.

// exitSIGKILL is the exit code of a process killed by SIGKILL (128+9).
const exitSIGKILL = 128 + 9

// siKernel is the si_code of a signal the kernel generated itself
// (SI_KERNEL), as the OOM killer's SIGKILL is.
const siKernel = 128

// oomNear is how close to the death an OOM kill that names no victim
// must be for the init to possibly be its victim. An init that outlived
// an OOM kill by more than this was not that kill's victim.
const oomNear = time.Second

// role is what one piece of evidence says about the death of the init.
type role uint8

const (
	// roleNone bears on no rule (a traced SIGTERM, a kernel SIGKILL that
	// is not SI_KERNEL).
	roleNone role = iota
	// roleInitOOM: the OOM killer killed the init. The kernel's victim
	// pid is the init's, or a SI_KERNEL SIGKILL went to the init from a
	// task of its container (or of no known container).
	roleInitOOM
	// roleChildOOM: the kernel OOM-killed another process of the
	// container (victim pid known, and not the init's).
	roleChildOOM
	// roleOOM: an OOM kill in the container that names no victim: a
	// docker oom event, a cgroup oom_kill rise, a kernel line without a
	// pid, or any kernel line when the init's pid is unknown.
	roleOOM
	// rolePartOf: systemd stopped the owning unit because of PartOf=/BindsTo=.
	rolePartOf
	// roleKill9: docker kill with SIGKILL.
	roleKill9
	// roleStop: docker stop (SIGTERM, then SIGKILL after the timeout).
	roleStop
	// roleTerm: docker kill with SIGTERM: part of a docker stop, never a
	// kill on its own.
	roleTerm
	// roleTracedInit: a traced SIGKILL from a user, docker, systemd or
	// other process to the init's pid.
	roleTracedInit
	// roleTracedKill: a traced SIGKILL from a user, docker, systemd or
	// other process whose target cannot be matched to the init (its pid
	// or the init's unknown).
	roleTracedKill
	// roleTracedChild: a traced SIGKILL from a user, docker, systemd or
	// other process to a pid that is not the init's: not a kill of the
	// init.
	roleTracedChild
	// roleKernelOther: a SI_KERNEL SIGKILL not matched to the init: the
	// OOM killer's kill of a child, or the kernel emptying the pid
	// namespace of an init that died (zap_pid_ns_processes). Never OOM
	// evidence on its own.
	roleKernelOther
	// roleDisk: a watched filesystem above its threshold.
	roleDisk
	// roleFlag: Docker's sticky State.OOMKilled.
	roleFlag
	// roleKubeProbe, roleKubeEviction, roleKubePreemption and
	// roleKubeDeletion: the kubelet killed the container, for that reason.
	roleKubeProbe
	roleKubeEviction
	roleKubePreemption
	roleKubeDeletion
	// roleKubeAPIDown: the Kubernetes API could not be read around the
	// death of a Kubernetes container.
	roleKubeAPIDown
	nRoles
)

// roleSet is a set of roles, one bit each.
type roleSet uint32

func (s roleSet) has(r role) bool { return s&(1<<r) != 0 }

func setOf(rs ...role) roleSet {
	var s roleSet
	for _, r := range rs {
		s |= 1 << r
	}
	return s
}

// manualSender reports whether a traced SIGKILL's sender class is
// someone's deliberate act. "kernel" is not one: a kernel-generated
// SIGKILL is the OOM killer's or the kernel's own.
func manualSender(s string) bool {
	switch s {
	case "user", "runtime", "systemd", "other":
		return true
	}
	return false
}

// roleOf says what e tells about the death of exit's init.
func roleOf(e *Evidence, exit *Exit) role {
	initKnown := exit.Pid != 0
	switch e.Kind {
	case KindKernelOOM:
		switch {
		case e.Pid == 0 || !initKnown:
			return roleOOM
		case e.Pid == exit.Pid:
			return roleInitOOM
		default:
			return roleChildOOM
		}
	case KindDockerOOM, KindCgroupOOMKill:
		return roleOOM
	case KindSystemdPartOf:
		return rolePartOf
	case KindDockerKill:
		switch e.Signal {
		case 9:
			return roleKill9
		case 15:
			return roleTerm
		}
	case KindDockerStop:
		return roleStop
	case KindSignal:
		if e.Signal != 9 && e.Signal != 0 {
			return roleNone
		}
		if e.Sender == "kernel" {
			if e.Code != siKernel {
				return roleNone
			}
			if initKnown && e.Pid == exit.Pid &&
				(e.SenderContainer == "" || e.SenderContainer == exit.ContainerID) {
				return roleInitOOM
			}
			return roleKernelOther
		}
		if !manualSender(e.Sender) {
			return roleNone
		}
		switch {
		case e.Pid == 0 || !initKnown:
			return roleTracedKill
		case e.Pid == exit.Pid:
			return roleTracedInit
		default:
			return roleTracedChild
		}
	case KindDiskPressure:
		return roleDisk
	case KindOOMKilledFlag:
		return roleFlag
	case KindKubeProbe:
		return roleKubeProbe
	case KindKubeEviction:
		return roleKubeEviction
	case KindKubePreemption:
		return roleKubePreemption
	case KindKubeDeletion:
		return roleKubeDeletion
	case KindKubeAPIUnavailable:
		return roleKubeAPIDown
	}
	return roleNone
}

// roleStrength is how strongly a piece of evidence in role r, on its own,
// points at the cause of the init's death; "" when it points at none.
func roleStrength(r role, f *facts) Strength {
	switch r {
	case roleInitOOM, roleTracedInit:
		return StrengthDecisive
	case roleChildOOM, roleOOM, rolePartOf, roleKill9, roleStop, roleTracedKill,
		roleKubeProbe, roleKubeEviction, roleKubePreemption, roleKubeDeletion:
		return StrengthStrong
	case roleTerm:
		if f.stopTimeout {
			return StrengthStrong
		}
	case roleDisk, roleFlag:
		return StrengthWeak
	}
	return ""
}

// facts is what the cited evidence establishes, for the rules to test.
type facts struct {
	code int // the exit code
	seen roleSet
	// last is the index in the cited evidence of the latest item of each
	// role seen (the nearest the death); count is how many there are.
	last  [nRoles]int32
	count [nRoles]uint16
	// oomNear: an OOM kill naming no victim within oomNear of the death.
	// childNear: the kernel named a child as the victim of an OOM kill
	// within oomNear of the death (which then explains the nameless
	// evidence at the death too).
	oomNear, childNear bool
	// stopTimeout: a docker stop's SIGTERM then SIGKILL (the stop event,
	// or docker kill 15 then docker kill 9).
	stopTimeout bool
	// kube is the kubelet's kill that decides among several: the one
	// nearest before the death, except that an eviction or preemption
	// outweighs a deletion (evicting and preempting through the API
	// delete the pod, and its "Stopping container" is how they were
	// carried out); roleNone when there is none.
	kube role
}

func (f facts) has(r role) bool { return f.seen.has(r) }

// anyOOM: an OOM kill in the container that the kernel did not pin on
// the init (a child's, or one naming no victim).
func (f facts) anyOOM() bool { return f.has(roleChildOOM) || f.has(roleOOM) }

// kubeKill: the kubelet killed the container, for whatever reason.
func (f facts) kubeKill() bool {
	return f.seen&setOf(roleKubeProbe, roleKubeEviction, roleKubePreemption, roleKubeDeletion) != 0
}

func (f facts) manual() bool {
	return f.has(roleKill9) || f.has(roleStop) || f.has(roleTracedInit) || f.has(roleTracedKill) || f.stopTimeout
}

// kubeRank orders the kubelet's kills stamped in the same second: a
// deletion is the least telling, an eviction or preemption the most.
func kubeRank(r role) int {
	switch r {
	case roleKubeDeletion:
		return 0
	case roleKubeProbe:
		return 1
	}
	return 2
}

// gather reads the facts from cs, which is sorted by time.
func gather(f *facts, cs []Cited, exit *Exit) {
	f.code = exit.ExitCode
	var kubeAt time.Duration
	disruption := roleNone // the nearest eviction or preemption
	for i := range cs {
		c := &cs[i]
		r := roleOf(&c.Evidence, exit)
		f.seen |= 1 << r
		f.last[r] = int32(i)
		f.count[r]++
		switch r {
		case roleOOM, roleChildOOM:
			if c.Offset >= -oomNear {
				f.oomNear = f.oomNear || r == roleOOM
				f.childNear = f.childNear || r == roleChildOOM
			}
		case roleKubeEviction, roleKubePreemption, roleKubeProbe, roleKubeDeletion:
			// Cited items are sorted by time; the API stamps whole
			// seconds, so in a tie the more telling kill wins.
			if f.kube == roleNone || c.Offset > kubeAt || kubeRank(r) >= kubeRank(f.kube) {
				f.kube, kubeAt = r, c.Offset
			}
			if r == roleKubeEviction || r == roleKubePreemption {
				disruption = r
			}
		}
	}
	if f.kube == roleKubeDeletion && disruption != roleNone {
		f.kube = disruption
	}
	f.stopTimeout = f.has(roleTerm) && (f.has(roleStop) || f.has(roleKill9))
}

// rule is one row of a precedence table: the first row whose when holds
// decides the verdict. (when takes the facts by value and say is a
// wording, not a function, so that nothing Decide holds escapes to the
// heap through an indirect call.)
type rule struct {
	name     string
	cause    Cause
	strength Strength
	when     func(f facts) bool
	// rests marks the roles whose evidence the verdict rests on (cited as
	// deciding it).
	rests roleSet
	// say is the wording of the summary (summary.go).
	say wording
	// kubeOutranks marks the rows below the kubelet's kills: for a
	// Kubernetes container whose API could not be read, the summary says
	// that one of those may have been the cause.
	kubeOutranks bool
}

// killRules decide an exit 137: the init received SIGKILL. An exit whose
// code is unknown (ExitCodeUnknown) goes through them too, except disk,
// which only ever explains a SIGKILL.
var killRules = []rule{
	{name: "oom_init", cause: CauseOOM, strength: StrengthDecisive,
		// The kernel named the init as the OOM victim, or sent it a
		// SI_KERNEL SIGKILL from its own container.
		when:  func(f facts) bool { return f.has(roleInitOOM) },
		rests: setOf(roleInitOOM), say: sayInitOOM},
	{name: "oom_at_death", cause: CauseOOM, strength: StrengthStrong,
		// An OOM kill naming no victim as the init died, not explained by
		// a child the kernel named then, and no SIGKILL traced to the init.
		when:  func(f facts) bool { return f.oomNear && !f.childNear && !f.has(roleTracedInit) },
		rests: setOf(roleOOM), say: sayContainerOOM},
	{name: "systemd_partof", cause: CauseSystemdPartOf, strength: StrengthStrong,
		// Wins over the docker stop/kill systemd ran to carry it out.
		when:  func(f facts) bool { return f.has(rolePartOf) },
		rests: setOf(rolePartOf), say: sayPartOf},
	// The kubelet's kills: it carried them out with the runtime's SIGKILL,
	// which sigtrace may see as a traced kill of the init.
	{name: "kube_eviction", cause: CauseEviction, strength: StrengthStrong,
		when:  func(f facts) bool { return f.kube == roleKubeEviction },
		rests: setOf(roleKubeEviction), say: sayKube},
	{name: "kube_preemption", cause: CausePreemption, strength: StrengthStrong,
		when:  func(f facts) bool { return f.kube == roleKubePreemption },
		rests: setOf(roleKubePreemption), say: sayKube},
	{name: "kube_probe", cause: CauseProbe, strength: StrengthStrong,
		when:  func(f facts) bool { return f.kube == roleKubeProbe },
		rests: setOf(roleKubeProbe), say: sayKube},
	{name: "kube_deletion", cause: CauseDeletion, strength: StrengthStrong,
		when:  func(f facts) bool { return f.kube == roleKubeDeletion },
		rests: setOf(roleKubeDeletion), say: sayKube},
	{name: "manual_traced", cause: CauseManual, strength: StrengthDecisive,
		when:  func(f facts) bool { return f.has(roleTracedInit) },
		rests: setOf(roleTracedInit, roleTracedKill, roleKill9, roleStop, roleTerm), say: sayManual, kubeOutranks: true},
	{name: "manual", cause: CauseManual, strength: StrengthStrong,
		// docker kill 9, a docker stop that escalated, a traced SIGKILL
		// whose target pid cannot be compared with the init's.
		when:  facts.manual,
		rests: setOf(roleKill9, roleStop, roleTerm, roleTracedKill), say: sayManual, kubeOutranks: true},
	{name: "oom_container", cause: CauseOOM, strength: StrengthStrong,
		// A child's OOM kill (a wrapper exiting 137 itself), or one naming
		// no victim, with no kill of the init.
		when:  facts.anyOOM,
		rests: setOf(roleChildOOM, roleOOM), say: sayContainerOOM, kubeOutranks: true},
	{name: "disk", cause: CauseDisk, strength: StrengthWeak,
		when:  func(f facts) bool { return f.has(roleDisk) && f.code == exitSIGKILL },
		rests: setOf(roleDisk), say: sayDisk, kubeOutranks: true},
	{name: "oomkilled_flag", cause: CauseOOM, strength: StrengthWeak,
		when:  func(f facts) bool { return f.has(roleFlag) },
		rests: setOf(roleFlag), say: sayFlag, kubeOutranks: true},
	{name: "unknown", cause: CauseUnknown, strength: StrengthWeak,
		when: func(facts) bool { return true }, say: sayUnknown, kubeOutranks: true},
}

// exitRules decide every other exit: the init was not SIGKILLed.
var exitRules = []rule{
	{name: "exit_zero", cause: CauseNone, strength: StrengthStrong,
		when: func(f facts) bool { return f.code == 0 }, say: sayNone},
	{name: "oom_init", cause: CauseOOM, strength: StrengthDecisive,
		when:  func(f facts) bool { return f.has(roleInitOOM) },
		rests: setOf(roleInitOOM), say: sayInitOOM},
	{name: "graceful_stop", cause: CauseNone, strength: StrengthStrong,
		// SIGTERM's code, or the app's own code after the SIGTERM of a
		// docker stop or of the kubelet's kill.
		when: func(f facts) bool {
			return f.code == 128+15 || f.has(roleStop) || f.has(roleTerm) || f.kubeKill()
		},
		rests: setOf(roleStop, roleTerm, roleKubeProbe, roleKubeEviction, roleKubePreemption, roleKubeDeletion),
		say:   sayGraceful},
	{name: "oom_child", cause: CauseOOM, strength: StrengthStrong,
		// A non-zero exit shortly after a child's OOM kill.
		when:  facts.anyOOM,
		rests: setOf(roleChildOOM, roleOOM), say: sayExitAfterOOM},
	{name: "none", cause: CauseNone, strength: StrengthStrong,
		when: func(facts) bool { return true }, say: sayNone},
}

// rulesFor picks the table for an exit code.
func rulesFor(code int) []rule {
	if code == exitSIGKILL || code == ExitCodeUnknown {
		return killRules
	}
	return exitRules
}
