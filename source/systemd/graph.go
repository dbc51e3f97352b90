package systemd

import (
	"slices"
	"strings"
	"time"
)

// Relation is how a unit follows another's stop.
type Relation string

const (
	// PartOf= propagates stop and restart, not a failure.
	PartOf Relation = "PartOf"
	// BindsTo= propagates stop, restart and failure.
	BindsTo Relation = "BindsTo"
)

// Deps are one unit's PartOf=/BindsTo= edges, both ways, as systemd
// reports them (ConsistsOf= and BoundBy= are the reverse sides).
type Deps struct {
	PartOf, BindsTo, ConsistsOf, BoundBy []string
}

// Edge is a unit that another follows.
type Edge struct {
	Parent   string
	Relation Relation
}

// Sample is a unit's state as one change signal reported it.
type Sample struct {
	At          time.Time
	Active, Sub string // ActiveState, SubState
	Job         uint32 // the unit's job id, 0 when none
	// NewJob says a job was queued for the unit with this change; Observe
	// sets it.
	NewJob bool
}

const (
	// historyKeep bounds each unit's history in time and in length;
	// long enough for the slowest Restart= cycle worth explaining.
	historyKeep    = 2 * time.Minute
	historyMaxLen  = 32
	removedForgets = time.Minute // an unloaded unit is forgotten this long after
)

// up is a running unit, or one starting; down is one stopping, stopped,
// failed, or waiting to be restarted after a crash.
func (s Sample) up() bool {
	switch s.Active {
	case "active", "reloading":
		return true
	case "activating":
		return s.Sub != "auto-restart"
	}
	return false
}

func (s Sample) down() bool { return !s.up() && s.Active != "" }

type unitRecord struct {
	deps      Deps
	history   []Sample
	removedAt time.Time
}

// Graph holds every loaded unit's PartOf=/BindsTo= edges and its recent
// state changes. It is not safe for concurrent use; the Source locks it.
type Graph struct {
	units map[string]*unitRecord
}

// NewGraph returns an empty graph.
func NewGraph() *Graph { return &Graph{units: map[string]*unitRecord{}} }

func (g *Graph) record(name string) *unitRecord {
	u, ok := g.units[name]
	if !ok {
		u = &unitRecord{}
		g.units[name] = u
	}
	return u
}

// Known reports whether the graph has the unit's edges.
func (g *Graph) Known(name string) bool {
	u, ok := g.units[name]
	return ok && u.removedAt.IsZero()
}

// SetDeps stores a unit's edges, replacing what was known.
func (g *Graph) SetDeps(name string, d Deps) {
	u := g.record(name)
	u.deps, u.removedAt = d, time.Time{}
}

// Replace sets every unit's edges from a full listing (after a connect or
// a daemon-reload): units not listed lose their edges but keep their
// history, which a stop being explained may still need.
func (g *Graph) Replace(all map[string]Deps) {
	for name, u := range g.units {
		if _, ok := all[name]; !ok {
			u.deps = Deps{}
		}
	}
	for name, d := range all {
		g.SetDeps(name, d)
	}
}

// Removed marks a unit that systemd unloaded; Prune forgets it later.
func (g *Graph) Removed(name string, at time.Time) {
	if u, ok := g.units[name]; ok {
		u.removedAt = at
	}
}

// Prune forgets units unloaded long ago and history older than it needs.
func (g *Graph) Prune(now time.Time) {
	for name, u := range g.units {
		if !u.removedAt.IsZero() && now.Sub(u.removedAt) > removedForgets {
			delete(g.units, name)
			continue
		}
		u.history = trimHistory(u.history, now)
	}
}

func trimHistory(h []Sample, now time.Time) []Sample {
	drop := 0
	for drop < len(h) && (len(h)-drop > historyMaxLen || now.Sub(h[drop].At) > historyKeep) {
		drop++
	}
	return h[drop:]
}

// Observe appends a state change and reports whether it took the unit
// from up to down: the start of a stop.
func (g *Graph) Observe(name string, s Sample) (stopped bool) {
	u := g.record(name)
	s.NewJob = s.Job != 0
	if n := len(u.history); n > 0 {
		prev := u.history[n-1]
		if s.Active == prev.Active && s.Sub == prev.Sub && s.Job == prev.Job {
			return false
		}
		s.NewJob = s.Job != 0 && s.Job != prev.Job
		stopped = prev.up() && s.down()
	}
	u.history = trimHistory(append(u.history, s), s.At)
	return stopped
}

// History returns a copy of the unit's recent state changes, oldest
// first.
func (g *Graph) History(name string) []Sample {
	if u, ok := g.units[name]; ok {
		return slices.Clone(u.history)
	}
	return nil
}

// Parents returns the units that name is PartOf= or BindsTo=, from its own
// edges and from the other units' ConsistsOf=/BoundBy=, sorted by name;
// BindsTo= wins when a unit is both.
func (g *Graph) Parents(name string) []Edge {
	rel := map[string]Relation{}
	add := func(parent string, r Relation) {
		if parent != name && rel[parent] != BindsTo {
			rel[parent] = r
		}
	}
	if u, ok := g.units[name]; ok {
		for _, p := range u.deps.PartOf {
			add(p, PartOf)
		}
		for _, p := range u.deps.BindsTo {
			add(p, BindsTo)
		}
	}
	for parent, u := range g.units {
		if slices.Contains(u.deps.ConsistsOf, name) {
			add(parent, PartOf)
		}
		if slices.Contains(u.deps.BoundBy, name) {
			add(parent, BindsTo)
		}
	}
	edges := make([]Edge, 0, len(rel))
	for p, r := range rel {
		edges = append(edges, Edge{Parent: p, Relation: r})
	}
	slices.SortFunc(edges, func(a, b Edge) int { return strings.Compare(a.Parent, b.Parent) })
	return edges
}
