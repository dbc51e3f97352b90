// Package tracker is the exporter's memory: the containers Docker knows,
// every exit counted exactly once, the evidence the sources saw, and the
// verdicts the attribution engine gave. Sources write to it as events
// arrive; collectors and /explain read snapshots of it, so a scrape never
// calls Docker.
package tracker

import (
	"log/slog"
	"sync"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// Meta is what Docker tells about a container; the tracker keeps the last
// known copy of it.
type Meta struct {
	ID             string // 64 hex
	Name           string // without the leading slash
	Image          string
	ComposeProject string
	ComposeService string
	SystemdUnit    string
	Pid            int
}

// Config sets the tracker's time rules.
type Config struct {
	// Settle is how long after a death the verdict waits for late evidence.
	Settle time.Duration
	// Window is how far before a death evidence may lie.
	Window time.Duration
	// Retention keeps a removed container name's exit series this long.
	Retention time.Duration
	// MaxVerdicts bounds the verdicts kept for /explain.
	MaxVerdicts int
}

// DeathProbe samples host-wide conditions at a death (disk pressure); its
// evidence joins the container's.
type DeathProbe func(at time.Time) []attribution.Evidence

// Tracker is safe for concurrent use.
type Tracker struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time
	// after schedules the verdict after the settle delay; tests replace it
	// to decide at once.
	after  func(d time.Duration, f func())
	probes []DeathProbe
	start  time.Time

	mu         sync.Mutex
	containers map[string]*container
	exits      exitCounts
	evidence   evidenceLog
	verdicts   verdictLog
	pending    sync.WaitGroup
}

// container is the tracker's record of one container id.
type container struct {
	Meta
	running bool
	removed bool
	// A run is known by its start: exitCounted says the exit of the run
	// that started at countedStart was counted (or taken as the baseline);
	// runStart is the latest start seen. Together they make counting
	// idempotent across event replays and reconciles. Not the exit time:
	// Docker's StartedAt can lie after FinishedAt for a process that exits
	// at once.
	exitCounted            bool
	runStart, countedStart time.Time
	// lastExitTime is the time of the latest exit, for the last-exit gauges.
	lastExitTime time.Time
	lastExit     *attribution.Exit
	lastCause    attribution.Cause
	// oomKills is the last cgroup oom_kill count seen, at oomKillsSeen.
	oomKills     uint64
	oomKillsSeen time.Time
}

// New returns an empty tracker; start is the exporter's start time, before
// which no exit counts as new.
func New(cfg Config, logger *slog.Logger, probes ...DeathProbe) *Tracker {
	if cfg.MaxVerdicts <= 0 {
		cfg.MaxVerdicts = 1000
	}
	t := &Tracker{
		cfg:        cfg,
		logger:     logger,
		now:        time.Now,
		after:      func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		probes:     probes,
		containers: map[string]*container{},
		exits:      newExitCounts(),
		verdicts:   verdictLog{max: cfg.MaxVerdicts},
	}
	t.start = t.now()
	return t
}

// record returns the container with id, creating it. Callers hold mu.
func (t *Tracker) record(id string) *container {
	c, ok := t.containers[id]
	if !ok {
		c = &container{Meta: Meta{ID: id}}
		t.containers[id] = c
	}
	return c
}

// Upsert stores what Docker says about a container.
func (t *Tracker) Upsert(m Meta) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.record(m.ID)
	if m.Name == "" {
		m.Name = c.Name
	}
	if m.Image == "" {
		m.Image = c.Image
	}
	if c.Name != "" && c.Name != m.Name {
		t.exits.release(c.Name, t.now())
	}
	c.Meta = m
	c.removed = false
	t.exits.hold(m.Name, m.Image)
}

// Started records that a run of the container began at at. A start no
// newer than the run whose exit was counted is a replay and changes
// nothing.
func (t *Tracker) Started(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.record(id)
	if c.exitCounted && !at.After(c.countedStart) {
		return
	}
	c.running = true
	c.exitCounted = false
	c.runStart = at
}

// Baseline records an exit that happened before the exporter looked (of
// the run started at startedAt): it sets the last-exit gauges but is not
// counted.
func (t *Tracker) Baseline(exit attribution.Exit, startedAt time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.record(exit.ContainerID)
	c.running = false
	c.exitCounted = true
	c.countedStart = startedAt
	c.lastExitTime = exit.Time
	c.lastExit = &exit
}

// Exited reports a death. startedAt is the start of the run that ended
// when the reporter knows it (a reconcile from inspect), zero when it does
// not (a die event). It returns whether the exit is new; a new exit is
// decided and counted after the settle delay.
func (t *Tracker) Exited(exit attribution.Exit, startedAt time.Time) bool {
	t.mu.Lock()
	c, known := t.containers[exit.ContainerID]
	run := startedAt
	if run.IsZero() && known {
		run = c.runStart // a die event ends the latest run we saw start
	}
	switch {
	case !known && exit.Time.Before(t.start):
		// A container we never saw, dead before we started: history.
		t.mu.Unlock()
		return false
	case known && c.exitCounted && !run.After(c.countedStart):
		t.mu.Unlock()
		t.logger.Debug("exit already counted", "id", shortID(exit.ContainerID), "at", exit.Time, "run_started", run)
		return false
	}
	c = t.record(exit.ContainerID)
	if exit.Name == "" {
		exit.Name = c.Name
	}
	if exit.Image == "" {
		exit.Image = c.Image
	}
	c.running = false
	c.exitCounted = true
	c.countedStart = run
	if exit.Time.After(c.lastExitTime) {
		c.lastExitTime = exit.Time
	}
	t.exits.hold(exit.Name, exit.Image)
	t.mu.Unlock()

	// Host conditions are sampled now; that says something about the death
	// only when it is recent, not for an exit found on a late reconcile.
	var probed []attribution.Evidence
	if t.now().Sub(exit.Time) <= t.cfg.Window {
		for _, probe := range t.probes {
			probed = append(probed, probe(exit.Time)...)
		}
	}
	// Settle counts from the death, not from when we heard of it: a die
	// event that arrives late has already given late evidence its time.
	wait := max(t.cfg.Settle-t.now().Sub(exit.Time), 0)
	t.pending.Add(1)
	t.after(wait, func() {
		defer t.pending.Done()
		t.decide(exit, probed)
	})
	return true
}

// Removed records that Docker destroyed the container: its last-exit
// series go, and its name's exit counters start their retention.
func (t *Tracker) Removed(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.containers[id]
	if !ok {
		return
	}
	c.removed = true
	t.exits.release(c.Name, t.now())
	delete(t.containers, id)
}

// Forget drops containers that Docker no longer lists, after a reconcile:
// anything not in present was removed while we were not watching.
func (t *Tracker) Forget(present map[string]bool) {
	t.mu.Lock()
	ids := make([]string, 0)
	for id := range t.containers {
		if !present[id] {
			ids = append(ids, id)
		}
	}
	t.mu.Unlock()
	for _, id := range ids {
		t.Removed(id)
	}
}

// Wait blocks until every pending verdict is decided; for tests and
// shutdown.
func (t *Tracker) Wait() { t.pending.Wait() }

// Known reports whether id is a container the tracker holds.
func (t *Tracker) Known(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.containers[id]
	return ok
}
