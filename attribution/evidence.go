// Package attribution decides why a container exited. It is pure: the
// sources turn the world into timestamped Evidence, Decide turns an Exit
// and the evidence around it into a Verdict. Nothing here reads a clock,
// a file or a socket, so every precedence rule is a table test.
package attribution

import "time"

// Cause is the verdict's answer to "why did it die".
type Cause string

const (
	CauseOOM           Cause = "oom"
	CauseSystemdPartOf Cause = "systemd_partof"
	// The kubelet's own kills, read from the Kubernetes API.
	CauseProbe      Cause = "probe"      // a failed liveness or startup probe
	CauseEviction   Cause = "eviction"   // the kubelet under node pressure, or the Eviction API
	CausePreemption Cause = "preemption" // to make room for another pod
	// CauseDeletion is an API deletion of the pod (a rollout, a scale-down,
	// kubectl delete) that the container outlived its grace period for.
	CauseDeletion Cause = "deletion"
	CauseManual   Cause = "manual"
	CauseDisk     Cause = "disk"
	CauseUnknown  Cause = "unknown"
	// CauseNone is the cause of an exit that was not a SIGKILL and has no
	// OOM evidence behind it.
	CauseNone Cause = "none"
)

// Causes lists every cause, in precedence order, so that metrics can
// pre-initialise one series per cause.
var Causes = []Cause{CauseOOM, CauseSystemdPartOf, CauseProbe, CauseEviction, CausePreemption, CauseDeletion,
	CauseManual, CauseDisk, CauseUnknown, CauseNone}

// KubernetesCauses are the causes only a Kubernetes container can get (the
// kubelet's kills), in precedence order: a kubelet's container's exit
// series carry them as well as the kill causes of every container.
var KubernetesCauses = []Cause{CauseProbe, CauseEviction, CausePreemption, CauseDeletion}

// Kind names what a piece of evidence says.
type Kind string

const (
	// KindDockerOOM is a Docker "oom" event for the container.
	KindDockerOOM Kind = "docker_oom"
	// KindKernelOOM is a kernel "oom-kill:" line whose task_memcg is the
	// container's cgroup (Constraint says whether the container's limit or
	// the host ran out).
	KindKernelOOM Kind = "kernel_oom"
	// KindCgroupOOMKill is a rise of the cgroup's oom_kill counter.
	KindCgroupOOMKill Kind = "cgroup_oom_kill"
	// KindOOMKilledFlag is Docker's sticky State.OOMKilled. It carries no
	// time of its own, so it is weak: it never decides a verdict alone when
	// a time-stamped cause exists.
	KindOOMKilledFlag Kind = "docker_oomkilled_flag"
	// KindSystemdPartOf is a stop of the unit that owns the container,
	// propagated from another unit by PartOf=/BindsTo=.
	KindSystemdPartOf Kind = "systemd_partof"
	// KindDockerKill is a Docker "kill" event; Signal holds its signal.
	KindDockerKill Kind = "docker_kill"
	// KindDockerStop is a Docker "stop" event (docker stop, which sends
	// SIGTERM and, after its timeout, SIGKILL).
	KindDockerStop Kind = "docker_stop"
	// KindSignal is a traced signal sent to a process of the container;
	// Sender says who sent it.
	KindSignal Kind = "signal"
	// KindDiskPressure is a watched filesystem at or above its threshold.
	// It is host-wide: Container is empty.
	KindDiskPressure Kind = "disk_pressure"

	// The kubelet's kills of a container, from the Kubernetes API; Detail
	// names the event or pod condition.
	//
	// KindKubeProbe is a Killing event for a failed liveness or startup
	// probe.
	KindKubeProbe Kind = "kube_probe_kill"
	// KindKubeEviction is the pod's eviction: the kubelet's (event
	// Evicted, DisruptionTarget TerminationByKubelet) or the Eviction
	// API's (DisruptionTarget EvictionByEvictionAPI).
	KindKubeEviction Kind = "kube_eviction"
	// KindKubePreemption is the pod's preemption: the kubelet's (event
	// Preempting) or the scheduler's (DisruptionTarget PreemptionByScheduler).
	KindKubePreemption Kind = "kube_preemption"
	// KindKubeDeletion is the kubelet stopping the container of a pod
	// deleted through the API (Killing "Stopping container" with a
	// deletionTimestamp, or DisruptionTarget DeletionByTaintManager).
	KindKubeDeletion Kind = "kube_deletion"
	// KindKubeAPIUnavailable says the Kubernetes API could not be read
	// around the death, so the kubelet's kills above cannot be known. It
	// is host-wide (Container empty), sampled at the death like disk
	// pressure, and counts only for a Kubernetes container's exit
	// (Exit.Kubernetes); it decides nothing, the summary says what could
	// not be known.
	KindKubeAPIUnavailable Kind = "kube_api_unavailable"
)

// Evidence is one observation, from one source, at one time.
type Evidence struct {
	// Container is the full 64-hex container id, or "" for host-wide
	// evidence (disk pressure, the Kubernetes API unavailable).
	Container string    `json:"container,omitempty"`
	Time      time.Time `json:"time"`
	Source    string    `json:"source"` // docker, kmsg, cgroupfs, systemd, sigtrace, disk, kubernetes
	Kind      Kind      `json:"kind"`
	// Signal is the signal number for KindDockerKill and KindSignal.
	Signal int `json:"signal,omitempty"`
	// Constraint is the kernel's OOM constraint (CONSTRAINT_MEMCG,
	// CONSTRAINT_NONE, ...) for KindKernelOOM.
	Constraint string `json:"constraint,omitempty"`
	// Sender is the bounded sender class (kernel, systemd, docker, user,
	// other) for KindSignal.
	Sender string `json:"sender,omitempty"`
	// Unit and PartOf name the stopped unit and the unit it followed, for
	// KindSystemdPartOf.
	Unit   string `json:"unit,omitempty"`
	PartOf string `json:"partof,omitempty"`
	// Pid is the process the evidence is about, 0 when unknown: the OOM
	// killer's victim (KindKernelOOM) or the SIGKILL's target (KindSignal).
	// Evidence with a Pid but no Container (a victim whose cgroup could
	// not be read in time) is joined to the exit whose init has that pid.
	Pid int `json:"pid,omitempty"`
	// Comm is the name of the process Pid names, when known.
	Comm string `json:"comm,omitempty"`
	// Code is a traced signal's si_code (0 SI_USER, -6 SI_TKILL, 128
	// SI_KERNEL: generated by the kernel itself, as the OOM killer does).
	Code int `json:"code,omitempty"`
	// SenderContainer is the container of a traced signal's sender, ""
	// when the sender is not in a container. The memcg OOM killer sends
	// from the allocating task, which is in the victim's container.
	SenderContainer string `json:"sender_container,omitempty"`
	// GraceSeconds is, for the kubelet's kill, the longest grace period
	// it gave the container between its SIGTERM and its SIGKILL: the death
	// can come that much after Time, so the evidence counts for deaths up
	// to the window plus this after it (Reach).
	GraceSeconds int64 `json:"grace_seconds,omitempty"`
	// Detail is a human sentence: what was seen, in the source's words.
	Detail string `json:"detail"`
}

// Reach is the latest time the evidence can explain a death from: its
// time, or, for a kill with a grace period, the end of that period. A
// death's window reaches back to evidence whose Reach is within it.
func (e *Evidence) Reach() time.Time {
	return e.Time.Add(time.Duration(e.GraceSeconds) * time.Second)
}

// Strength says how much a verdict, or one piece of evidence, can be
// trusted.
type Strength string

const (
	// StrengthDecisive: the kill of the container's init traced to its
	// sender (the kernel's OOM victim pid, a traced SIGKILL to that pid).
	StrengthDecisive Strength = "decisive"
	// StrengthStrong: an event about this container at this death that
	// names no pid (docker kill/stop/oom events, a systemd stop, a cgroup
	// oom_kill rise, the kubelet's kill).
	StrengthStrong Strength = "strong"
	// StrengthWeak: a coincidence or a sticky flag (disk pressure, Docker's
	// State.OOMKilled), or no evidence at all.
	StrengthWeak Strength = "weak"
)

// ExitCodeUnknown is the ExitCode of an exit a reconcile inferred without
// Docker having recorded its code (a run that ended while the exporter
// could not listen, superseded by a later run).
const ExitCodeUnknown = -1

// Exit is one container exit, as Docker reported it.
type Exit struct {
	ContainerID string    `json:"container_id"`
	Name        string    `json:"name"`
	Image       string    `json:"image"`
	ExitCode    int       `json:"exit_code"`
	Time        time.Time `json:"time"`
	// OOMKilled is Docker's sticky State.OOMKilled flag, when known (and
	// read from the inspect of this run, never a later one).
	OOMKilled bool `json:"oom_killed,omitempty"`
	// Pid is the host pid of the run's init (State.Pid of that run), 0
	// when unknown.
	Pid int `json:"pid,omitempty"`
	// Inferred marks an exit a reconcile found (a run that ended while
	// no event could be received), not one seen as a die event.
	Inferred bool `json:"inferred,omitempty"`
	// Kubernetes marks a kubelet's container (it has a pod): the kubelet's
	// kills (probe, eviction, preemption, deletion) are causes of its
	// death, and a Kubernetes API unavailable at its death is said in the
	// summary.
	Kubernetes bool `json:"kubernetes,omitempty"`
}
