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
	CauseManual        Cause = "manual"
	CauseDisk          Cause = "disk"
	CauseUnknown       Cause = "unknown"
	// CauseNone is the cause of an exit that was not a SIGKILL and has no
	// OOM evidence behind it.
	CauseNone Cause = "none"
)

// Causes lists every cause, in precedence order, so that metrics can
// pre-initialise one series per cause.
var Causes = []Cause{CauseOOM, CauseSystemdPartOf, CauseManual, CauseDisk, CauseUnknown, CauseNone}

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
)

// Evidence is one observation, from one source, at one time.
type Evidence struct {
	// Container is the full 64-hex container id, or "" for host-wide
	// evidence (disk pressure).
	Container string    `json:"container,omitempty"`
	Time      time.Time `json:"time"`
	Source    string    `json:"source"` // docker, kmsg, cgroupfs, systemd, sigtrace, disk
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
	// Detail is a human sentence: what was seen, in the source's words.
	Detail string `json:"detail"`
}

// Exit is one container exit, as Docker reported it.
type Exit struct {
	ContainerID string    `json:"container_id"`
	Name        string    `json:"name"`
	Image       string    `json:"image"`
	ExitCode    int       `json:"exit_code"`
	Time        time.Time `json:"time"`
	// OOMKilled is Docker's sticky State.OOMKilled flag, when known.
	OOMKilled bool `json:"oom_killed,omitempty"`
}
