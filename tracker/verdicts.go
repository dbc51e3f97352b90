package tracker

import (
	"strconv"
	"strings"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// maxEvidence bounds the evidence kept in memory; old items are pruned
// first, so this only bites under a flood.
const maxEvidence = 50000

type evidenceLog struct{ items []attribution.Evidence }

func (l *evidenceLog) add(e attribution.Evidence, oldest time.Time) {
	if len(l.items) >= maxEvidence/2 {
		l.prune(oldest)
	}
	if len(l.items) >= maxEvidence {
		l.items = append(l.items[:0], l.items[1:]...)
	}
	l.items = append(l.items, e)
}

func (l *evidenceLog) prune(oldest time.Time) {
	kept := l.items[:0]
	for _, e := range l.items {
		if !e.Time.Before(oldest) {
			kept = append(kept, e)
		}
	}
	l.items = kept
}

// around returns the evidence for id (or host-wide) stamped in [from, to].
func (l *evidenceLog) around(id string, from, to time.Time) []attribution.Evidence {
	var out []attribution.Evidence
	for _, e := range l.items {
		if (e.Container == id || e.Container == "") && !e.Time.Before(from) && !e.Time.After(to) {
			out = append(out, e)
		}
	}
	return out
}

type verdictLog struct {
	max   int
	items []attribution.Verdict // oldest first
}

func (l *verdictLog) add(v attribution.Verdict) {
	if len(l.items) >= l.max {
		l.items = append(l.items[:0], l.items[1:]...)
	}
	l.items = append(l.items, v)
}

// AddEvidence stores one piece of evidence; it implements source.Sink.
func (t *Tracker) AddEvidence(e attribution.Evidence) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evidence.add(e, t.now().Add(-t.cfg.Window-t.cfg.Settle-attribution.ClockSkew))
}

// ObserveOOMKills records the cgroup oom_kill counter of a container. A
// rise becomes evidence stamped at the previous observation: the earliest
// the kill can have happened, so an old kill is never taken for a recent
// one.
func (t *Tracker) ObserveOOMKills(id string, count uint64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.containers[id]
	if !ok {
		return
	}
	prev, seen := c.oomKills, c.oomKillsSeen
	c.oomKills, c.oomKillsSeen = count, at
	if seen.IsZero() || count <= prev {
		return
	}
	t.evidence.add(attribution.Evidence{
		Container: id, Time: seen, Source: "cgroupfs", Kind: attribution.KindCgroupOOMKill,
		Detail: "cgroup oom_kill counter rose from " + strconv.FormatUint(prev, 10) + " to " + strconv.FormatUint(count, 10) +
			" between " + seen.UTC().Format(stampFormat) + " and " + at.UTC().Format(stampFormat),
	}, at.Add(-t.cfg.Window-t.cfg.Settle-attribution.ClockSkew))
}

const stampFormat = "15:04:05.000"

func (t *Tracker) decide(exit attribution.Exit, probed []attribution.Evidence) {
	t.mu.Lock()
	ev := t.evidence.around(exit.ContainerID, exit.Time.Add(-t.cfg.Window), exit.Time.Add(attribution.ClockSkew))
	t.mu.Unlock()
	ev = append(ev, probed...)
	v := attribution.Decide(exit, ev, t.cfg.Window)

	t.mu.Lock()
	t.exits.count(exit.Name, exit.Image, ExitKey{ExitCode: exit.ExitCode, Signal: v.Signal, Cause: v.Cause})
	if c, ok := t.containers[exit.ContainerID]; ok && !exit.Time.Before(c.lastExitTime) {
		c.lastExit, c.lastCause = &exit, v.Cause
	}
	t.verdicts.add(v)
	t.mu.Unlock()
	t.logger.Info("container exit", "name", exit.Name, "id", shortID(exit.ContainerID), "exit_code", exit.ExitCode,
		"signal", v.Signal, "cause", v.Cause, "summary", v.Summary)
}

// Verdicts returns the recent verdicts, newest first; a non-empty filter
// keeps those whose container name or id (or id prefix) matches it.
func (t *Tracker) Verdicts(filter string) []attribution.Verdict {
	filter = strings.TrimPrefix(filter, "/")
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]attribution.Verdict, 0)
	for i := len(t.verdicts.items) - 1; i >= 0; i-- {
		v := t.verdicts.items[i]
		if filter == "" || v.Exit.Name == filter || (len(filter) >= 4 && strings.HasPrefix(v.Exit.ContainerID, filter)) {
			out = append(out, v)
		}
	}
	return out
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
