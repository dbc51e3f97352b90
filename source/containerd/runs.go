package containerd

import "time"

// containerd says when a task started only by its start event, and a
// reconcile sees a task with no start time at all. The tracker's ledger
// tells runs apart by start times in the order S ≤ E < D < next S (S the
// run's start as a reconcile describes it, E its start event, D its exit
// event), so the source gives each run a start time of its own that keeps
// that order, and reuses it every time it describes the run again: the
// container's creation time for its first run (a kubelet's container has
// no other), so that an exporter restarted from saved state, with an
// empty book, finds the same; for a later run (a task started again in
// the same container, by ctr) just after the latest start and exit this
// source saw of the container, which bound the new run's start from below
// and its start event from above.

// runNote is what the source last said about a container's run.
type runNote struct {
	pid int
	// start is the start time the tracker knows this run by.
	start time.Time
	// exited is the exit's time (exited_at), zero while none was seen.
	exited time.Time
}

// runBook holds a note per container id; the session goroutine alone
// uses it.
type runBook map[string]*runNote

// started records a start event of the run with pid, and returns the
// start time to describe it with.
func (b runBook) started(id string, pid int, created time.Time) time.Time {
	if n := b[id]; n != nil && n.of(pid) && n.exited.IsZero() {
		return n.start
	}
	return b.next(id, pid, created)
}

// exited records the exit of the run with pid at exitedAt, and returns the
// run's start time.
func (b runBook) exited(id string, pid int, exitedAt time.Time, created time.Time) time.Time {
	start := b.startOf(id, pid, created)
	b[id].exited = exitedAt
	return start
}

// startOf returns the start time of the run with pid (0: the latest run,
// whatever its pid) found by a reconcile of a container created at created.
func (b runBook) startOf(id string, pid int, created time.Time) time.Time {
	if n := b[id]; n != nil && (pid == 0 || n.of(pid)) {
		return n.start
	}
	return b.next(id, pid, created)
}

// of reports whether the note is of the run with pid, and learns the pid
// of a run it knew without one: the CRI's status of a container whose task
// is gone has no pid, and a CRI container runs once, so its exit event
// (with the pid) that comes after is of that run, not of a later one.
func (n *runNote) of(pid int) bool {
	if n.pid == 0 {
		n.pid = pid
	}
	return n.pid == pid
}

// next records a run after every one the book knows of id.
func (b runBook) next(id string, pid int, created time.Time) time.Time {
	start := created
	if n := b[id]; n != nil {
		start = latest(start, n.start.Add(time.Nanosecond), n.exited.Add(time.Nanosecond))
	}
	b[id] = &runNote{pid: pid, start: start}
	return start
}

// open reports whether the latest run the book knows of id has started
// and not been seen exiting.
func (b runBook) open(id string) bool {
	n := b[id]
	return n != nil && n.exited.IsZero()
}

func latest(t time.Time, others ...time.Time) time.Time {
	for _, o := range others {
		if o.After(t) {
			t = o
		}
	}
	return t
}
