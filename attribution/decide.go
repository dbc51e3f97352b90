package attribution

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// ClockSkew is how long after the exit evidence may be stamped and still
// count: docker, kmsg and D-Bus clocks differ slightly, Docker's stop
// event follows its die event, and disk pressure is sampled at the death.
const ClockSkew = 2 * time.Second

// exitSIGKILL is the exit code of a process killed by SIGKILL (128+9).
const exitSIGKILL = 128 + 9

// Cited is one piece of evidence as a verdict uses it.
type Cited struct {
	Evidence
	// Offset is Evidence.Time − Exit.Time: negative means before the death.
	Offset time.Duration `json:"offset"`
	// Decisive marks the evidence of the rule that won.
	Decisive bool `json:"decisive"`
}

// Verdict is the answer for one exit, with the evidence behind it.
type Verdict struct {
	Exit   Exit   `json:"exit"`
	Cause  Cause  `json:"cause"`
	Signal string `json:"signal"` // SignalName(Exit.ExitCode)
	// Weak is true when the verdict rests on Docker's sticky OOMKilled
	// flag alone, or on nothing (unknown).
	Weak    bool   `json:"weak"`
	Summary string `json:"summary"`
	// Evidence is every piece considered (this container's or host-wide,
	// in the window), sorted by time.
	Evidence []Cited `json:"evidence"`
}

// rule is the precedence rule a piece of evidence can support.
type rule uint8

const (
	ruleNone rule = iota
	ruleOOM
	rulePartOf
	ruleManual
	ruleTerm // docker kill SIGTERM: only part of a docker stop, never alone
	ruleDisk
	ruleFlag
)

// senders whose SIGKILL is someone's deliberate act. "kernel" is not one:
// a kernel-generated SIGKILL is the OOM killer's or the kernel's own.
func manualSender(s string) bool {
	switch s {
	case "user", "docker", "systemd", "other":
		return true
	}
	return false
}

func classify(e *Evidence) rule {
	switch e.Kind {
	case KindDockerOOM, KindKernelOOM, KindCgroupOOMKill:
		return ruleOOM
	case KindSystemdPartOf:
		return rulePartOf
	case KindDockerKill:
		switch e.Signal {
		case 9:
			return ruleManual
		case 15:
			return ruleTerm
		}
	case KindDockerStop:
		return ruleManual
	case KindSignal:
		if (e.Signal == 9 || e.Signal == 0) && manualSender(e.Sender) {
			return ruleManual
		}
	case KindDiskPressure:
		return ruleDisk
	case KindOOMKilledFlag:
		return ruleFlag
	}
	return ruleNone
}

// counts reports whether e is about this exit: this container's (only
// disk pressure is host-wide) and inside the window, except the flag,
// which inspect produces at the exit and which has no time of its own.
func counts(e *Evidence, exit *Exit, from, to time.Time) bool {
	switch {
	case e.Container == "":
		if e.Kind != KindDiskPressure {
			return false
		}
	case e.Container != exit.ContainerID:
		return false
	}
	if e.Kind == KindOOMKilledFlag {
		return true
	}
	return !e.Time.Before(from) && !e.Time.After(to)
}

// Decide attributes exit to a cause from the evidence around it. Evidence
// for other containers or outside [exit.Time−window, exit.Time+ClockSkew]
// is ignored. Exit.OOMKilled counts as a KindOOMKilledFlag item when no
// such item was passed.
func Decide(exit Exit, evidence []Evidence, window time.Duration) Verdict {
	if window < 0 {
		window = 0
	}
	from, to := exit.Time.Add(-window), exit.Time.Add(ClockSkew)

	n, haveFlag := 0, false
	for i := range evidence {
		if counts(&evidence[i], &exit, from, to) {
			n++
			haveFlag = haveFlag || evidence[i].Kind == KindOOMKilledFlag
		}
	}
	synthFlag := exit.OOMKilled && !haveFlag
	if synthFlag {
		n++
	}

	v := Verdict{Exit: exit, Signal: SignalName(exit.ExitCode)}
	if n > 0 {
		v.Evidence = make([]Cited, 0, n)
	}
	for i := range evidence {
		e := &evidence[i]
		if !counts(e, &exit, from, to) {
			continue
		}
		c := Cited{Evidence: *e}
		if c.Kind == KindOOMKilledFlag && c.Time.IsZero() {
			c.Time = exit.Time
		}
		c.Offset = c.Time.Sub(exit.Time)
		v.Evidence = append(v.Evidence, c)
	}
	if synthFlag {
		v.Evidence = append(v.Evidence, Cited{Evidence: Evidence{
			Container: exit.ContainerID,
			Time:      exit.Time,
			Source:    "docker",
			Kind:      KindOOMKilledFlag,
			Detail:    "State.OOMKilled=true",
		}})
	}
	// Stable, so that items with equal stamps keep the sources' order.
	slices.SortStableFunc(v.Evidence, func(a, b Cited) int { return a.Time.Compare(b.Time) })

	var has [ruleFlag + 1]bool
	hasStop := false
	for i := range v.Evidence {
		has[classify(&v.Evidence[i].Evidence)] = true
		hasStop = hasStop || v.Evidence[i].Kind == KindDockerStop
	}
	// A SIGTERM then a SIGKILL from docker is docker stop's escalation,
	// even when the stop event itself was missed.
	stopTimeout := has[ruleTerm] && (hasStop || hasKind(v.Evidence, KindDockerKill, 9))

	var win rule
	switch {
	case exit.ExitCode != exitSIGKILL:
		if has[ruleOOM] {
			win, v.Cause = ruleOOM, CauseOOM
		} else {
			v.Cause = CauseNone
		}
	case has[ruleOOM]:
		win, v.Cause = ruleOOM, CauseOOM
	case has[rulePartOf]:
		win, v.Cause = rulePartOf, CauseSystemdPartOf
	case has[ruleManual]:
		win, v.Cause = ruleManual, CauseManual
	case has[ruleDisk]:
		win, v.Cause = ruleDisk, CauseDisk
	case has[ruleFlag]:
		win, v.Cause, v.Weak = ruleFlag, CauseOOM, true
	default:
		v.Cause, v.Weak = CauseUnknown, true
	}
	if win != ruleNone {
		for i := range v.Evidence {
			r := classify(&v.Evidence[i].Evidence)
			v.Evidence[i].Decisive = r == win || win == ruleManual && r == ruleTerm && stopTimeout
		}
	}
	v.Summary = summarize(&v, win, has[ruleManual], stopTimeout)
	return v
}

func hasKind(cs []Cited, k Kind, sig int) bool {
	for i := range cs {
		if cs[i].Kind == k && cs[i].Signal == sig {
			return true
		}
	}
	return false
}

// last returns the latest cited item of kind k (optionally with signal
// sig, when sig >= 0), or nil. The latest is the one nearest the death.
func last(cs []Cited, k Kind, sig int) *Cited {
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Kind == k && (sig < 0 || cs[i].Signal == sig) {
			return &cs[i]
		}
	}
	return nil
}

func summarize(v *Verdict, win rule, manualSeen, stopTimeout bool) string {
	var b strings.Builder
	b.Grow(192)
	cs := v.Evidence
	switch {
	case v.Cause == CauseNone:
		b.WriteString("Exited with code ")
		b.WriteString(strconv.Itoa(v.Exit.ExitCode))
		if v.Signal != "none" {
			b.WriteString(" (")
			b.WriteString(v.Signal)
			b.WriteString(")")
		}
		b.WriteString(": not a SIGKILL, and no OOM kill in the container")
	case win == ruleOOM:
		if v.Exit.ExitCode == exitSIGKILL {
			b.WriteString("OOM-killed: ")
		} else {
			b.WriteString("Exited with code ")
			b.WriteString(strconv.Itoa(v.Exit.ExitCode))
			b.WriteString(" after an OOM kill in the container (likely a child process was the victim): ")
		}
		oomClause(&b, cs)
	case win == rulePartOf:
		c := last(cs, KindSystemdPartOf, -1)
		b.WriteString("Stopped by systemd: ")
		// The source's detail is the whole chain (what the parent did, how
		// the child followed); the unit names alone are the fallback.
		switch {
		case c.Detail != "":
			b.WriteString(c.Detail)
		case c.Unit != "" && c.PartOf != "":
			b.WriteString(c.Unit)
			b.WriteString(" was stopped because it is PartOf=/BindsTo= ")
			b.WriteString(c.PartOf)
			b.WriteString(", which stopped or failed")
		default:
			b.WriteString("the container's unit followed another unit's stop or failure (PartOf=/BindsTo=)")
		}
		b.WriteString(", ")
		writeOffset(&b, c.Offset)
		if manualSeen {
			b.WriteString("; the docker stop/kill seen was systemd carrying it out")
		}
	case win == ruleManual:
		b.WriteString("Killed manually: ")
		manualClause(&b, cs, stopTimeout)
	case win == ruleDisk:
		c := last(cs, KindDiskPressure, -1)
		b.WriteString("Killed under disk pressure, with no OOM, systemd or manual kill behind it: ")
		if c.Detail != "" {
			b.WriteString(c.Detail)
		} else {
			b.WriteString("a watched filesystem was above its threshold")
		}
		b.WriteString(", ")
		writeOffset(&b, c.Offset)
	case win == ruleFlag:
		b.WriteString("Probably OOM-killed: this rests only on Docker's sticky OOMKilled flag, which has no time; " +
			"no kernel OOM line, docker oom event or oom_kill counter rise was seen in the window")
	default:
		b.WriteString("SIGKILL with no evidence of who sent it: no OOM kill logged by the kernel, docker or the cgroup, " +
			"no docker kill/stop, no systemd stop, no traced SIGKILL from a user, docker or systemd, no disk pressure")
	}
	return b.String()
}

func oomClause(b *strings.Builder, cs []Cited) {
	if c := last(cs, KindKernelOOM, -1); c != nil {
		switch c.Constraint {
		case "CONSTRAINT_MEMCG":
			b.WriteString("the kernel OOM killer fired at the container's memory limit (CONSTRAINT_MEMCG)")
		case "":
			b.WriteString("the kernel OOM killer fired")
		default:
			b.WriteString("host-wide OOM: the host, not the container's limit, ran out of memory and the kernel OOM killer fired (")
			b.WriteString(c.Constraint)
			b.WriteString(")")
		}
		b.WriteString(", ")
		writeOffset(b, c.Offset)
		writeDetail(b, c)
		return
	}
	if c := last(cs, KindDockerOOM, -1); c != nil {
		b.WriteString("Docker reported an oom event for the container, ")
		writeOffset(b, c.Offset)
		writeDetail(b, c)
		return
	}
	c := last(cs, KindCgroupOOMKill, -1)
	b.WriteString("the cgroup's oom_kill counter rose, ")
	writeOffset(b, c.Offset)
	writeDetail(b, c)
}

func manualClause(b *strings.Builder, cs []Cited, stopTimeout bool) {
	if stopTimeout {
		b.WriteString("docker stop: SIGTERM ignored, SIGKILL after the timeout (SIGTERM ")
		writeOffset(b, last(cs, KindDockerKill, 15).Offset)
		b.WriteString(")")
		return
	}
	if c := last(cs, KindDockerStop, -1); c != nil {
		b.WriteString("docker stop ended in SIGKILL: the process outlived the stop timeout")
		return
	}
	if c := last(cs, KindDockerKill, 9); c != nil {
		b.WriteString("docker kill (signal 9), ")
		writeOffset(b, c.Offset)
		return
	}
	for i := len(cs) - 1; i >= 0; i-- {
		c := &cs[i]
		if c.Kind != KindSignal || classify(&c.Evidence) != ruleManual {
			continue
		}
		b.WriteString("kill -9 by ")
		if c.Detail != "" {
			b.WriteString(c.Detail)
		} else {
			b.WriteString("a ")
			b.WriteString(c.Sender)
			b.WriteString(" process")
		}
		b.WriteString(", ")
		writeOffset(b, c.Offset)
		return
	}
}

func writeDetail(b *strings.Builder, c *Cited) {
	if c.Detail == "" {
		return
	}
	b.WriteString(" (")
	if c.Source != "" {
		b.WriteString(c.Source)
		b.WriteString(": ")
	}
	b.WriteString(c.Detail)
	b.WriteString(")")
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

// Linux signal names, by number; exit codes come from Linux containers
// whatever the exporter was built for.
var signalNames = [32]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
	7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
	13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
	18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU",
	23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF",
	28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}

// SignalName names the signal behind a shell-style exit code (128+n), or
// returns "none" when the code is not one.
func SignalName(exitCode int) string {
	n := exitCode - 128
	if n < 1 || n > 31 {
		return "none"
	}
	return signalNames[n]
}
