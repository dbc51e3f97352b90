package kubernetes

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// roundTrip encodes an object of k8s.io/api as the API server does and
// decodes it into the source's own type.
func roundTrip[T any](t *testing.T, obj any) T {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var into T
	if err := json.Unmarshal(b, &into); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return into
}

// The source's types read every field it uses from the JSON of
// k8s.io/api's.
func TestObjectsDecode(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	deletion := metav1.NewTime(t0.Add(30 * time.Second))
	pod := &v1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: podUID, ResourceVersion: "10",
			CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour)), DeletionTimestamp: &deletion, DeletionGracePeriodSeconds: i64(30),
			Annotations: map[string]string{v1.MirrorPodAnnotationKey: "static"}},
		Spec: v1.PodSpec{NodeName: "node-1", TerminationGracePeriodSeconds: i64(2),
			InitContainers: []v1.Container{{Name: "proxy", Image: "proxy"}},
			Containers: []v1.Container{{Name: "app", Image: "app",
				LivenessProbe: &v1.Probe{PeriodSeconds: 1, TerminationGracePeriodSeconds: i64(45)},
				StartupProbe:  &v1.Probe{TerminationGracePeriodSeconds: i64(5)}}}},
		Status: v1.PodStatus{Phase: v1.PodRunning, Reason: "Evicted", Message: "low on memory",
			Conditions: []v1.PodCondition{{Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: "TerminationByKubelet",
				Message: "why", LastTransitionTime: metav1.NewTime(t0)}},
			InitContainerStatuses: []v1.ContainerStatus{{Name: "proxy", ContainerID: "containerd://" + side1,
				State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}}}},
			ContainerStatuses: []v1.ContainerStatus{{Name: "app", ContainerID: "containerd://" + run2, RestartCount: 1,
				State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0.Add(31 * time.Second))}},
				LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 137, Reason: "Error",
					ContainerID: "containerd://" + run1, StartedAt: metav1.NewTime(t0), FinishedAt: metav1.NewTime(t0.Add(30 * time.Second))}}}}},
	}
	deletedAt := t0.Add(30 * time.Second)
	wantPod := apiPod{
		objectMeta: objectMeta{UID: podUID, ResourceVersion: "10", CreationTimestamp: t0.Add(-time.Hour),
			DeletionTimestamp: &deletedAt, DeletionGracePeriodSeconds: i64(30), Annotations: map[string]string{mirrorPodAnnotation: "static"}},
		Spec: podSpec{TerminationGracePeriodSeconds: i64(2), InitContainers: []containerSpec{{Name: "proxy"}},
			Containers: []containerSpec{{Name: "app", LivenessProbe: &probe{i64(45)}, StartupProbe: &probe{i64(5)}}}},
		Status: podStatus{Reason: "Evicted", Message: "low on memory",
			Conditions: []podCondition{{Type: conditionDisruptionTarget, Status: conditionTrue, Reason: "TerminationByKubelet",
				Message: "why", LastTransitionTime: t0}},
			InitContainerStatuses: []containerStatus{{Name: "proxy", ContainerID: "containerd://" + side1,
				State: containerState{Running: &stateRunning{t0}}}},
			ContainerStatuses: []containerStatus{{Name: "app", ContainerID: "containerd://" + run2,
				State: containerState{Running: &stateRunning{t0.Add(31 * time.Second)}},
				LastTerminationState: containerState{Terminated: &stateTerminated{Reason: "Error", ContainerID: "containerd://" + run1,
					StartedAt: t0, FinishedAt: t0.Add(30 * time.Second)}}}}},
	}
	if got := roundTrip[apiPod](t, pod); !reflect.DeepEqual(got, wantPod) {
		t.Errorf("pod\n got %+v\nwant %+v", got, wantPod)
	}

	later := t0.Add(90 * time.Second)
	event := &v1.Event{
		TypeMeta:       metav1.TypeMeta{Kind: "Event", APIVersion: "v1"},
		ObjectMeta:     metav1.ObjectMeta{Name: "web.1", Namespace: "default", UID: "ev-1", ResourceVersion: "201", CreationTimestamp: metav1.NewTime(t0)},
		InvolvedObject: v1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web", UID: podUID, FieldPath: "spec.containers{app}"},
		Reason:         "Killing", Message: "Container app failed liveness probe, will be restarted", Type: v1.EventTypeNormal,
		Source:         v1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp: metav1.NewTime(t0), LastTimestamp: metav1.NewTime(later), Count: 3,
		EventTime:           metav1.NewMicroTime(t0.Add(123 * time.Microsecond)),
		Series:              &v1.EventSeries{Count: 4, LastObservedTime: metav1.NewMicroTime(later.Add(456 * time.Microsecond))},
		ReportingController: "kubelet", ReportingInstance: "node-1",
	}
	wantEvent := apiEvent{
		objectMeta:     objectMeta{UID: "ev-1", ResourceVersion: "201", CreationTimestamp: t0},
		InvolvedObject: objectRef{UID: podUID, FieldPath: "spec.containers{app}"},
		Reason:         "Killing", Message: "Container app failed liveness probe, will be restarted",
		FirstTimestamp: t0, LastTimestamp: later, Count: 3, EventTime: t0.Add(123 * time.Microsecond),
		Series: &eventSeries{Count: 4, LastObservedTime: later.Add(456 * time.Microsecond)},
	}
	if got := roundTrip[apiEvent](t, event); !reflect.DeepEqual(got, wantEvent) {
		t.Errorf("event\n got %+v\nwant %+v", got, wantEvent)
	}

	// A core event without the events.k8s.io fields: null times are zero.
	event.EventTime, event.Series = metav1.MicroTime{}, nil
	if got := roundTrip[apiEvent](t, event); !got.EventTime.IsZero() || got.Series != nil || !eventTime(&got).Equal(later) {
		t.Errorf("core event: eventTime %v series %v", got.EventTime, got.Series)
	}

	list := &v1.EventList{ListMeta: metav1.ListMeta{ResourceVersion: "300", Continue: "next"}, Items: []v1.Event{*event}}
	if got := roundTrip[eventList](t, list); got.Metadata != (listMeta{"300", "next"}) || len(got.Items) != 1 {
		t.Errorf("event list %+v", got)
	}
}
