package tracker

import (
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/shrink"
)

// The ledger is the exactly-once half of the tracker: for every container
// it knows the latest run (and the one before), whether that run's exit
// was counted, and a tombstone once the container is removed, so that a
// replayed event of a removed container is still recognised.
//
// Docker describes a run two ways that must agree: by events in stream
// order (start at E, die at D) and by inspect (StartedAt S and FinishedAt
// of the latest run only). Docker sets StartedAt before it logs the start
// event, and a run starts only after the previous run's die was logged:
//
//	S₁ ≤ E₁ < D₁ < S₂ ≤ E₂ < D₂ …
//
// so a run is recognised from either side by order alone, without
// tolerances. FinishedAt is the runtime's exit time and may lie before S
// for a process that exits at once; it is never used to tell runs apart.
//
// The ledger is pure: no clock, no lock. The Tracker holds the lock and
// turns the endings the ledger returns into counted exits.

// run is one start-to-exit of a container's init.
type run struct {
	// StartEvent is the start event's time, zero when the run was found by
	// inspect only.
	StartEvent time.Time `json:"start_event,omitzero"`
	// StartedAt is inspect's StartedAt of this run, zero when no inspect
	// of this run was seen.
	StartedAt time.Time `json:"started_at,omitzero"`
	Pid       int       `json:"pid,omitempty"`
	// RestartCount is inspect's RestartCount during this run, -1 unknown.
	RestartCount int  `json:"restart_count"`
	Ended        bool `json:"ended,omitempty"`
	// DieEvent is the die event's time, zero for a run whose end was
	// inferred by a reconcile (until its die event arrives, if ever).
	DieEvent time.Time `json:"die_event,omitzero"`
	// Found is when a reconcile's inspect found this run, zero for a run
	// first seen by its start event.
	Found time.Time `json:"found,omitzero"`
}

// startedBy reports whether the run started at or before t, as far as the
// ledger knows its start.
func (r *run) startedBy(t time.Time) (known, ok bool) {
	switch {
	case !r.StartEvent.IsZero():
		return true, !r.StartEvent.After(t)
	case !r.StartedAt.IsZero():
		return true, !r.StartedAt.After(t)
	}
	return false, false
}

// isRun reports whether inspect's StartedAt s describes this run: s ≤ E
// for a run whose start event was seen; s equal for one seen by inspect;
// s ≤ D for a run known only by its die.
func (r *run) isRun(s time.Time) bool {
	switch {
	case !r.StartedAt.IsZero():
		return s.Equal(r.StartedAt)
	case !r.StartEvent.IsZero():
		return !s.After(r.StartEvent)
	case !r.DieEvent.IsZero():
		return !s.After(r.DieEvent)
	}
	return false
}

// entry is the ledger's record of one container id.
type entry struct {
	Latest *run `json:"latest,omitempty"`
	Prev   *run `json:"prev,omitempty"`
	// Between are runs known to have ended after Prev and before Latest
	// started, but seen neither starting nor (yet) dying: the runs a
	// restart policy made while the events lagged behind a reconcile, or
	// that a reconcile inferred from RestartCount. A late die of one of
	// them is matched here, not counted twice.
	Between []*run `json:"between,omitempty"`
	// Removed is when the container was destroyed (or found gone); the
	// entry is then a tombstone until it expires.
	Removed time.Time `json:"removed,omitzero"`
}

func (e *entry) push(r *run) {
	e.Prev, e.Latest, e.Between = e.Latest, r, nil
}

// maxBetween bounds Entry.Between.
const maxBetween = 32

// diedBefore applies the die event ev of a run that ended before the
// latest run started: the run before it, or one between. It returns the
// run when the exit is new, or attached when the die describes a run
// whose end was inferred (its pending exit may be amended).
func (e *entry) diedBefore(ev time.Time) (ended, attached *run) {
	if p := e.Prev; p != nil && p.Ended && p.DieEvent.IsZero() {
		if known, ok := p.startedBy(ev); !known || ok {
			p.DieEvent = ev
			return nil, p
		}
	}
	if p := e.Prev; p != nil && !p.DieEvent.IsZero() && !ev.After(p.DieEvent) {
		return nil, nil // older than the run before: a replay
	}
	for _, b := range e.Between {
		if b.DieEvent.Equal(ev) {
			return nil, nil // a replay
		}
	}
	for _, b := range e.Between {
		if b.DieEvent.IsZero() {
			b.DieEvent = ev // a run a reconcile inferred, now seen dying
			return nil, b
		}
	}
	r := &run{DieEvent: ev, Ended: true, RestartCount: -1}
	if len(e.Between) < maxBetween {
		e.Between = append(e.Between, r)
	}
	return r, nil
}

// ending is a run that ended and is to be counted once.
type ending struct {
	run      *run
	exitCode int
	// at is the exit's time: FinishedAt, or the die event's time.
	at        time.Time
	oomKilled bool
	inferred  bool
	// timeUnknown marks an inferred ending whose time is only a bound
	// (a run superseded or removed unseen): nothing sampled now is about it.
	timeUnknown bool
}

// RunState is what inspect says of a container's latest run.
type RunState struct {
	Running                     bool
	StartedAt, FinishedAt       time.Time
	ExitCode, Pid, RestartCount int
	// OOMKilled is Docker's sticky flag; it belongs to this run only.
	OOMKilled bool
}

type ledger struct {
	entries map[string]*entry
	// peak lets expire give back the table of a wave's tombstones.
	peak shrink.Peak
	// lastEvent is the time of the latest event applied: the next
	// subscription replays from there.
	lastEvent time.Time
	// horizon is where the exporter's knowledge starts: its start, or the
	// cursor of its saved state. A replay reaches a little before it;
	// events from then, of containers the ledger never knew, are history.
	horizon time.Time
	// forgotten is where the expired tombstones end: an inspect owed to
	// an event stamped before it, of an id the ledger no longer knows, is
	// of a container removed and forgotten (a live one's entry never
	// expires).
	forgotten time.Time
}

func newLedger() ledger { return ledger{entries: map[string]*entry{}} }

func (l *ledger) entry(id string) *entry {
	e, ok := l.entries[id]
	if !ok {
		e = &entry{}
		l.entries[id] = e
	}
	return e
}

// history reports whether an event stamped at, of id, is from before the
// ledger's knowledge and about a container it never knew.
func (l *ledger) history(id string, at time.Time) bool {
	_, known := l.entries[id]
	return !known && at.Before(l.horizon)
}

func (l *ledger) seen(at time.Time) {
	if at.After(l.lastEvent) {
		l.lastEvent = at
	}
}

// started applies a start event at ev. It returns the ending of a run
// whose die was never seen (the stream lost it), if any.
func (l *ledger) started(id string, ev time.Time) []ending {
	l.seen(ev)
	if l.history(id, ev) {
		return nil
	}
	e := l.entry(id)
	e.Removed = time.Time{}
	r := e.Latest
	if r == nil {
		e.push(&run{StartEvent: ev, RestartCount: -1})
		return nil
	}
	if r.StartEvent.Equal(ev) || r.StartEvent.After(ev) || !r.StartedAt.IsZero() && r.StartEvent.IsZero() && ev.Before(r.StartedAt) {
		return nil // a replay, or the start of a run older than the latest
	}
	if r.StartEvent.IsZero() && r.DieEvent.IsZero() && !r.StartedAt.IsZero() && (!r.Ended || !ev.After(r.Found)) {
		// The run a reconcile found, now seen starting. An ended one only
		// if the start is from before the inspect that found it: a later
		// run cannot have started then, or the inspect would show it.
		r.StartEvent = ev
		return nil
	}
	if r.Ended {
		if !r.DieEvent.IsZero() && !ev.After(r.DieEvent) {
			return nil // older than the latest run's death: a replay
		}
		e.push(&run{StartEvent: ev, RestartCount: -1})
		return nil
	}
	// The latest run is open and a later run starts: its die was lost.
	r.Ended = true
	e.push(&run{StartEvent: ev, RestartCount: -1})
	return []ending{{run: r, exitCode: attribution.ExitCodeUnknown, at: ev, inferred: true, timeUnknown: true}}
}

// describe attaches what inspect said right after the start event at ev.
// An inspect is never of an earlier run than the event's, but it may be of
// a later one (the run ended and the container restarted before the
// inspect): then its StartedAt lies after ev and it describes nothing here.
func (l *ledger) describe(id string, ev time.Time, st RunState) {
	e, ok := l.entries[id]
	if !ok || st.StartedAt.IsZero() || st.StartedAt.After(ev) {
		return
	}
	if r := e.Latest; r != nil && r.StartEvent.Equal(ev) {
		r.StartedAt, r.RestartCount = st.StartedAt, st.RestartCount
		if st.Running || st.Pid != 0 {
			r.Pid = st.Pid
		}
	}
}

// died applies a die event at ev. It returns the run it ended when that is
// a new exit; attached is a run whose end a reconcile had inferred and that
// this die now describes (its pending exit may be amended).
func (l *ledger) died(id string, ev time.Time) (ended, attached *run) {
	l.seen(ev)
	if l.history(id, ev) {
		return nil, nil
	}
	e := l.entry(id)
	r := e.Latest
	switch {
	case r == nil:
		// A container whose run we never saw start: still an exit.
		r = &run{DieEvent: ev, Ended: true, RestartCount: -1}
		e.push(r)
		return r, nil
	case r.DieEvent.Equal(ev) || e.Prev != nil && e.Prev.DieEvent.Equal(ev):
		return nil, nil // a replay
	}
	if known, ok := r.startedBy(ev); known && !ok {
		// The latest run started after this death: the die is of a run
		// before it (the events lag behind what a reconcile saw).
		return e.diedBefore(ev)
	}
	switch {
	case !r.Ended:
		r.Ended, r.DieEvent = true, ev
		return r, nil
	case r.DieEvent.IsZero():
		// Ended by a reconcile's inference: this is its die, arriving late.
		r.DieEvent = ev
		return nil, r
	}
	// A second die with no start between: Docker repeats itself (or the
	// start was lost); counting it could count one exit twice.
	return nil, nil
}

// diedAt returns the run whose die event was stamped at, or nil.
func (l *ledger) diedAt(id string, at time.Time) *run {
	e, ok := l.entries[id]
	if !ok {
		return nil
	}
	for _, r := range append([]*run{e.Latest, e.Prev}, e.Between...) {
		if r != nil && r.DieEvent.Equal(at) {
			return r
		}
	}
	return nil
}

// observe applies a reconcile's inspect of a listed container, made at
// now. An exit before the horizon, of a container the ledger never knew,
// is history: a baseline.
func (l *ledger) observe(id string, st RunState, now time.Time) (endings []ending, baseline bool) {
	if st.StartedAt.IsZero() {
		l.entry(id)
		return nil, false // created, never started
	}
	e := l.entry(id)
	e.Removed = time.Time{}
	r := e.Latest
	exited := !st.Running && !st.FinishedAt.IsZero()
	current := &run{StartedAt: st.StartedAt, Pid: st.Pid, RestartCount: st.RestartCount, Found: now}
	end := ending{run: current, exitCode: st.ExitCode, at: st.FinishedAt, oomKilled: st.OOMKilled, inferred: true}
	switch {
	case r == nil:
		e.push(current)
		if exited {
			current.Ended = true
			if st.FinishedAt.Before(l.horizon) {
				return nil, true
			}
			return []ending{end}, false
		}
		return nil, false
	case r.isRun(st.StartedAt):
		r.StartedAt = st.StartedAt
		if st.Running || r.Pid == 0 {
			r.Pid = st.Pid
		}
		r.RestartCount = st.RestartCount
		if exited && !r.Ended {
			r.Ended = true
			end.run = r
			return []ending{end}, false
		}
		return nil, false
	}
	if known, ok := r.startedBy(st.StartedAt); known && !ok {
		return nil, false // inspect shows an older run than we know: stale
	}
	// A later run than the latest we know: whatever ran since ended unseen.
	if !r.Ended {
		r.Ended = true
		endings = append(endings, ending{run: r, exitCode: attribution.ExitCodeUnknown, at: st.StartedAt, inferred: true, timeUnknown: true})
	}
	// A restart policy counts its restarts: runs between ours and this
	// one ended unseen too (a manual start resets the count: none known).
	var between []*run
	if r.RestartCount >= 0 && st.RestartCount > r.RestartCount+1 {
		for range min(st.RestartCount-r.RestartCount-1, maxBetween) {
			b := &run{Ended: true, RestartCount: -1}
			between = append(between, b)
			endings = append(endings, ending{run: b, exitCode: attribution.ExitCodeUnknown, at: st.StartedAt, inferred: true, timeUnknown: true})
		}
	}
	e.push(current)
	e.Between = between
	if exited {
		current.Ended = true
		endings = append(endings, end)
	}
	return endings, false
}

// removed applies a destroy event: the entry becomes a tombstone.
func (l *ledger) removed(id string, at time.Time) {
	l.seen(at)
	if l.history(id, at) {
		return
	}
	l.entry(id).Removed = at
}

// vanished applies a reconcile that no longer lists id: removed while the
// exporter could not listen. A run still open then ended unseen.
func (l *ledger) vanished(id string, at time.Time) []ending {
	e, ok := l.entries[id]
	if !ok || !e.Removed.IsZero() {
		return nil
	}
	e.Removed = at
	if r := e.Latest; r != nil && !r.Ended {
		r.Ended = true
		return []ending{{run: r, exitCode: attribution.ExitCodeUnknown, at: at, inferred: true, timeUnknown: true}}
	}
	return nil
}

// removedSince reports whether id was removed at or after at, as far as
// a tombstone, or the forgetting of expired ones, tells.
func (l *ledger) removedSince(id string, at time.Time) bool {
	e, ok := l.entries[id]
	if !ok {
		return at.Before(l.forgotten)
	}
	return !e.Removed.IsZero() && !e.Removed.Before(at)
}

// expire drops tombstones older than before.
func (l *ledger) expire(before time.Time) {
	l.peak.See(len(l.entries))
	for id, e := range l.entries {
		if !e.Removed.IsZero() && e.Removed.Before(before) {
			delete(l.entries, id)
		}
	}
	l.entries = shrink.Map(l.entries, &l.peak)
	if before.After(l.forgotten) {
		l.forgotten = before
	}
}

// startOf is when id's latest run started, as far as the ledger knows.
func (l *ledger) startOf(id string) time.Time {
	e, ok := l.entries[id]
	if !ok || e.Latest == nil {
		return time.Time{}
	}
	if r := e.Latest; !r.StartEvent.IsZero() {
		return r.StartEvent
	}
	return e.Latest.StartedAt
}
