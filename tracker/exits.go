package tracker

import (
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// ExitKey is the label set of an exit counter besides the container.
type ExitKey struct {
	ExitCode int
	Signal   string
	Cause    attribution.Cause
}

type nameKey struct{ name, image string }

// exitCounts holds exit counters keyed by container name, so that counts
// survive re-creation, and the host totals, which are never dropped.
type exitCounts struct {
	byName map[nameKey]map[ExitKey]uint64
	// released is when the last container of a name went away; the name's
	// series are dropped Retention after it.
	released map[string]time.Time
	host     map[ExitKey]uint64
}

// killCauses are the causes a SIGKILL can get; their 137 series are
// created at zero so that increase() sees a container's first kill.
var killCauses = []attribution.Cause{
	attribution.CauseOOM, attribution.CauseSystemdPartOf, attribution.CauseManual,
	attribution.CauseDisk, attribution.CauseUnknown,
}

func newExitCounts() exitCounts {
	e := exitCounts{
		byName:   map[nameKey]map[ExitKey]uint64{},
		released: map[string]time.Time{},
		host:     map[ExitKey]uint64{},
	}
	preinitKills(e.host)
	return e
}

func preinitKills(m map[ExitKey]uint64) {
	for _, cause := range killCauses {
		m[ExitKey{ExitCode: 137, Signal: "SIGKILL", Cause: cause}] += 0
	}
}

// hold makes sure a live container's series exist.
func (e *exitCounts) hold(name, image string) {
	if name == "" {
		return
	}
	delete(e.released, name)
	k := nameKey{name, image}
	if _, ok := e.byName[k]; !ok {
		e.byName[k] = map[ExitKey]uint64{}
		preinitKills(e.byName[k])
	}
}

// release starts a name's retention.
func (e *exitCounts) release(name string, now time.Time) {
	if name != "" {
		e.released[name] = now
	}
}

func (e *exitCounts) count(name, image string, k ExitKey) {
	e.host[k]++
	if name == "" {
		return
	}
	e.hold(name, image)
	e.byName[nameKey{name, image}][k]++
}

// expire drops the series of names that have had no container for longer
// than retention.
func (e *exitCounts) expire(live map[string]bool, now time.Time, retention time.Duration) {
	for k := range e.byName {
		if live[k.name] {
			continue
		}
		at, ok := e.released[k.name]
		if !ok {
			e.released[k.name] = now
			continue
		}
		if now.Sub(at) > retention {
			delete(e.byName, k)
		}
	}
	for name := range e.released {
		if live[name] {
			delete(e.released, name)
		}
	}
}

// ExitSeries is one exit counter.
type ExitSeries struct {
	Name, Image string
	ExitKey
	Count uint64
}

// ExitSeries returns the per-name counters (after expiring old names) and
// the host totals, in no order (the registry sorts what it serves).
func (t *Tracker) ExitSeries() (byName, host []ExitSeries) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := make(map[string]bool, len(t.containers))
	for _, c := range t.containers {
		live[c.Name] = true
	}
	t.exits.expire(live, t.now(), t.cfg.Retention)
	byName = make([]ExitSeries, 0, (len(killCauses)+1)*len(t.exits.byName))
	for k, counts := range t.exits.byName {
		for ek, n := range counts {
			byName = append(byName, ExitSeries{Name: k.name, Image: k.image, ExitKey: ek, Count: n})
		}
	}
	for ek, n := range t.exits.host {
		host = append(host, ExitSeries{ExitKey: ek, Count: n})
	}
	return byName, host
}
