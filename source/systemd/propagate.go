package systemd

import (
	"strings"
	"time"
)

// Action is what a parent unit did that made a child stop.
type Action int

const (
	NoAction Action = iota
	Stopped
	Restarted
	// CrashRestarted is a crash that Restart= answered: the restart is
	// what PartOf= propagates.
	CrashRestarted
	// Failed propagates through BindsTo= only.
	Failed
)

const (
	// LookBehind is how long before a child's stop its parent's change may
	// lie. systemd queues both units' jobs in one transaction (stop,
	// restart) or right after the parent's failure (BindsTo=); measured
	// here, the child's change follows the parent's within 30ms.
	LookBehind = time.Second
	// SettleDelay is how long after a child's stop the decision waits:
	// the signals of one transaction arrive in a burst in either order,
	// and a restarting parent is back up within it.
	SettleDelay = 300 * time.Millisecond
)

// ParentAction reads a parent's history around a child's stop at stop and
// says what the parent did that the relation propagates, or NoAction, and
// when the parent's first change was, relative to the stop. A job queued
// on a running parent, a parent going down, and a restart after a crash
// count; a parent merely starting does not.
func ParentAction(h []Sample, rel Relation, stop time.Time) (Action, time.Duration) {
	from, to := stop.Add(-LookBehind), stop.Add(SettleDelay)
	first := -1
	for i := range h {
		if !h[i].At.Before(from) && !h[i].At.After(to) && trigger(h, i) {
			first = i
			break
		}
	}
	if first < 0 {
		return NoAction, 0
	}
	lag := h[first].At.Sub(stop)
	// The episode the trigger belongs to starts where the parent was last
	// up: a restart after a crash carries the crash with it.
	start := first
	for start > 0 && !h[start-1].up() {
		start--
	}
	end := len(h)
	for end > first+1 && h[end-1].At.After(to) {
		end--
	}
	seg := h[start:end]
	var crashed, wentDown, restartQueued bool
	for _, s := range seg {
		crashed = crashed || s.Active == "failed" || s.Sub == "auto-restart"
		wentDown = wentDown || s.down()
		restartQueued = restartQueued || s.Sub == "auto-restart"
	}
	last := seg[len(seg)-1]
	switch {
	case crashed && restartQueued:
		return CrashRestarted, lag
	case crashed && rel == BindsTo:
		return Failed, lag
	case crashed:
		return NoAction, 0
	case wentDown && last.up():
		return Restarted, lag
	}
	return Stopped, lag
}

// trigger reports whether h[i] is a change that can stop a child: a job
// for a running (or restart-pending) unit, a fall from up, or the restart
// that Restart= runs after a crash. A unit's first signal has no
// predecessor: a crash is a fall from up all the same.
func trigger(h []Sample, i int) bool {
	s := h[i]
	if s.NewJob && (s.up() || s.Sub == "auto-restart") {
		return true
	}
	if i == 0 {
		return s.Active == "failed" || s.Sub == "auto-restart"
	}
	prev := h[i-1]
	return prev.up() && s.down() || prev.Sub == "auto-restart" && s.Sub != "auto-restart"
}

// Describe says what the parent did, for an evidence chain: restart is
// the parent's Restart= setting, when known.
func (a Action) Describe(parent, restart string) string {
	switch a {
	case Stopped:
		return parent + " stopped"
	case Restarted:
		return parent + " restarted"
	case CrashRestarted:
		if restart == "" || restart == "no" {
			return parent + " restarted after a crash"
		}
		return parent + " restarted (Restart=" + restart + " after a crash)"
	case Failed:
		return parent + " failed"
	}
	return ""
}

// Detail is the evidence's sentence: the parent's action → the child's
// stop, with the relation that carried it.
func Detail(a Action, parent, restart, child string, rel Relation) string {
	var b strings.Builder
	b.WriteString(a.Describe(parent, restart))
	b.WriteString(" → ")
	b.WriteString(child)
	b.WriteString(" stopped (")
	b.WriteString(string(rel))
	b.WriteString("=")
	b.WriteString(parent)
	b.WriteString(")")
	return b.String()
}
