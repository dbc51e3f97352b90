// Package source holds what every evidence source shares: its health, as
// exit137_source_up / _events_total / _errors_total show it.
package source

import (
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
)

// Health is one source's liveness and counters. It is safe for concurrent
// use: the source writes, the scrape reads.
type Health struct {
	name   string
	up     atomic.Bool
	events atomic.Uint64
	errors atomic.Uint64
}

// Name is the value of the source label.
func (h *Health) Name() string { return h.name }

// Up reports whether the source is currently delivering.
func (h *Health) Up() bool { return h.up.Load() }

// Events is how many events the source has turned into evidence.
func (h *Health) Events() uint64 { return h.events.Load() }

// Errors is how many errors the source has met (bad lines, lost
// connections, failed reads).
func (h *Health) Errors() uint64 { return h.errors.Load() }

// SetUp records whether the source works; it logs only transitions, so a
// source that stays down does not flood the log.
func (h *Health) SetUp(up bool, logger *slog.Logger, reason error) {
	was := h.up.Swap(up)
	switch {
	case up && !was:
		logger.Info("source up", "evidence_source", h.name)
	case !up && was:
		logger.Error("source down", "evidence_source", h.name, "err", reason)
	}
}

// Event counts one event.
func (h *Health) Event() { h.events.Add(1) }

// Error counts one error and logs it.
func (h *Health) Error(logger *slog.Logger, msg string, err error) {
	h.errors.Add(1)
	logger.Warn(msg, "evidence_source", h.name, "err", err)
}

// Registry holds the health of every source, by name.
type Registry struct {
	mu      sync.Mutex
	sources map[string]*Health
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{sources: map[string]*Health{}} }

// Source returns the Health for name, creating it (down) on first use.
func (r *Registry) Source(name string) *Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.sources[name]
	if !ok {
		h = &Health{name: name}
		r.sources[name] = h
	}
	return h
}

// All returns every source's Health, sorted by name.
func (r *Registry) All() []*Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := make([]*Health, 0, len(r.sources))
	for _, h := range r.sources {
		all = append(all, h)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	return all
}
