package tracker

import "github.com/exit137-exporter/exit137-exporter/attribution"

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
