package kubernetes

import (
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

var t0 = time.Date(2026, 11, 30, 21, 0, 0, 0, time.UTC)

// kubeletEvent is an event the kubelet records about a pod's container
// (path "" for one about the whole pod), first and last at t.
func kubeletEvent(reason, msg, container string, t time.Time) *apiEvent {
	e := &apiEvent{
		objectMeta:     objectMeta{UID: "ev-" + reason + container},
		InvolvedObject: objectRef{UID: podUID},
		Reason:         reason, Message: msg, Count: 1,
		FirstTimestamp: t, LastTimestamp: t,
	}
	if container != "" {
		e.InvolvedObject.FieldPath = "spec.containers{" + container + "}"
	}
	return e
}

func TestEventKill(t *testing.T) {
	tests := []struct {
		name      string
		e         *apiEvent
		ok        bool
		kind      attribution.Kind
		container string
		stopping  bool
	}{
		{name: "liveness probe kill", e: kubeletEvent("Killing", "Container app failed liveness probe, will be restarted", "app", t0),
			ok: true, kind: attribution.KindKubeProbe, container: "app"},
		{name: "startup probe kill", e: kubeletEvent("Killing", "Container app failed startup probe, will be restarted", "app", t0),
			ok: true, kind: attribution.KindKubeProbe, container: "app"},
		{name: "probe kill of a pod that does not restart", e: kubeletEvent("Killing", "Container app failed liveness probe", "app", t0),
			ok: true, kind: attribution.KindKubeProbe, container: "app"},
		{name: "a sidecar's probe kill", e: func() *apiEvent {
			e := kubeletEvent("Killing", "Init container proxy failed liveness probe", "", t0)
			e.InvolvedObject.FieldPath = "spec.initContainers{proxy}"
			return e
		}(), ok: true, kind: attribution.KindKubeProbe, container: "proxy"},
		{name: "stopping container: a deletion once the pod shows it", e: kubeletEvent("Killing", "Stopping container app", "app", t0),
			ok: true, kind: attribution.KindKubeDeletion, container: "app", stopping: true},
		{name: "stopping container named by the message alone", e: kubeletEvent("Killing", "Stopping container app", "", t0),
			ok: true, kind: attribution.KindKubeDeletion, container: "app", stopping: true},
		{name: "changed definition: none of the causes", e: kubeletEvent("Killing", "Container app definition changed, will be restarted", "app", t0)},
		{name: "failed post-start hook: none of the causes", e: kubeletEvent("Killing", "FailedPostStartHook", "app", t0)},
		{name: "kubelet eviction: the whole pod", e: kubeletEvent("Evicted", "The node was low on resource: memory. Threshold quantity: 100Gi, available: 1Gi.", "", t0),
			ok: true, kind: attribution.KindKubeEviction},
		{name: "kubelet preemption: the whole pod", e: kubeletEvent("Preempting", "Preempted in order to admit critical pod", "", t0),
			ok: true, kind: attribution.KindKubePreemption},
		{name: "liveness probe failed: not yet a kill", e: kubeletEvent("Unhealthy", "Liveness probe failed: dial tcp: connection refused", "app", t0)},
		{name: "back-off: no kill", e: kubeletEvent("BackOff", "Back-off restarting failed container app", "app", t0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, ok := eventKill(tt.e)
			if ok != tt.ok || k.kind != tt.kind || k.container != tt.container || k.stopping != tt.stopping {
				t.Fatalf("got %+v %v, want kind %q container %q stopping %v ok %v", k, ok, tt.kind, tt.container, tt.stopping, tt.ok)
			}
			if ok && (!k.at.Equal(t0) || k.detail != "event "+tt.e.Reason+": "+tt.e.Message) {
				t.Errorf("at %v detail %q", k.at, k.detail)
			}
		})
	}
}

func TestEventTimeAndOccurrences(t *testing.T) {
	later := t0.Add(90 * time.Second)
	core := kubeletEvent("Killing", "Container app failed liveness probe, will be restarted", "app", t0)
	core.LastTimestamp, core.Count = later, 3
	series := kubeletEvent("Killing", "m", "app", time.Time{})
	series.FirstTimestamp, series.LastTimestamp = time.Time{}, time.Time{}
	series.EventTime = t0
	series.Count = 0
	series.Series = &eventSeries{Count: 4, LastObservedTime: later}
	micro := kubeletEvent("Killing", "m", "app", time.Time{})
	micro.FirstTimestamp, micro.LastTimestamp, micro.Count = time.Time{}, time.Time{}, 0
	micro.EventTime = t0.Add(123 * time.Millisecond)
	for _, tt := range []struct {
		name string
		e    *apiEvent
		at   time.Time
		occ  int32
	}{
		{"core event repeated", core, later, 3},
		{"events.k8s.io series", series, later, 4},
		{"events.k8s.io single", micro, t0.Add(123 * time.Millisecond), 1},
	} {
		if at, occ := eventTime(tt.e), occurrences(tt.e); !at.Equal(tt.at) || occ != tt.occ {
			t.Errorf("%s: at %v occurrences %d, want %v %d", tt.name, at, occ, tt.at, tt.occ)
		}
	}
}

// disrupted is a pod with a DisruptionTarget condition of reason, set at t.
func disrupted(reason, statusReason string, t time.Time) *apiPod {
	p := runningPod()
	p.Status.Reason = statusReason
	p.Status.Conditions = append(p.Status.Conditions,
		podCondition{Type: "Ready", Status: "False", LastTransitionTime: t.Add(-time.Hour)},
		podCondition{Type: conditionDisruptionTarget, Status: conditionTrue, Reason: reason, Message: "why",
			LastTransitionTime: t})
	return p
}

func TestPodKill(t *testing.T) {
	seen := t0.Add(5 * time.Second)
	tests := []struct {
		name   string
		p      *apiPod
		ok     bool
		kind   attribution.Kind
		at     time.Time
		detail string
	}{
		{name: "running pod: nothing", p: runningPod()},
		{name: "kubelet eviction", p: disrupted("TerminationByKubelet", "Evicted", t0),
			ok: true, kind: attribution.KindKubeEviction, at: t0, detail: "pod condition DisruptionTarget TerminationByKubelet: why"},
		{name: "kubelet preemption", p: disrupted("TerminationByKubelet", "Preempting", t0),
			ok: true, kind: attribution.KindKubePreemption, at: t0},
		{name: "Eviction API", p: disrupted("EvictionByEvictionAPI", "", t0),
			ok: true, kind: attribution.KindKubeEviction, at: t0},
		{name: "scheduler preemption", p: disrupted("PreemptionByScheduler", "", t0),
			ok: true, kind: attribution.KindKubePreemption, at: t0},
		{name: "taint manager: a deletion, said so", p: disrupted("DeletionByTaintManager", "", t0),
			ok: true, kind: attribution.KindKubeDeletion, at: t0,
			detail: "pod condition DisruptionTarget DeletionByTaintManager: why (deleted by the taint manager: the node has a NoExecute taint the pod does not tolerate)"},
		{name: "pod GC: the pod was gone already", p: disrupted("DeletionByPodGC", "", t0)},
		{name: "condition false: nothing", p: func() *apiPod {
			p := disrupted("TerminationByKubelet", "", t0)
			p.Status.Conditions[1].Status = "False"
			return p
		}()},
		{name: "Evicted status without the condition: stamped when seen", p: func() *apiPod {
			p := runningPod()
			p.Status.Reason, p.Status.Message = "Evicted", "The node was low on resource: memory."
			return p
		}(), ok: true, kind: attribution.KindKubeEviction, at: seen, detail: "pod status Evicted: The node was low on resource: memory."},
		{name: "Preempting status without the condition", p: func() *apiPod {
			p := runningPod()
			p.Status.Reason = "Preempting"
			return p
		}(), ok: true, kind: attribution.KindKubePreemption, at: seen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, ok := podKill(tt.p, seen)
			if ok != tt.ok || k.kind != tt.kind || !k.at.Equal(tt.at) || k.container != "" {
				t.Fatalf("got %+v %v, want %s at %v, ok %v", k, ok, tt.kind, tt.at, tt.ok)
			}
			if tt.detail != "" && k.detail != tt.detail {
				t.Errorf("detail %q, want %q", k.detail, tt.detail)
			}
		})
	}
}
