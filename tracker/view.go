package tracker

import (
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// View is a container as the collectors see it.
type View struct {
	Meta
	Running   bool
	LastExit  *attribution.Exit
	LastCause attribution.Cause
}

// Views returns every known container, keyed by id.
func (t *Tracker) Views() map[string]View {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]View, len(t.containers))
	for id, c := range t.containers {
		out[id] = View{Meta: c.Meta, Running: c.running, LastExit: c.lastExit, LastCause: c.lastCause}
	}
	return out
}

// KubeContainer returns the id of the container a kubelet runs as
// container in the pod with uid podUID: the running one, else the one
// that started last (a kill's event may come after its exit). For the
// Kubernetes source, which hears of kills by pod and container name.
func (t *Tracker) KubeContainer(podUID, container string) (id string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var latest time.Time
	for cid, c := range t.containers {
		if c.PodUID != podUID || c.Container != container {
			continue
		}
		if c.running {
			return cid, true
		}
		if started := t.ledger.startOf(cid); !ok || started.After(latest) {
			id, latest, ok = cid, started, true
		}
	}
	return id, ok
}
