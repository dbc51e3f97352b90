package containerd

import "time"

// containerd says when a task started only by its start event, and a
// reconcile sees a task with no start time at all. The tracker's ledger
// tells runs apart by start times in the order S ≤ E < D < next S (S the
// run's start as a reconcile describes it, E its start event, D its exit
// event), so the source gives each run a start time of its own that keeps
// that order, and reuses it every time it describes the run again:
//   - a run first seen by its start event: E itself;
//   - a run first found by a reconcile: the container's creation time for
//     its first run (a kubelet's container has no other), or just after the
//     latest start and exit this source saw of the container: both bound
//     the new run's start from below and its start event from above.
//
// The book lives as long as the source; an exporter restarted from saved
// state starts an empty one, and creation times still order a container's
// first run correctly.

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

// started records a start event at of the run with pid, and returns the
// start time to describe the run with: the one a reconcile already gave
// it, else at.
func (b runBook) started(id string, pid int, at time.Time) time.Time {
	if n := b[id]; n != nil && n.pid == pid && n.exited.IsZero() {
		return n.start
	}
	b[id] = &runNote{pid: pid, start: at}
	return at
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
	n := b[id]
	if n != nil && (pid == 0 || n.pid == pid) {
		return n.start
	}
	start := created
	if n != nil {
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
