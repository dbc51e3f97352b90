package containerd

import (
	"context"
	"fmt"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// reconcile brings the tracker in line with containerd's lists in every
// followed namespace: metadata for each workload container, and its run's
// state, from which the ledger infers the exits no event told (and ignores
// what it already counted).
func (s *Source) reconcile(ctx context.Context) error {
	listed, present := map[string]bool{}, map[string]bool{}
	for _, ns := range s.opts.Namespaces {
		if err := s.reconcileNamespace(namespaced(ctx, ns), listed, present); err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
	}
	for id := range s.known {
		if !listed[id] {
			delete(s.known, id)
			delete(s.runs, id)
		}
	}
	s.tracker.Vanished(present)
	return nil
}

// reconcileNamespace marks every container it lists in listed, and the
// workload containers in present.
func (s *Source) reconcileNamespace(ctx context.Context, listed, present map[string]bool) error {
	listedAt := time.Now()
	containers, err := s.conn.listContainers(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	list, err := s.conn.listTasks(ctx)
	if err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	tasks := make(map[string]*pbProcess, len(list))
	for i := range list {
		tasks[list[i].id] = &list[i]
	}
	for _, c := range containers {
		id := c.id
		info := s.record(c)
		listed[id] = true
		if info.sandbox {
			continue
		}
		present[id] = true
		st, ok, err := s.runState(ctx, id, info, tasks[id], listedAt)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if st.Running {
			s.tracker.Upsert(tracker.Meta{ID: id, Pid: st.Pid})
		}
		s.tracker.Observe(id, st)
		if st.Running {
			s.observeOOMKills(id, st.Pid, listedAt)
		}
	}
	return nil
}

// record keeps what the source needs of a container's record, and tells
// the tracker about a workload container.
func (s *Source) record(c pbContainer) containerInfo {
	info := containerInfo{sandbox: isSandbox(c.labels), cri: isCRIContainer(c.labels), created: c.createdAt}
	s.known[c.id] = info
	if !info.sandbox {
		s.tracker.Upsert(metaOf(c.id, c.image, c.labels))
	}
	return info
}

// lookup returns what the source knows of a container an event names,
// asking containerd when it is new. A container already gone is taken for
// a workload named by its id: its death is not to be lost. ok is false for
// an event that is no container's, or when containerd did not answer (the
// connection is going: the next reconcile sees what the event said).
func (s *Source) lookup(ctx context.Context, ns, id, image string) (containerInfo, bool) {
	if id == "" {
		return containerInfo{}, false
	}
	if info, ok := s.known[id]; ok {
		return info, true
	}
	c, err := s.conn.getContainer(namespaced(ctx, ns), id)
	if err == nil {
		return s.record(c), true
	}
	if codeOf(err) != codeNotFound {
		s.health.Error(s.logger, "containerd container "+id+" not read", err)
		return containerInfo{}, false
	}
	s.known[id] = containerInfo{}
	s.tracker.Upsert(tracker.Meta{ID: id, Name: id, Image: image})
	return containerInfo{}, true
}

// runState is a reconcile's account of a container's latest run: from its
// task; from the CRI's status when the CRI plugin deleted the task after
// the exit; or, with neither, a run the source saw start that ended unseen.
// ok is false when there is no run to tell (created, never started). A
// CRI that does not answer fails the reconcile: the connection is likely
// gone, and a guess now would stand for an exit the next one could tell.
func (s *Source) runState(ctx context.Context, id string, info containerInfo, p *pbProcess, listed time.Time) (st tracker.RunState, ok bool, err error) {
	if p != nil {
		st, ok = taskRunState(*p, s.runs.startOf(id, int(p.pid), info.created))
		return st, ok, nil
	}
	if info.cri {
		status, err := s.criStatus(ctx, id)
		if err != nil {
			return st, false, fmt.Errorf("CRI status of %s: %w", id, err)
		}
		if status != nil {
			st, ok = criRunState(*status, s.runs.startOf(id, 0, info.created))
			return st, ok, nil
		}
	}
	if !s.runs.open(id) {
		return st, false, nil
	}
	return tracker.RunState{StartedAt: s.runs.startOf(id, 0, info.created), FinishedAt: listed,
		ExitCode: attribution.ExitCodeUnknown}, true, nil
}

// taskRunState reads a task; start is the time its run is known by.
func taskRunState(p pbProcess, start time.Time) (tracker.RunState, bool) {
	switch p.status {
	case taskStatusRunning, taskStatusPaused, taskStatusPausing:
		return tracker.RunState{Running: true, StartedAt: start, Pid: int(p.pid)}, true
	case taskStatusStopped:
		return tracker.RunState{StartedAt: start, FinishedAt: p.exitedAt,
			ExitCode: int(p.exitStatus), Pid: int(p.pid)}, true
	}
	return tracker.RunState{}, false // created, not started
}

// criLag bounds the wait for the CRI to record an exit: its plugin deletes
// the task first and records the exit in the container's status after,
// so a reconcile between the two finds no task and a status still
// running, and the exit's event may have been lost in a cut.
const (
	criLag     = 3 * time.Second
	criLagPoll = 20 * time.Millisecond
)

// criStatus asks the CRI RuntimeService for the status of a container
// whose task is gone, until it is no longer running (or criLag passed).
// It is nil with no error when the CRI does not know the container, or
// containerd runs no CRI.
func (s *Source) criStatus(ctx context.Context, id string) (*pbContainerStatus, error) {
	deadline := time.Now().Add(criLag)
	for {
		st, err := s.conn.containerStatus(ctx, id)
		switch codeOf(err) {
		case codeOK:
		case codeNotFound, codeUnimplemented:
			return nil, nil
		default:
			return nil, err
		}
		if st == nil || st.state != criRunning || time.Now().After(deadline) {
			return st, nil
		}
		select {
		case <-time.After(criLagPoll):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// criRunState reads the CRI's status of an exited container; its reason
// OOMKilled is the CRI plugin's sticky flag, weak as Docker's.
func criRunState(st pbContainerStatus, start time.Time) (tracker.RunState, bool) {
	if st.state != criExited || st.finishedAt == 0 {
		return tracker.RunState{}, false
	}
	return tracker.RunState{StartedAt: start, FinishedAt: time.Unix(0, st.finishedAt),
		ExitCode: int(st.exitCode), OOMKilled: st.reason == "OOMKilled"}, true
}
