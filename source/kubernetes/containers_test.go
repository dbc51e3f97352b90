package kubernetes

import (
	"testing"
	"time"
)

const (
	podUID = "7b2f7c1e-5a4d-4c1b-9f0e-3d2a1b0c9e8f"
	run1   = "1111111111111111111111111111111111111111111111111111111111111111"
	run2   = "2222222222222222222222222222222222222222222222222222222222222222"
	side1  = "3333333333333333333333333333333333333333333333333333333333333333"
)

// runningPod is pod default/web on node-1: container app in its first
// run (run1, started at t0−1m), and a sidecar (side1).
func runningPod() *apiPod {
	return &apiPod{
		objectMeta: objectMeta{UID: podUID, ResourceVersion: "10"},
		Spec: podSpec{
			InitContainers: []containerSpec{{Name: "proxy"}},
			Containers:     []containerSpec{{Name: "app"}}},
		Status: podStatus{
			InitContainerStatuses: []containerStatus{{Name: "proxy", ContainerID: "containerd://" + side1,
				State: containerState{Running: &stateRunning{StartedAt: t0.Add(-2 * time.Minute)}}}},
			ContainerStatuses: []containerStatus{{Name: "app", ContainerID: "containerd://" + run1,
				State: containerState{Running: &stateRunning{StartedAt: t0.Add(-time.Minute)}}}},
		},
	}
}

// restarted is runningPod after app's first run was killed at t0+30s and
// its second (run2) started at t0+31s.
func restarted() *apiPod {
	p := runningPod()
	p.ResourceVersion = "11"
	s := &p.Status.ContainerStatuses[0]
	s.ContainerID = "containerd://" + run2
	s.State = containerState{Running: &stateRunning{StartedAt: t0.Add(31 * time.Second)}}
	s.LastTerminationState = containerState{Terminated: &stateTerminated{Reason: "Error",
		ContainerID: "containerd://" + run1, StartedAt: t0.Add(-time.Minute), FinishedAt: t0.Add(30 * time.Second)}}
	return p
}

// evictedUnknown is the pod after its eviction: the kubelet made up a
// ContainerStatusUnknown with exit code 137 for app.
func evictedUnknown() *apiPod {
	p := runningPod()
	p.Status.Reason = "Evicted"
	p.Status.ContainerStatuses[0].State = containerState{Terminated: &stateTerminated{Reason: "ContainerStatusUnknown"}}
	p.Status.ContainerStatuses[0].ContainerID = ""
	return p
}

func TestAliveAt(t *testing.T) {
	tests := []struct {
		name      string
		p         *apiPod
		container string
		at        time.Duration // from t0
		id        string
	}{
		{"the running run", runningPod(), "app", 0, run1},
		{"a sidecar's run", runningPod(), "proxy", 0, side1},
		{"stamped in the second the run started", runningPod(), "app", -time.Minute - 900*time.Millisecond, run1},
		{"before the run started: none", runningPod(), "app", -2 * time.Minute, ""},
		{"the status moved on: the run before", restarted(), "app", 29 * time.Second, run1},
		{"after the restart: the new run", restarted(), "app", 40 * time.Second, run2},
		{"a made-up status names no run", evictedUnknown(), "app", 0, ""},
		{"no such container", runningPod(), "nope", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var id string
			if s := statusOf(tt.p, tt.container); s != nil {
				id, _ = aliveAt(s, t0.Add(tt.at))
			}
			if id != tt.id {
				t.Errorf("id %q, want %q", id, tt.id)
			}
		})
	}
}

func TestContainerIDAndRuntimeUID(t *testing.T) {
	for in, want := range map[string]string{"containerd://" + run1: run1, "cri-o://abc": "abc", run1: run1, "": ""} {
		if got := containerID(in); got != want {
			t.Errorf("containerID(%q) = %q, want %q", in, got, want)
		}
	}
	p := runningPod()
	if got := runtimeUID(p); got != podUID {
		t.Errorf("runtimeUID = %q, want the pod's", got)
	}
	p.Annotations = map[string]string{mirrorPodAnnotation: "static-hash"}
	if got := runtimeUID(p); got != "static-hash" {
		t.Errorf("runtimeUID of a mirror pod = %q, want the static pod's", got)
	}
}
