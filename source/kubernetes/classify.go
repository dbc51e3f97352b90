package kubernetes

import (
	"strings"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// What the kubelet and the API server write, in kubelet v1.34's words
// (pkg/kubelet/events, kuberuntime, eviction, preemption; the pod
// storage's eviction and the taint manager).
const (
	reasonKilling    = "Killing"    // the kubelet stops a container
	reasonEvicted    = "Evicted"    // the kubelet's eviction manager
	reasonPreempting = "Preempting" // the kubelet preempts for a critical pod

	stoppingPrefix = "Stopping container " // a kill with no reason of its own

	// DisruptionTarget reasons.
	reasonTerminationByKubelet  = "TerminationByKubelet"
	reasonEvictionAPI           = "EvictionByEvictionAPI"
	reasonPreemptionByScheduler = "PreemptionByScheduler"
	reasonTaintManager          = "DeletionByTaintManager"
)

// kill is what one event or pod condition says the kubelet did or is
// about to do to a pod's containers.
type kill struct {
	kind attribution.Kind
	// container is the pod's container it names; "" for the whole pod.
	container string
	// stopping marks a Killing "Stopping container": a deletion when the
	// pod has a deletionTimestamp, nothing to tell on its own otherwise.
	stopping bool
	at       time.Time
	detail   string
}

// eventKill reads a kubelet event about a pod; ok is false for events
// that tell no kill.
func eventKill(e *apiEvent) (k kill, ok bool) {
	k = kill{at: eventTime(e), detail: "event " + e.Reason + ": " + e.Message}
	switch e.Reason {
	case reasonKilling:
		k.container = eventContainer(e)
		switch {
		case isProbeKill(e.Message):
			k.kind = attribution.KindKubeProbe
		case strings.HasPrefix(e.Message, stoppingPrefix):
			k.kind, k.stopping = attribution.KindKubeDeletion, true
		default:
			// A changed definition, a failed post-start hook: the
			// kubelet's, but none of the causes.
			return kill{}, false
		}
		if k.container == "" {
			return kill{}, false
		}
	case reasonEvicted:
		k.kind = attribution.KindKubeEviction
	case reasonPreempting:
		k.kind = attribution.KindKubePreemption
	default:
		return kill{}, false
	}
	return k, true
}

// isProbeKill: "Container X failed liveness probe, will be restarted",
// the startup probe's likewise, and a sidecar's "Init container X failed
// liveness probe".
func isProbeKill(msg string) bool {
	return strings.Contains(msg, " failed liveness probe") || strings.Contains(msg, " failed startup probe")
}

// eventContainer names the container a kubelet event is about: its
// object's field path (spec.containers{app}, spec.initContainers{x}),
// else the name in a "Stopping container X" message.
func eventContainer(e *apiEvent) string {
	fp := e.InvolvedObject.FieldPath
	if open := strings.IndexByte(fp, '{'); open >= 0 && strings.HasSuffix(fp, "}") {
		return fp[open+1 : len(fp)-1]
	}
	if name, ok := strings.CutPrefix(e.Message, stoppingPrefix); ok {
		return name
	}
	return ""
}

// eventTime is when an event last happened: an events.k8s.io event's
// eventTime or series, else the core event's lastTimestamp (whole
// seconds).
func eventTime(e *apiEvent) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime
	case !e.EventTime.IsZero():
		return e.EventTime
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp
	}
	return e.CreationTimestamp
}

// occurrences is how many times an event has happened: a repeat bumps
// the count (or the series' count) of the same event object.
func occurrences(e *apiEvent) int32 {
	n := max(e.Count, 1)
	if e.Series != nil {
		n = max(n, e.Series.Count)
	}
	return n
}

// podKill reads what a pod's status says the whole pod is undergoing: a
// DisruptionTarget condition, or the kubelet's Evicted or Preempting
// status reason; seen is when the watch delivered it, the time of a status
// reason that has none.
func podKill(p *apiPod, seen time.Time) (k kill, ok bool) {
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type != conditionDisruptionTarget || c.Status != conditionTrue {
			continue
		}
		k = kill{at: c.LastTransitionTime, detail: "pod condition DisruptionTarget " + c.Reason + ": " + c.Message}
		if k.at.IsZero() {
			k.at = seen
		}
		switch c.Reason {
		case reasonTerminationByKubelet:
			k.kind = attribution.KindKubeEviction
			if p.Status.Reason == reasonPreempting {
				k.kind = attribution.KindKubePreemption
			}
		case reasonEvictionAPI:
			k.kind = attribution.KindKubeEviction
		case reasonPreemptionByScheduler:
			k.kind = attribution.KindKubePreemption
		case reasonTaintManager:
			k.kind = attribution.KindKubeDeletion
			k.detail += " (deleted by the taint manager: the node has a NoExecute taint the pod does not tolerate)"
		default:
			continue // DeletionByPodGC: the pod was gone already
		}
		return k, true
	}
	switch p.Status.Reason {
	case reasonEvicted:
		return kill{kind: attribution.KindKubeEviction, at: seen, detail: "pod status Evicted: " + p.Status.Message}, true
	case reasonPreempting:
		return kill{kind: attribution.KindKubePreemption, at: seen, detail: "pod status Preempting: " + p.Status.Message}, true
	}
	return kill{}, false
}
