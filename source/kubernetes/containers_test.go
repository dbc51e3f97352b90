package kubernetes

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	podUID = "7b2f7c1e-5a4d-4c1b-9f0e-3d2a1b0c9e8f"
	run1   = "1111111111111111111111111111111111111111111111111111111111111111"
	run2   = "2222222222222222222222222222222222222222222222222222222222222222"
	side1  = "3333333333333333333333333333333333333333333333333333333333333333"
)

// runningPod is pod default/web on node-1: container app in its first
// run (run1, started at t0−1m), and a sidecar (side1).
func runningPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: podUID, ResourceVersion: "10"},
		Spec: v1.PodSpec{NodeName: "node-1",
			InitContainers: []v1.Container{{Name: "proxy"}},
			Containers:     []v1.Container{{Name: "app"}}},
		Status: v1.PodStatus{
			Phase: v1.PodRunning,
			InitContainerStatuses: []v1.ContainerStatus{{Name: "proxy", ContainerID: "containerd://" + side1,
				State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0.Add(-2 * time.Minute))}}}},
			ContainerStatuses: []v1.ContainerStatus{{Name: "app", ContainerID: "containerd://" + run1,
				State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0.Add(-time.Minute))}}}},
		},
	}
}

// restarted is runningPod after app's first run was killed at t0+30s and
// its second (run2) started at t0+31s.
func restarted() *v1.Pod {
	p := runningPod()
	p.ResourceVersion = "11"
	s := &p.Status.ContainerStatuses[0]
	s.ContainerID, s.RestartCount = "containerd://"+run2, 1
	s.State = v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0.Add(31 * time.Second))}}
	s.LastTerminationState = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 137, Reason: "Error",
		ContainerID: "containerd://" + run1, StartedAt: metav1.NewTime(t0.Add(-time.Minute)), FinishedAt: metav1.NewTime(t0.Add(30 * time.Second))}}
	return p
}

// evictedUnknown is the pod after its eviction: the kubelet made up a
// ContainerStatusUnknown with exit code 137 for app.
func evictedUnknown() *v1.Pod {
	p := runningPod()
	p.Status.Phase, p.Status.Reason = v1.PodFailed, "Evicted"
	p.Status.ContainerStatuses[0].State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 137,
		Reason: "ContainerStatusUnknown", Message: "The container could not be located when the pod was terminated"}}
	p.Status.ContainerStatuses[0].ContainerID = ""
	return p
}

func TestAliveAt(t *testing.T) {
	tests := []struct {
		name      string
		p         *v1.Pod
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
			if s := containerStatus(tt.p, tt.container); s != nil {
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
	p.Annotations = map[string]string{v1.MirrorPodAnnotationKey: "static-hash"}
	if got := runtimeUID(p); got != "static-hash" {
		t.Errorf("runtimeUID of a mirror pod = %q, want the static pod's", got)
	}
}
