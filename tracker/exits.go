package tracker

import (
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/shrink"
)

// ExitKey is the label set of an exit counter besides the container.
type ExitKey struct {
	ExitCode int               `json:"exit_code"`
	Signal   string            `json:"signal"`
	Cause    attribution.Cause `json:"cause"`
}

type nameKey struct{ name, image string }

// Kube is a kubelet's container's identity on its exit series; zero for
// other containers.
type Kube struct {
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
}

func kubeOf(m Meta) Kube { return Kube{Namespace: m.Namespace, Pod: m.Pod, Container: m.Container} }

// nameSeries is one (name, image) set of exit counters.
type nameSeries struct {
	counts map[ExitKey]uint64
	// kube is set when the name is a kubelet's container's (the name
	// holds the same namespace/pod/container).
	kube Kube
	// last is when the set was last seen live (a container of that name
	// and image existed) or counting; retention runs from it.
	last time.Time
	// touched says it was live or counted an exit since the last expire.
	touched bool
}

// exitCounts holds exit counters keyed by container name and image, so
// that counts survive re-creation, and the host totals, which are never
// dropped. Each (name, image) set expires on its own: a name redeployed
// with a new image tag does not carry its old tags' sets for ever.
type exitCounts struct {
	byName map[nameKey]*nameSeries
	// peak lets expire give back byName's table after a wave of names.
	peak shrink.Peak
	host map[ExitKey]uint64
}

// killCauses are the causes a SIGKILL can get; their 137 series are
// served at zero so that increase() sees a container's first kill. A
// name's set stores only what it counted; ExitSeries adds the zeros (at
// 1,000 names, five stored zeros each were 1 MB held for nothing).
var killCauses = []attribution.Cause{
	attribution.CauseOOM, attribution.CauseSystemdPartOf, attribution.CauseManual,
	attribution.CauseDisk, attribution.CauseUnknown,
}

// kubeKillCauses are a Kubernetes container's: the kubelet's kills too.
var kubeKillCauses = append(killCauses[:len(killCauses):len(killCauses)], attribution.KubernetesCauses...)

// killCauses are the causes served at zero for the set's name.
func (s *nameSeries) killCauses() []attribution.Cause {
	if s.kube != (Kube{}) {
		return kubeKillCauses
	}
	return killCauses
}

func newExitCounts() exitCounts {
	e := exitCounts{
		byName: map[nameKey]*nameSeries{},
		host:   map[ExitKey]uint64{},
	}
	preinitKills(e.host)
	return e
}

func preinitKills(m map[ExitKey]uint64) {
	for _, cause := range killCauses {
		m[ExitKey{ExitCode: 137, Signal: "SIGKILL", Cause: cause}] += 0
	}
}

// hold makes sure a live container's series exist; their retention
// restarts at the next expire.
func (e *exitCounts) hold(name, image string, kube Kube) {
	if name == "" {
		return
	}
	k := nameKey{name, image}
	s, ok := e.byName[k]
	if !ok {
		s = &nameSeries{counts: map[ExitKey]uint64{}}
		e.byName[k] = s
	}
	if kube != (Kube{}) {
		s.kube = kube
	}
	s.touched = true
}

// release starts the retention of a name's sets: its container went away
// or was renamed.
func (e *exitCounts) release(name string, now time.Time) {
	if name == "" {
		return
	}
	for k, s := range e.byName {
		if k.name == name {
			s.last, s.touched = now, false
		}
	}
}

func (e *exitCounts) count(name, image string, kube Kube, k ExitKey) {
	e.host[k]++
	if name == "" {
		return
	}
	e.hold(name, image, kube)
	e.byName[nameKey{name, image}].counts[k]++
}

// expire drops the (name, image) sets that no existing container holds
// and that counted no exit for longer than retention.
func (e *exitCounts) expire(live map[nameKey]bool, now time.Time, retention time.Duration) {
	e.peak.See(len(e.byName))
	defer func() { e.byName = shrink.Map(e.byName, &e.peak) }()
	for k, s := range e.byName {
		switch {
		case live[k] || s.touched:
			s.last, s.touched = now, false
		case now.Sub(s.last) > retention:
			delete(e.byName, k)
		}
	}
}

// ExitSeries is one exit counter.
type ExitSeries struct {
	Name, Image string
	Kube
	ExitKey
	Count uint64
}

// ExitSeries returns the per-name counters (after expiring old sets) and
// the host totals, in no order (the registry sorts what it serves).
func (t *Tracker) ExitSeries() (byName, host []ExitSeries) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := make(map[nameKey]bool, len(t.containers))
	for _, c := range t.containers {
		live[nameKey{c.Name, c.Image}] = true
	}
	t.exits.expire(live, t.now(), t.cfg.Retention)
	t.sweep(t.now(), false) // when no event has swept for a while
	byName = make([]ExitSeries, 0, (len(killCauses)+1)*len(t.exits.byName))
	for k, set := range t.exits.byName {
		for ek, n := range set.counts {
			byName = append(byName, ExitSeries{Name: k.name, Image: k.image, Kube: set.kube, ExitKey: ek, Count: n})
		}
		for _, cause := range set.killCauses() {
			ek := ExitKey{ExitCode: 137, Signal: "SIGKILL", Cause: cause}
			if _, counted := set.counts[ek]; !counted {
				byName = append(byName, ExitSeries{Name: k.name, Image: k.image, Kube: set.kube, ExitKey: ek})
			}
		}
	}
	for ek, n := range t.exits.host {
		host = append(host, ExitSeries{ExitKey: ek, Count: n})
	}
	return byName, host
}
