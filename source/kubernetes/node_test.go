package kubernetes

import (
	"slices"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// lookup is the runtime's answer for pod uid/container.
type lookup map[string]string

func (l lookup) KubeContainer(podUID, container string) (string, bool) {
	id, ok := l[podUID+"/"+container]
	return id, ok
}

// told is one piece of evidence, as the tests compare it.
type told struct {
	kind attribution.Kind
	id   string
	at   time.Duration // from t0
}

func recordingNode(containers ContainerLookup) (*node, *[]attribution.Evidence) {
	var got []attribution.Evidence
	return newNode(containers, func(e attribution.Evidence) { got = append(got, e) }), &got
}

func tolds(ev []attribution.Evidence) []told {
	var ts []told
	for _, e := range ev {
		ts = append(ts, told{e.Kind, e.Container, e.Time.Sub(t0)})
	}
	return ts
}

func deleting(p *apiPod) *apiPod {
	at, grace := t0.Add(30*time.Second), int64(30)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &at, &grace
	return p
}

func repeated(e *apiEvent, count int32, at time.Time) *apiEvent {
	r := *e
	r.Count, r.LastTimestamp = count, at
	return &r
}

func TestNode(t *testing.T) {
	probeKill := kubeletEvent("Killing", "Container app failed liveness probe, will be restarted", "app", t0)
	stopApp := kubeletEvent("Killing", "Stopping container app", "app", t0)
	evicted := kubeletEvent("Evicted", "The node was low on resource: memory.", "", t0)
	const sec = time.Second
	tests := []struct {
		name   string
		lookup lookup
		steps  func(n *node)
		want   []told
	}{
		{name: "probe kill: the run named by the pod's status",
			steps: func(n *node) { n.podSeen(runningPod(), t0); n.eventSeen(probeKill) },
			want:  []told{{attribution.KindKubeProbe, run1, 0}}},
		{name: "an event about a pod on another node: nothing",
			steps: func(n *node) { n.eventSeen(probeKill) }},
		{name: "the same event again (a relist): told once",
			steps: func(n *node) {
				n.podSeen(runningPod(), t0)
				n.eventSeen(probeKill)
				n.eventSeen(probeKill)
				n.eventsListed([]apiEvent{*probeKill})
			},
			want: []told{{attribution.KindKubeProbe, run1, 0}}},
		{name: "the event repeated for the next run: told for that run",
			steps: func(n *node) {
				n.podSeen(runningPod(), t0)
				n.eventSeen(probeKill)
				n.podSeen(restarted(), t0.Add(31*sec))
				n.eventSeen(repeated(probeKill, 2, t0.Add(90*sec)))
				n.eventsListed([]apiEvent{*repeated(probeKill, 2, t0.Add(90*sec))})
			},
			want: []told{{attribution.KindKubeProbe, run1, 0}, {attribution.KindKubeProbe, run2, 90 * sec}}},
		{name: "a repeat missed while away, found by the relist",
			steps: func(n *node) {
				n.podSeen(runningPod(), t0)
				n.eventSeen(probeKill)
				n.podsListed([]apiPod{*restarted()}, t0.Add(2*time.Minute))
				n.eventsListed([]apiEvent{*repeated(probeKill, 2, t0.Add(90*sec))})
			},
			want: []told{{attribution.KindKubeProbe, run1, 0}, {attribution.KindKubeProbe, run2, 90 * sec}}},
		{name: "a late event after the status moved on: the run before",
			steps: func(n *node) { n.podSeen(restarted(), t0.Add(31*sec)); n.eventSeen(probeKill) },
			want:  []told{{attribution.KindKubeProbe, run1, 0}}},
		{name: "status without the container yet: the runtime's run",
			lookup: lookup{podUID + "/app": run2},
			steps: func(n *node) {
				p := runningPod()
				p.Status.ContainerStatuses = nil
				n.podSeen(p, t0)
				n.eventSeen(probeKill)
			},
			want: []told{{attribution.KindKubeProbe, run2, 0}}},
		{name: "status without the container and no runtime answer: nothing",
			lookup: lookup{},
			steps: func(n *node) {
				p := runningPod()
				p.Status.ContainerStatuses = nil
				n.podSeen(p, t0)
				n.eventSeen(probeKill)
			}},
		{name: "stopping container of a deleted pod: deletion",
			steps: func(n *node) { n.podSeen(deleting(runningPod()), t0); n.eventSeen(stopApp) },
			want:  []told{{attribution.KindKubeDeletion, run1, 0}}},
		{name: "stopping container before the pod shows its deletion: told when it does",
			steps: func(n *node) {
				n.podSeen(runningPod(), t0)
				n.eventSeen(stopApp)
				n.podSeen(deleting(runningPod()), t0.Add(sec))
				n.podSeen(deleting(runningPod()), t0.Add(2*sec))
			},
			want: []told{{attribution.KindKubeDeletion, run1, 0}}},
		{name: "an evicted pod's stop, the pod deleted minutes later: no deletion",
			steps: func(n *node) {
				n.podSeen(runningPod(), t0)
				n.eventSeen(evicted)
				n.eventSeen(stopApp)
				later := deleting(runningPod()) // its status still names run1
				*later.DeletionTimestamp = t0.Add(5 * time.Minute)
				n.podSeen(later, t0.Add(5*time.Minute))
			},
			want: []told{{attribution.KindKubeEviction, side1, 0}, {attribution.KindKubeEviction, run1, 0}}},
		{name: "a stop delivered after a later deletion, stamped before it: no deletion",
			steps: func(n *node) {
				later := deleting(runningPod())
				*later.DeletionTimestamp = t0.Add(5 * time.Minute)
				n.podSeen(later, t0.Add(5*time.Minute))
				n.eventSeen(stopApp)
			}},
		{name: "stopping container of a pod never deleted: nothing",
			steps: func(n *node) { n.podSeen(runningPod(), t0); n.eventSeen(stopApp); n.expire(t0.Add(time.Hour)) }},
		{name: "a stop waiting for the deletion expires",
			steps: func(n *node) {
				n.podSeen(runningPod(), t0)
				n.eventSeen(stopApp)
				n.expire(t0.Add(keepGone + sec))
				n.podSeen(deleting(runningPod()), t0.Add(keepGone+2*sec))
			}},
		{name: "kubelet eviction: the event and the condition, once per run",
			steps: func(n *node) {
				n.podSeen(runningPod(), t0)
				n.eventSeen(evicted)
				n.podSeen(disrupted("TerminationByKubelet", "Evicted", t0.Add(sec)), t0.Add(sec))
				n.eventSeen(kubeletEvent("Killing", "Stopping container app", "app", t0.Add(sec)))
			},
			want: []told{{attribution.KindKubeEviction, side1, 0}, {attribution.KindKubeEviction, run1, 0}}},
		{name: "the synthetic 137 of an evicted pod names no run",
			steps: func(n *node) {
				n.podSeen(runningPod(), t0)
				n.eventSeen(evicted)
				n.podSeen(evictedUnknown(), t0.Add(sec))
				n.podGone(evictedUnknown(), t0.Add(time.Minute))
			},
			want: []told{{attribution.KindKubeEviction, side1, 0}, {attribution.KindKubeEviction, run1, 0}}},
		{name: "the made-up status before the Evicted event: the runtime's run",
			lookup: lookup{podUID + "/app": run1},
			steps: func(n *node) {
				n.podSeen(evictedUnknown(), t0)
				n.eventSeen(kubeletEvent("Evicted", "The node was low on resource: memory.", "app", t0))
			},
			want: []told{{attribution.KindKubeEviction, side1, 0}, {attribution.KindKubeEviction, run1, 0}}},
		{name: "Eviction API: the eviction, and the deletion that carried it out",
			steps: func(n *node) {
				n.podSeen(deleting(disrupted("EvictionByEvictionAPI", "", t0)), t0)
				n.eventSeen(stopApp)
			},
			want: []told{{attribution.KindKubeEviction, side1, 0}, {attribution.KindKubeEviction, run1, 0}, {attribution.KindKubeDeletion, run1, 0}}},
		{name: "an event after the pod's deletion from the API",
			steps: func(n *node) {
				n.podSeen(deleting(runningPod()), t0)
				n.podGone(deleting(runningPod()), t0.Add(sec))
				n.eventSeen(stopApp)
			},
			want: []told{{attribution.KindKubeDeletion, run1, 0}}},
		{name: "a pod deleted long ago is forgotten",
			steps: func(n *node) {
				n.podSeen(deleting(runningPod()), t0)
				n.podsListed(nil, t0.Add(sec))
				n.expire(t0.Add(keepGone + 2*sec))
				n.eventSeen(stopApp)
			}},
		{name: "a static pod: the kubelet's event names the static pod, the API its mirror",
			steps: func(n *node) {
				mirror := runningPod()
				mirror.UID, mirror.Annotations = "mirror-uid", map[string]string{mirrorPodAnnotation: podUID}
				n.podsListed([]apiPod{*mirror}, t0)
				n.podsListed([]apiPod{*mirror}, t0)
				n.eventSeen(probeKill)
			},
			want: []told{{attribution.KindKubeProbe, run1, 0}}},
		{name: "an event the API deleted, delivered again: told again only if new",
			steps: func(n *node) {
				n.podSeen(runningPod(), t0)
				n.eventSeen(probeKill)
				n.eventGone(probeKill)
				n.eventSeen(probeKill) // the same run: said already
			},
			want: []told{{attribution.KindKubeProbe, run1, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var containers ContainerLookup
			if tt.lookup != nil {
				containers = tt.lookup
			}
			n, got := recordingNode(containers)
			tt.steps(n)
			if g := tolds(*got); !slices.Equal(g, tt.want) {
				t.Errorf("told %v, want %v", g, tt.want)
			}
			for _, e := range *got {
				if e.Source != "kubernetes" || e.Detail == "" {
					t.Errorf("evidence %+v: source or detail missing", e)
				}
			}
		})
	}
}

func TestGraceSeconds(t *testing.T) {
	i := func(n int64) *int64 { return &n }
	p := runningPod()
	if g := graceSeconds(p, "app"); g != 0 {
		t.Errorf("no grace set: %d", g)
	}
	p.Spec.TerminationGracePeriodSeconds = i(30)
	if g := graceSeconds(p, "app"); g != 30 {
		t.Errorf("the pod's: %d, want 30", g)
	}
	p.Spec.Containers[0].LivenessProbe = &probe{TerminationGracePeriodSeconds: i(45)}
	if g := graceSeconds(p, "app"); g != 45 {
		t.Errorf("the liveness probe's: %d, want 45", g)
	}
	if g := graceSeconds(p, "proxy"); g != 30 {
		t.Errorf("another container's probe: %d, want the pod's 30", g)
	}
	p.DeletionGracePeriodSeconds = i(120)
	if g := graceSeconds(p, "app"); g != 120 {
		t.Errorf("the deletion's: %d, want 120", g)
	}
}

func TestDeletionDetail(t *testing.T) {
	n, got := recordingNode(nil)
	n.podSeen(deleting(runningPod()), t0)
	n.eventSeen(kubeletEvent("Killing", "Stopping container app", "app", t0))
	want := "event Killing: Stopping container app; the pod deleted through the API, to be gone by 21:00:30 (grace period 30s)"
	if len(*got) != 1 || (*got)[0].Detail != want || (*got)[0].GraceSeconds != 30 {
		t.Fatalf("got %+v, want one with detail %q", *got, want)
	}
}
