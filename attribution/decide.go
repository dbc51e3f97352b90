package attribution

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"time"
)

// ClockSkew is how long after the exit evidence may be stamped and still
// count: docker, kmsg and D-Bus clocks differ slightly, Docker's stop
// event follows its die event, and disk pressure is sampled at the death.
const ClockSkew = 2 * time.Second

// Cited is one piece of evidence as a verdict uses it.
type Cited struct {
	Evidence
	// Offset is Evidence.Time − Exit.Time: negative means before the death.
	// In JSON it is offset_seconds, a number of seconds (MarshalJSON).
	Offset time.Duration `json:"-"`
	// Decisive marks the evidence the verdict rests on (the evidence of
	// the rule that won); how much each piece weighs is its Strength.
	Decisive bool `json:"decisive"`
	// Strength is how strongly this piece, on its own, points at a cause
	// of the init's death; empty when it points at none (a SIGKILL traced
	// to another process of the container, a lone SIGTERM).
	Strength Strength `json:"strength,omitempty"`
}

// citedJSON is Cited as JSON: the offset in seconds, the unit in its name.
type citedJSON struct {
	plainCited
	OffsetSeconds float64 `json:"offset_seconds"`
}

type plainCited Cited

// MarshalJSON writes the offset as offset_seconds.
func (c Cited) MarshalJSON() ([]byte, error) {
	return json.Marshal(citedJSON{plainCited(c), c.Offset.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Cited) UnmarshalJSON(data []byte) error {
	var j citedJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*c = Cited(j.plainCited)
	c.Offset = time.Duration(math.Round(j.OffsetSeconds * float64(time.Second)))
	return nil
}

// Verdict is the answer for one exit, with the evidence behind it.
type Verdict struct {
	Exit   Exit   `json:"exit"`
	Cause  Cause  `json:"cause"`
	Signal string `json:"signal"` // SignalName(Exit.ExitCode)
	// Strength is how much the verdict can be trusted: decisive when the
	// kill of the init is traced to its sender by pid, weak when it rests
	// on a coincidence, a sticky flag or nothing.
	Strength Strength `json:"strength"`
	// Rule names the row of the precedence table that decided (rules.go).
	Rule    string `json:"rule"`
	Summary string `json:"summary"`
	// Evidence is every piece considered (this container's, its init's by
	// pid, or host-wide, in the window), sorted by time.
	Evidence []Cited `json:"evidence"`
}

// slot is one counted item, for ordering: its offset from the exit and
// its index in the input.
type slot struct {
	offset time.Duration
	i      int32
}

// counts reports whether e is about this exit: this container's, or its
// init's by pid (a kernel OOM victim whose cgroup could not be read in
// time), or host-wide disk pressure, or, for a Kubernetes container, the
// Kubernetes API unavailable; and inside the window (reached by a kill's
// grace period), except the flag, which inspect produces at the exit and
// which has no time of its own.
func counts(e *Evidence, exit *Exit, from, to time.Time) bool {
	switch {
	case e.Container == "":
		hostWide := e.Kind == KindDiskPressure || e.Kind == KindKubeAPIUnavailable && exit.Kubernetes
		if !hostWide && (e.Pid == 0 || e.Pid != exit.Pid) {
			return false
		}
	case e.Container != exit.ContainerID:
		return false
	}
	if e.Kind == KindOOMKilledFlag {
		return true
	}
	return !e.Reach().Before(from) && !e.Time.After(to)
}

// Decide attributes exit to a cause from the evidence around it. Evidence
// for other containers (or, without a container, for other pids than the
// init's) or outside [exit.Time−window, exit.Time+ClockSkew] is ignored;
// a kill with a grace period counts while its Reach is in the window.
// Exit.OOMKilled counts as a KindOOMKilledFlag item when no such item was
// passed. The first row of the exit's rule table (rules.go) that holds
// decides.
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

	// Sort the indices, not the items: a Cited is large and holds
	// pointers, so moving it costs write barriers. Stable: items with equal
	// stamps keep the sources' order, and the synthesised flag (index
	// len(evidence)) comes last among them.
	var buf [32]slot
	order := buf[:0]
	if n > len(buf) {
		order = make([]slot, 0, n)
	}
	for i := range evidence {
		e := &evidence[i]
		if !counts(e, &exit, from, to) {
			continue
		}
		t := e.Time
		if e.Kind == KindOOMKilledFlag && t.IsZero() {
			t = exit.Time
		}
		order = append(order, slot{t.Sub(exit.Time), int32(i)})
	}
	if synthFlag {
		order = append(order, slot{0, int32(len(evidence))})
	}
	slices.SortFunc(order, func(a, b slot) int {
		if a.offset != b.offset {
			return cmp.Compare(a.offset, b.offset)
		}
		return cmp.Compare(a.i, b.i)
	})

	v := Verdict{Exit: exit, Signal: SignalName(exit.ExitCode)}
	if n > 0 {
		v.Evidence = make([]Cited, len(order))
	}
	for k, o := range order {
		c := &v.Evidence[k]
		if int(o.i) == len(evidence) {
			c.Evidence = Evidence{
				Container: exit.ContainerID,
				Time:      exit.Time,
				Source:    "docker",
				Kind:      KindOOMKilledFlag,
				Detail:    "State.OOMKilled=true",
			}
		} else {
			c.Evidence = evidence[o.i]
			if c.Kind == KindOOMKilledFlag && c.Time.IsZero() {
				c.Time = exit.Time
			}
		}
		c.Offset = o.offset
	}

	var f facts
	gather(&f, v.Evidence, &v.Exit)
	rules := rulesFor(exit.ExitCode)
	r := &rules[len(rules)-1]
	for i := range rules {
		if rules[i].when(f) {
			r = &rules[i]
			break
		}
	}
	v.Cause, v.Strength, v.Rule = r.cause, r.strength, r.name
	for i := range v.Evidence {
		c := &v.Evidence[i]
		role := roleOf(&c.Evidence, &v.Exit)
		c.Strength = roleStrength(role, &f)
		c.Decisive = r.rests.has(role) && (role != roleTerm || f.stopTimeout)
	}
	v.Summary = summarize(&v, r, &f)
	return v
}

// CitedEvidence returns the evidence the verdict cites, as Decide takes
// it. Decide of the verdict's exit and its cited evidence gives the
// verdict again (TestDecide checks every row), so a store may keep only
// the exit and the cited evidence, and decide the verdict again when
// asked (the tracker's /explain ring).
func (v *Verdict) CitedEvidence() []Evidence {
	out := make([]Evidence, len(v.Evidence))
	for i := range v.Evidence {
		out[i] = v.Evidence[i].Evidence
	}
	return out
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
