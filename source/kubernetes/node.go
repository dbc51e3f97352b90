package kubernetes

import (
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// keepGone is how long a pod deleted from the API, and a "Stopping
// container" waiting for its pod's deletion to show, are kept: the
// kubelet's events about a pod can come after the pod's deletion.
const keepGone = 10 * time.Minute

// node is what the source knows of the pods bound to this node, and of
// the events about them it has turned into evidence. Only the session's
// goroutine uses it.
type node struct {
	// pods holds each pod by its uid in the API and, for a static pod,
	// by its own uid too: the kubelet's events name the static pod, the
	// API holds its mirror.
	pods map[string]*pod
	// seen is how many occurrences of each event (of a known pod) were
	// handled: a repeat bumps the count of the same event, and a relist
	// delivers it again.
	seen       map[string]int32
	containers ContainerLookup // nil: the pod's status alone
	emit       func(attribution.Evidence)
}

// pod is one pod bound to this node.
type pod struct {
	p *apiPod
	// gone is when the API deleted it (zero while it exists).
	gone time.Time
	// said holds the kills told for each run: the Evicted event and the
	// DisruptionTarget condition of one eviction make one piece of
	// evidence.
	said map[said]bool
	// stopping holds the "Stopping container" kills seen before the pod
	// showed its deletionTimestamp (the pod and event watches are not
	// ordered with each other).
	stopping []kill
}

type said struct {
	kind attribution.Kind
	id   string
}

func newNode(containers ContainerLookup, emit func(attribution.Evidence)) *node {
	return &node{pods: map[string]*pod{}, seen: map[string]int32{}, containers: containers, emit: emit}
}

// podSeen takes a pod's new state; now stamps what the status says
// without a time of its own.
func (n *node) podSeen(p *apiPod, now time.Time) {
	st, ok := n.pods[p.UID]
	if !ok {
		st = &pod{said: map[said]bool{}}
		n.pods[p.UID] = st
		n.pods[runtimeUID(p)] = st
	}
	st.p, st.gone = p, time.Time{}
	if k, ok := podKill(p, now); ok {
		n.killPod(st, k)
	}
	if p.DeletionTimestamp != nil {
		for _, k := range st.stopping {
			if deletedBy(p, k.at) {
				n.killContainer(st, k)
			}
		}
		st.stopping = nil
	}
}

// podGone takes a pod's deletion from the API (with its final state).
func (n *node) podGone(p *apiPod, now time.Time) {
	n.podSeen(p, now)
	n.pods[p.UID].gone = now
}

// podsListed takes a relist: the pods it lacks were deleted meanwhile.
func (n *node) podsListed(ps []apiPod, now time.Time) {
	listed := make(map[string]bool, len(ps))
	for i := range ps {
		listed[ps[i].UID], listed[runtimeUID(&ps[i])] = true, true
		n.podSeen(&ps[i], now)
	}
	for uid, st := range n.pods {
		if !listed[uid] && st.gone.IsZero() {
			st.gone = now
		}
	}
}

// eventSeen takes a new or repeated event; events about pods not on this
// node are ignored.
func (n *node) eventSeen(e *apiEvent) {
	st, ok := n.pods[e.InvolvedObject.UID]
	if !ok {
		return
	}
	occ := occurrences(e)
	if occ <= n.seen[e.UID] {
		return
	}
	n.seen[e.UID] = occ
	k, ok := eventKill(e)
	switch {
	case !ok:
	case k.container == "":
		n.killPod(st, k)
	case k.stopping && st.p.DeletionTimestamp == nil:
		st.stopping = append(st.stopping, k)
	case k.stopping && !deletedBy(st.p, k.at):
		// Stopped before the deletion was asked for: for another reason.
	default:
		n.killContainer(st, k)
	}
}

// eventGone forgets an event the API deleted (events live an hour).
func (n *node) eventGone(e *apiEvent) { delete(n.seen, e.UID) }

// eventsListed takes a relist of the events: the occurrences that came
// meanwhile are new, and the events it lacks are forgotten.
func (n *node) eventsListed(es []apiEvent) {
	handled := n.seen
	n.seen = make(map[string]int32, len(es))
	for i := range es {
		e := &es[i]
		if occ, ok := handled[e.UID]; ok {
			n.seen[e.UID] = occ
		}
		n.eventSeen(e)
	}
}

// expire forgets the pods deleted, and the stops waiting for a deletion,
// more than keepGone before now.
func (n *node) expire(now time.Time) {
	for uid, st := range n.pods {
		if !st.gone.IsZero() && now.Sub(st.gone) > keepGone {
			delete(n.pods, uid)
			continue
		}
		kept := st.stopping[:0]
		for _, k := range st.stopping {
			if now.Sub(k.at) <= keepGone {
				kept = append(kept, k)
			}
		}
		st.stopping = kept
	}
}

// killPod tells a kill of the whole pod for each of its containers.
func (n *node) killPod(st *pod, k kill) {
	for _, cs := range [...][]containerSpec{st.p.Spec.InitContainers, st.p.Spec.Containers} {
		for i := range cs {
			k.container = cs[i].Name
			n.killContainer(st, k)
		}
	}
}

// killContainer tells a kill of the run of k.container alive at k.at,
// once per kind: from the pod's status, or, when the status names no run
// alive then (none yet, or the ContainerStatusUnknown an eviction leaves
// in place of the run it killed), from the runtime.
func (n *node) killContainer(st *pod, k kill) {
	var id string
	var ok bool
	if s := statusOf(st.p, k.container); s != nil {
		id, ok = aliveAt(s, k.at)
	}
	if !ok && n.containers != nil {
		id, ok = n.containers.KubeContainer(runtimeUID(st.p), k.container)
	}
	if !ok || !st.first(k.kind, id) {
		return
	}
	detail := k.detail
	if k.stopping {
		detail += deletionNote(st.p)
	}
	n.emit(attribution.Evidence{Container: id, Time: k.at, Source: sourceName, Kind: k.kind,
		GraceSeconds: graceSeconds(st.p, k.container), Detail: detail})
}

// graceSeconds is the longest grace period the kubelet can have given the
// container between SIGTERM and SIGKILL: the pod's, its deletion's, or
// one of its probes' own. An eviction under a hard threshold gives less;
// a longer bound only lets the kill explain a later death.
func graceSeconds(p *apiPod, container string) int64 {
	var g int64
	for _, s := range []*int64{p.Spec.TerminationGracePeriodSeconds, p.DeletionGracePeriodSeconds} {
		if s != nil {
			g = max(g, *s)
		}
	}
	for _, cs := range [...][]containerSpec{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if cs[i].Name != container {
				continue
			}
			for _, pr := range [...]*probe{cs[i].LivenessProbe, cs[i].StartupProbe} {
				if pr != nil && pr.TerminationGracePeriodSeconds != nil {
					g = max(g, *pr.TerminationGracePeriodSeconds)
				}
			}
		}
	}
	return g
}

// first reports whether kind is told of run id for the first time, and
// marks it told.
func (st *pod) first(kind attribution.Kind, id string) bool {
	key := said{kind, id}
	if st.said[key] {
		return false
	}
	st.said[key] = true
	return true
}

// deletedBy reports whether the pod's deletion had been asked for by t
// (its deletionTimestamp is the request's time plus the grace period).
func deletedBy(p *apiPod, t time.Time) bool {
	if p.DeletionTimestamp == nil {
		return false
	}
	asked := *p.DeletionTimestamp
	if g := p.DeletionGracePeriodSeconds; g != nil {
		asked = asked.Add(-time.Duration(*g) * time.Second)
	}
	return !t.Before(asked.Add(-stampSlack))
}

// deletionNote says when the pod was deleted, and its grace period.
func deletionNote(p *apiPod) string {
	note := "; the pod deleted through the API"
	if p.DeletionTimestamp != nil {
		note += ", to be gone by " + p.DeletionTimestamp.UTC().Format(time.TimeOnly)
	}
	if g := p.DeletionGracePeriodSeconds; g != nil {
		note += " (grace period " + (time.Duration(*g) * time.Second).String() + ")"
	}
	return note
}
