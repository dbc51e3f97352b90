package attribution

import (
	"strconv"
	"strings"
	"time"
)

// This file holds the words of the summaries; which rule decides is in
// rules.go. A summary states what the verdict's strength rests on: the
// pids when known, the sender of a traced kill, that a child was the
// victim, that disk pressure is a coincidence.

// summary is the state of one summary being written.
type summary struct {
	// b is a pointer: escape analysis does not tell fields apart, and the
	// builder's buffer lives on the heap; held inline, it would take the
	// verdict and the facts with it.
	b *strings.Builder
	v *Verdict
	f *facts
	r *rule
}

// wording names the summary a rule writes.
type wording uint8

const (
	sayInitOOM wording = iota
	sayContainerOOM
	sayPartOf
	sayKube
	sayManual
	sayDisk
	sayFlag
	sayUnknown
	sayNone
	sayGraceful
	sayExitAfterOOM
)

func summarize(v *Verdict, r *rule, f *facts) string {
	var b strings.Builder
	b.Grow(384)
	s := summary{b: &b, v: v, f: f, r: r}
	if v.Exit.ExitCode == ExitCodeUnknown {
		s.str("Exit code unknown (the run ended while no die event could be received). ")
	}
	switch r.say {
	case sayInitOOM:
		s.initOOM()
	case sayContainerOOM:
		s.containerOOM()
	case sayPartOf:
		s.partOf()
	case sayKube:
		s.kube()
	case sayManual:
		s.manual()
	case sayDisk:
		s.disk()
	case sayFlag:
		s.flag()
	case sayUnknown:
		s.unknown()
	case sayNone:
		s.none()
	case sayGraceful:
		s.graceful()
	case sayExitAfterOOM:
		s.exitAfterOOM()
	}
	s.apiDown()
	return b.String()
}

func (s *summary) str(t string) { s.b.WriteString(t) }

func (s *summary) int(n int) {
	var buf [20]byte
	s.b.Write(strconv.AppendInt(buf[:0], int64(n), 10))
}

// latest returns the cited item of role r nearest the death, or nil.
func (s *summary) latest(r role) *Cited {
	if !s.f.has(r) {
		return nil
	}
	return &s.v.Evidence[s.f.last[r]]
}

// latestKind returns the latest cited item of role r and kind k, or nil.
func (s *summary) latestKind(r role, k Kind) *Cited {
	cs := s.v.Evidence
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Kind == k && roleOf(&cs[i].Evidence, &s.v.Exit) == r {
			return &cs[i]
		}
	}
	return nil
}

// nameless picks the OOM evidence naming no victim to describe: the
// kernel's line first, then Docker's event, then the cgroup's counter;
// near, when set, keeps only evidence within oomNear of the death.
func (s *summary) nameless(near bool) *Cited {
	cs := s.v.Evidence
	for _, k := range [...]Kind{KindKernelOOM, KindDockerOOM, KindCgroupOOMKill} {
		for i := len(cs) - 1; i >= 0; i-- {
			c := &cs[i]
			if c.Kind == k && (!near || c.Offset >= -oomNear) && roleOf(&c.Evidence, &s.v.Exit) == roleOOM {
				return c
			}
		}
	}
	return nil
}

// proc writes " (pid N, comm)" or " (pid N)".
func (s *summary) proc(c *Cited) {
	s.str(" (pid ")
	s.int(c.Pid)
	if c.Comm != "" {
		s.str(", ")
		s.str(c.Comm)
	}
	s.str(")")
}

func (s *summary) offset(c *Cited) { writeOffset(s.b, c.Offset) }

// detail writes " (source: detail)".
func (s *summary) detail(c *Cited) {
	if c.Detail == "" {
		return
	}
	s.str(" (")
	if c.Source != "" {
		s.str(c.Source)
		s.str(": ")
	}
	s.str(c.Detail)
	s.str(")")
}

// killer writes what the kernel's OOM line says about the limit hit.
func (s *summary) killer(c *Cited) {
	switch c.Constraint {
	case "CONSTRAINT_MEMCG":
		s.str("the kernel OOM killer fired at the container's memory limit (CONSTRAINT_MEMCG)")
	case "":
		s.str("the kernel OOM killer fired")
	default:
		s.str("host-wide OOM: the host, not the container's limit, ran out of memory and the kernel OOM killer fired (")
		s.str(c.Constraint)
		s.str(")")
	}
}

// oomEvent writes what a piece of OOM evidence naming no victim says.
func (s *summary) oomEvent(c *Cited) {
	switch c.Kind {
	case KindKernelOOM:
		s.killer(c)
		if c.Pid != 0 {
			s.str(" and killed pid ")
			s.int(c.Pid)
			if c.Comm != "" {
				s.str(" (")
				s.str(c.Comm)
				s.str(")")
			}
		}
	case KindDockerOOM:
		s.str("Docker reported an oom event for the container")
	default:
		s.str("the cgroup's oom_kill counter rose")
	}
}

// unnamed writes why a nameless OOM kill could not be pinned on the init.
func (s *summary) unnamed(c *Cited) {
	switch {
	case s.v.Exit.Pid == 0:
		s.str("; the init's pid is not known, so the victim cannot be matched to it")
	case c.Kind == KindKernelOOM:
		s.str("; the kernel line named no victim pid")
	default:
		s.str("; no kernel line named the victim")
	}
}

// child writes "a child process (pid N, comm) was OOM-killed Xs before the exit".
func (s *summary) child(c *Cited) {
	if n := s.f.count[roleChildOOM]; n > 1 {
		s.int(int(n))
		s.str(" child processes were OOM-killed, the last")
	} else {
		s.str("a child process")
	}
	s.proc(c)
	if n := s.f.count[roleChildOOM]; n <= 1 {
		s.str(" was OOM-killed")
	}
	s.str(" ")
	s.limit(c)
	s.offset(c)
}

// limit writes which limit a kernel OOM kill hit, and ", ": the
// container's, or the host's.
func (s *summary) limit(c *Cited) {
	switch c.Constraint {
	case "CONSTRAINT_MEMCG":
		s.str("at the container's memory limit, ")
	case "":
	default:
		s.str("in a host-wide OOM (")
		s.str(c.Constraint)
		s.str("), ")
	}
}

// notCause writes, for a verdict that is not an OOM, the OOM kill in the
// container that it is not: a child's, or one naming no victim.
func (s *summary) notCause() {
	if c := s.latest(roleChildOOM); c != nil {
		s.str("; ")
		s.child(c)
		s.str(": not the cause of this death")
		return
	}
	if c := s.nameless(false); c != nil {
		s.str("; an OOM kill in the container (")
		s.oomEvent(c)
		s.str("), ")
		s.offset(c)
		if c.Offset < -oomNear {
			s.str(", and the init outlived it: not the cause of this death")
		} else {
			s.str(": no victim matched to the init, not taken as the cause")
		}
	}
}

// alsoKilled writes the SIGKILLs traced to other processes of the
// container, which are not kills of the init.
func (s *summary) alsoKilled() {
	if c := s.latest(roleTracedChild); c != nil {
		s.str("; a SIGKILL from ")
		s.sender(c)
		s.str(" to another process")
		s.proc(c)
		s.str(" was traced, ")
		s.offset(c)
		s.str(": not a kill of the init")
		s.pid(" (pid ", ")")
	}
}

// pid writes the init's pid between pre and post, when known.
func (s *summary) pid(pre, post string) {
	if s.v.Exit.Pid != 0 {
		s.str(pre)
		s.int(s.v.Exit.Pid)
		s.str(post)
	}
}

// sender writes who sent a traced signal.
func (s *summary) sender(c *Cited) {
	if c.Detail != "" {
		s.str(c.Detail)
		return
	}
	s.str("a ")
	s.str(c.Sender)
	s.str(" process")
}

func (s *summary) initOOM() {
	if code := s.v.Exit.ExitCode; code != exitSIGKILL && code != ExitCodeUnknown {
		s.str("OOM-killed, though the exit code is ")
		s.int(code)
		s.str(": ")
	} else {
		s.str("OOM-killed: ")
	}
	sig := s.latestKind(roleInitOOM, KindSignal)
	if k := s.latestKind(roleInitOOM, KindKernelOOM); k != nil {
		s.killer(k)
		s.str(" and killed the container's init")
		s.proc(k)
		s.str(", ")
		s.offset(k)
		s.detail(k)
		if sig != nil {
			s.str("; sigtrace saw the kernel's SIGKILL (SI_KERNEL) to it")
		}
	} else {
		s.str("the kernel itself (SI_KERNEL) sent SIGKILL to the container's init")
		s.proc(sig)
		if sig.SenderContainer != "" {
			s.str(" from a task of the container")
		} else {
			s.str(" from a task outside any known container")
		}
		s.str(", as the OOM killer does, ")
		s.offset(sig)
		s.detail(sig)
	}
	if s.f.manual() || s.f.has(rolePartOf) || s.f.kubeKill() {
		s.str("; a stop or kill was seen too, but the kernel killed the init")
	}
}

// containerOOM: an exit 137 with an OOM kill in the container that the
// kernel did not pin on the init, and no kill of the init to outweigh it.
func (s *summary) containerOOM() {
	s.str("OOM-killed: ")
	if s.r.name == "oom_container" {
		if c := s.latest(roleChildOOM); c != nil {
			s.child(c)
			s.detail(c)
			s.str("; the init exited 137 itself (a wrapper passing on its child's death)")
			return
		}
	}
	c := s.nameless(s.r.name == "oom_at_death")
	s.oomEvent(c)
	s.str(", ")
	s.offset(c)
	s.detail(c)
	s.unnamed(c)
	if c.Offset < -oomNear {
		s.str("; the init outlived it and nothing else killed it: likely a child was the victim " +
			"and the init exited 137 itself (a wrapper passing on its child's death)")
		return
	}
	if s.f.has(rolePartOf) || s.f.manual() || s.f.kubeKill() {
		s.str("; a stop or kill was seen too, but an OOM kill as the init died is the likelier killer")
	}
}

func (s *summary) partOf() {
	c := s.latest(rolePartOf)
	s.str("Stopped by systemd: ")
	// The source's detail is the whole chain (what the parent did, how the
	// child followed); the unit names alone are the fallback.
	switch {
	case c.Detail != "":
		s.str(c.Detail)
	case c.Unit != "" && c.PartOf != "":
		s.str(c.Unit)
		s.str(" was stopped because it is PartOf=/BindsTo= ")
		s.str(c.PartOf)
		s.str(", which stopped or failed")
	default:
		s.str("the container's unit followed another unit's stop or failure (PartOf=/BindsTo=)")
	}
	s.str(", ")
	s.offset(c)
	if s.f.manual() {
		s.str("; the docker stop/kill seen was systemd carrying it out")
	}
	s.notCause()
}

// kubeWhy names why the kubelet killed a container.
var kubeWhy = [nRoles]string{
	roleKubeProbe:      "a failed probe",
	roleKubeEviction:   "the pod's eviction",
	roleKubePreemption: "the pod's preemption",
	roleKubeDeletion:   "the pod's deletion through the API",
}

// kubeKill writes "for <why> (<detail>, <offset>)": the kubelet's kill
// that decides.
func (s *summary) kubeKill() {
	c := s.latest(s.f.kube)
	s.str("for ")
	s.str(kubeWhy[s.f.kube])
	s.str(" (")
	if c.Detail != "" {
		s.str(c.Detail)
	} else {
		s.str(string(c.Kind))
	}
	s.str(", ")
	s.offset(c)
	s.str(")")
}

// kube: the kubelet killed the container; the source's detail names the
// event or pod condition in the API's words.
func (s *summary) kube() {
	s.str("Killed by the kubelet ")
	s.kubeKill()
	if s.v.Exit.ExitCode == exitSIGKILL {
		s.str(": the container outlived its grace period after the SIGTERM and got SIGKILL")
	}
	if (s.f.kube == roleKubeEviction || s.f.kube == roleKubePreemption) && s.f.has(roleKubeDeletion) {
		s.str("; the pod's deletion seen was how it was carried out")
	}
	if s.f.manual() {
		s.str("; the kill seen at the runtime was the kubelet carrying it out")
	}
	s.notCause()
}

// apiDown writes, for a Kubernetes container whose kill the kubelet's
// kills could have explained, that the API could not say whether it did.
func (s *summary) apiDown() {
	c := s.latest(roleKubeAPIDown)
	if c == nil || !s.r.kubeOutranks {
		return
	}
	s.str("; the Kubernetes API was unavailable")
	s.detail(c)
	s.str(", so whether the kubelet killed the container (a failed liveness or startup probe, " +
		"a deletion past its grace period, an eviction, a preemption) cannot be known")
}

func (s *summary) manual() {
	s.str("Killed manually: ")
	f := s.f
	switch {
	case f.has(roleTracedInit):
		c := s.latest(roleTracedInit)
		s.str("kill -9 of the init")
		s.proc(c)
		s.str(" by ")
		s.sender(c)
		s.str(", ")
		s.offset(c)
		switch {
		case f.stopTimeout || f.has(roleStop):
			s.str(", at the end of a docker stop")
		case f.has(roleKill9):
			s.str(", from a docker kill")
		}
	case f.stopTimeout:
		s.str("docker stop: SIGTERM ignored, SIGKILL after the timeout (SIGTERM ")
		s.offset(s.latest(roleTerm))
		s.str(")")
	case f.has(roleStop):
		s.str("docker stop ended in SIGKILL: the process outlived the stop timeout")
	case f.has(roleKill9):
		s.str("docker kill (signal 9), ")
		s.offset(s.latest(roleKill9))
	default:
		c := s.latest(roleTracedKill)
		s.str("kill -9 by ")
		s.sender(c)
		s.str(", ")
		s.offset(c)
		switch {
		case c.Pid == 0:
			s.str("; its target pid was not traced")
		default:
			s.str("; it went to pid ")
			s.int(c.Pid)
			s.str(" and the init's pid is not known")
		}
	}
	s.notCause()
}

func (s *summary) disk() {
	c := s.latest(roleDisk)
	s.str("Killed under disk pressure, a coincidence: ")
	if c.Detail != "" {
		s.str(c.Detail)
	} else {
		s.str("a watched filesystem was above its threshold")
	}
	s.str(", ")
	s.offset(c)
	s.str("; nothing ties it to the kill: no OOM kill, systemd stop or manual kill was seen, and no sender was traced")
	s.alsoKilled()
}

func (s *summary) flag() {
	if s.v.Exit.Kubernetes {
		s.str("Probably OOM-killed: this rests only on the container runtime's sticky OOMKilled reason, which has no time; " +
			"no kernel OOM line, runtime oom event or oom_kill counter rise was seen in the window")
	} else {
		s.str("Probably OOM-killed: this rests only on Docker's sticky OOMKilled flag, which has no time; " +
			"no kernel OOM line, docker oom event or oom_kill counter rise was seen in the window")
	}
	s.alsoKilled()
}

func (s *summary) unknown() {
	if s.v.Exit.ExitCode == ExitCodeUnknown {
		s.str("No evidence of a kill around the end of the run")
	} else {
		s.str("SIGKILL with no evidence of who sent it: no OOM kill logged by the kernel, docker or the cgroup, " +
			"no docker kill/stop, no systemd stop, no traced SIGKILL to the init from a user, docker or systemd, no disk pressure")
		if s.v.Exit.Kubernetes && !s.f.has(roleKubeAPIDown) {
			s.str(", no kill by the kubelet in the Kubernetes API (probe, eviction, preemption, deletion)")
		}
	}
	s.alsoKilled()
	if c := s.latest(roleKernelOther); c != nil {
		s.str("; a SIGKILL the kernel generated itself (SI_KERNEL) was traced to pid ")
		s.int(c.Pid)
		s.str(", ")
		s.offset(c)
		s.str(", not matched to an OOM kill of the init (the kernel also kills a dead init's remaining processes that way)")
	}
}

// code writes "code N" or "code N (SIGNAME)".
func (s *summary) code() {
	s.str("code ")
	s.int(s.v.Exit.ExitCode)
	if s.v.Signal != "none" {
		s.str(" (")
		s.str(s.v.Signal)
		s.str(")")
	}
}

func (s *summary) none() {
	s.str("Exited with ")
	s.code()
	if s.v.Exit.ExitCode == 0 {
		s.str(": the init ended on its own, nothing killed it")
	} else {
		s.str(": not a SIGKILL")
		if !s.f.anyOOM() {
			s.str(", and no OOM kill in the container")
		}
	}
	s.notCause()
}

func (s *summary) graceful() {
	f := s.f
	switch {
	case f.kubeKill():
		s.str("Stopped gracefully: the kubelet sent SIGTERM ")
		s.kubeKill()
	case f.has(roleStop) || f.has(roleTerm):
		s.str("Stopped gracefully: docker stop sent SIGTERM")
		if c := s.latest(roleTerm); c != nil {
			s.str(" ")
			s.offset(c)
		}
	default:
		s.str("Exited with ")
		s.code()
		s.str(": a graceful stop, not a SIGKILL (the SIGTERM's sender was not seen)")
		s.notCause()
		return
	}
	if s.v.Exit.ExitCode == 128+15 {
		s.str(" and the init died of it, ")
	} else {
		s.str(" and the init exited with its own ")
	}
	s.code()
	s.notCause()
}

// exitAfterOOM: a non-zero exit, not a SIGKILL, shortly after an OOM
// kill in the container that was not the init's.
func (s *summary) exitAfterOOM() {
	s.str("Exited with ")
	s.code()
	s.str(", ")
	if c := s.latest(roleChildOOM); c != nil {
		s.gap(c)
		s.str("a child process")
		s.proc(c)
		s.str(" was OOM-killed (")
		s.limit(c)
		s.offset(c)
		s.str(")")
		s.detail(c)
		s.str(": the init was not the victim, it exited after losing a child")
		return
	}
	c := s.nameless(false)
	s.gap(c)
	s.str("an OOM kill in the container (")
	s.oomEvent(c)
	s.str(", ")
	s.offset(c)
	s.str(")")
	s.detail(c)
	s.unnamed(c)
	s.str(": likely a child process was the victim")
}

// gap writes "4.2s after " the evidence, or how it was stamped after the exit.
func (s *summary) gap(c *Cited) {
	d := -c.Offset.Round(100 * time.Millisecond)
	if d < 0 {
		s.str("just before (stamped ")
		writeOffset(s.b, c.Offset)
		s.str(", within clock skew) ")
		return
	}
	var buf [24]byte
	s.b.Write(strconv.AppendFloat(buf[:0], d.Seconds(), 'f', 1, 64))
	s.str("s after ")
}

// writeOffset writes "0.3s before the exit", "1.2s after the exit" or "at
// the exit", to a tenth of a second.
func writeOffset(b *strings.Builder, d time.Duration) {
	d = d.Round(100 * time.Millisecond)
	if d == 0 {
		b.WriteString("at the exit")
		return
	}
	word := " before the exit"
	if d > 0 {
		word = " after the exit"
	} else {
		d = -d
	}
	var buf [24]byte
	b.Write(strconv.AppendFloat(buf[:0], d.Seconds(), 'f', 1, 64))
	b.WriteString("s")
	b.WriteString(word)
}
