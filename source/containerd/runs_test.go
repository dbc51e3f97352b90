package containerd

import (
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/task"
	"google.golang.org/protobuf/types/known/timestamppb"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// The start times the book gives keep the ledger's order S ≤ E < D < next
// S, however a run was first seen, stay the same each time a run is
// described again, and for a first run are what an empty book gives too.
func TestRunBookStartTimes(t *testing.T) {
	created := time.Unix(1000, 0)
	ms := func(n int) time.Time { return created.Add(time.Duration(n) * time.Millisecond) }
	cases := []struct {
		name string
		// steps run in order; each returns the start time it gave.
		steps []func(b runBook) time.Time
		want  []time.Time
	}{
		{"a first run seen starting: the creation time, again at the exit and in a reconcile",
			[]func(b runBook) time.Time{
				func(b runBook) time.Time { return b.started(id1, 10, created) },
				func(b runBook) time.Time { return b.startOf(id1, 10, created) },
				func(b runBook) time.Time { return b.exited(id1, 10, ms(9), created) },
				func(b runBook) time.Time { return b.startOf(id1, 0, created) },
			},
			[]time.Time{created, created, created, created}},
		{"a first run found by a reconcile: the creation time, kept when its start event follows",
			[]func(b runBook) time.Time{
				func(b runBook) time.Time { return b.startOf(id1, 10, created) },
				func(b runBook) time.Time { return b.started(id1, 10, created) },
				func(b runBook) time.Time { return b.exited(id1, 10, ms(9), created) },
			},
			[]time.Time{created, created, created}},
		{"a second task, found by a reconcile or seen starting: just after the first's exit",
			[]func(b runBook) time.Time{
				func(b runBook) time.Time { return b.started(id1, 10, created) },
				func(b runBook) time.Time { return b.exited(id1, 10, ms(9), created) },
				func(b runBook) time.Time { return b.startOf(id1, 11, created) },
				func(b runBook) time.Time { return b.started(id1, 11, created) },
			},
			[]time.Time{created, created, ms(9).Add(time.Nanosecond), ms(9).Add(time.Nanosecond)}},
		{"a second task whose first's exit was never seen: just after the first's start",
			[]func(b runBook) time.Time{
				func(b runBook) time.Time { return b.started(id1, 10, created) },
				func(b runBook) time.Time { return b.startOf(id1, 11, created) },
			},
			[]time.Time{created, created.Add(time.Nanosecond)}},
		{"a CRI run found by its status (no pid), then its exit event: the same run",
			[]func(b runBook) time.Time{
				func(b runBook) time.Time { return b.startOf(id1, 0, created) },
				func(b runBook) time.Time { return b.exited(id1, 10, ms(9), created) },
				func(b runBook) time.Time { return b.startOf(id1, 0, created) },
			},
			[]time.Time{created, created, created}},
		{"a new task seen starting after an exit, even with the pid reused",
			[]func(b runBook) time.Time{
				func(b runBook) time.Time { return b.started(id1, 10, created) },
				func(b runBook) time.Time { return b.exited(id1, 10, ms(9), created) },
				func(b runBook) time.Time { return b.started(id1, 10, created) },
			},
			[]time.Time{created, created, ms(9).Add(time.Nanosecond)}},
	}
	for _, c := range cases {
		b := runBook{}
		for i, step := range c.steps {
			if got := step(b); !got.Equal(c.want[i]) {
				t.Errorf("%s: step %d gave %v, want %v", c.name, i, got, c.want[i])
			}
		}
	}
}

func TestRunBookOpen(t *testing.T) {
	b := runBook{}
	if b.open(id1) {
		t.Fatal("an unknown container is open")
	}
	b.started(id1, 10, time.Unix(5, 0))
	if !b.open(id1) {
		t.Fatal("a started run is not open")
	}
	b.exited(id1, 10, time.Unix(9, 0), time.Time{})
	if b.open(id1) {
		t.Fatal("an exited run is open")
	}
}

func TestTaskRunState(t *testing.T) {
	start, exited := time.Unix(100, 0), time.Unix(200, 0).UTC()
	cases := []struct {
		status task.Status
		want   tracker.RunState
		ok     bool
	}{
		{task.Status_RUNNING, tracker.RunState{Running: true, StartedAt: start, Pid: 42}, true},
		{task.Status_PAUSED, tracker.RunState{Running: true, StartedAt: start, Pid: 42}, true},
		{task.Status_STOPPED, tracker.RunState{StartedAt: start, FinishedAt: exited, ExitCode: 137, Pid: 42}, true},
		{task.Status_CREATED, tracker.RunState{}, false},
	}
	for _, c := range cases {
		p := &task.Process{ID: id1, ContainerID: id1, Pid: 42, Status: c.status, ExitStatus: 137, ExitedAt: timestamppb.New(exited)}
		if c.status != task.Status_STOPPED {
			p.ExitStatus, p.ExitedAt = 0, nil
		}
		got, ok := taskRunState(viaWire(t, p, decodeProcess), start)
		if got != c.want || ok != c.ok {
			t.Errorf("%v: %+v %v, want %+v %v", c.status, got, ok, c.want, c.ok)
		}
	}
}

func TestCRIRunState(t *testing.T) {
	start, finished := time.Unix(100, 0), time.Unix(200, 0)
	cases := []struct {
		name string
		st   *cri.ContainerStatus
		want tracker.RunState
		ok   bool
	}{
		{"exited", &cri.ContainerStatus{State: cri.ContainerState_CONTAINER_EXITED, FinishedAt: finished.UnixNano(), ExitCode: 137, Reason: "Error"},
			tracker.RunState{StartedAt: start, FinishedAt: finished, ExitCode: 137}, true},
		{"OOMKilled: the CRI's flag", &cri.ContainerStatus{State: cri.ContainerState_CONTAINER_EXITED, FinishedAt: finished.UnixNano(), ExitCode: 137, Reason: "OOMKilled"},
			tracker.RunState{StartedAt: start, FinishedAt: finished, ExitCode: 137, OOMKilled: true}, true},
		{"created, never started", &cri.ContainerStatus{State: cri.ContainerState_CONTAINER_CREATED}, tracker.RunState{}, false},
		{"running (its task just gone)", &cri.ContainerStatus{State: cri.ContainerState_CONTAINER_RUNNING}, tracker.RunState{}, false},
	}
	for _, c := range cases {
		got, ok := criRunState(viaWire(t, c.st, decodeContainerStatus), start)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
