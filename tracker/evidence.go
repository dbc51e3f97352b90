package tracker

import (
	"strconv"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// maxEvidence bounds the evidence kept in memory; old items are pruned
// first, so this only bites under a flood.
const maxEvidence = 50000

// evidenceIndex keeps evidence by container, by victim pid (a kill whose
// container could not be read in time) and host-wide, so that a verdict
// reads only its own container's items, not the whole log.
type evidenceIndex struct {
	byContainer map[string][]attribution.Evidence
	byPid       map[int][]attribution.Evidence
	host        []attribution.Evidence
	n           int
}

func newEvidenceIndex() evidenceIndex {
	return evidenceIndex{byContainer: map[string][]attribution.Evidence{}, byPid: map[int][]attribution.Evidence{}}
}

// add stores e unless the same observation is already there (an event
// replayed after a reconnect); items older than oldest are pruned.
func (x *evidenceIndex) add(e attribution.Evidence, oldest time.Time) {
	if x.n >= maxEvidence {
		x.prune(oldest)
	}
	switch {
	case e.Container != "":
		x.byContainer[e.Container] = x.appendTo(x.byContainer[e.Container], e, oldest)
	case e.Pid != 0:
		x.byPid[e.Pid] = x.appendTo(x.byPid[e.Pid], e, oldest)
	default:
		x.host = x.appendTo(x.host, e, oldest)
	}
}

func (x *evidenceIndex) appendTo(list []attribution.Evidence, e attribution.Evidence, oldest time.Time) []attribution.Evidence {
	for i := range list {
		if sameObservation(&list[i], &e) {
			return list
		}
	}
	// Items arrive roughly in time order: the head holds the oldest.
	dropped := 0
	for dropped < len(list) && list[dropped].Reach().Before(oldest) {
		dropped++
	}
	if dropped == 0 && x.n >= maxEvidence && len(list) > 0 {
		dropped = 1 // a flood of recent items: the list's oldest goes
	}
	x.n += 1 - dropped
	return append(list[dropped:], e)
}

func sameObservation(a, b *attribution.Evidence) bool {
	return a.Kind == b.Kind && a.Time.Equal(b.Time) && a.Source == b.Source && a.Signal == b.Signal && a.Pid == b.Pid
}

// prune drops every item older than oldest.
func (x *evidenceIndex) prune(oldest time.Time) {
	keep := func(list []attribution.Evidence) []attribution.Evidence {
		kept := list[:0]
		for _, e := range list {
			if !e.Reach().Before(oldest) {
				kept = append(kept, e)
			}
		}
		x.n -= len(list) - len(kept)
		return kept
	}
	for id, list := range x.byContainer {
		if list = keep(list); len(list) == 0 {
			delete(x.byContainer, id)
		} else {
			x.byContainer[id] = list
		}
	}
	for pid, list := range x.byPid {
		if list = keep(list); len(list) == 0 {
			delete(x.byPid, pid)
		} else {
			x.byPid[pid] = list
		}
	}
	x.host = keep(x.host)
}

// around returns the evidence about container id, about the process pid
// (when not 0) and host-wide, stamped in [from, to].
func (x *evidenceIndex) around(id string, pid int, from, to time.Time) []attribution.Evidence {
	var byPid []attribution.Evidence
	if pid != 0 {
		byPid = x.byPid[pid]
	}
	out := make([]attribution.Evidence, 0, len(x.byContainer[id])+len(byPid)+len(x.host))
	pick := func(list []attribution.Evidence) {
		for _, e := range list {
			if !e.Reach().Before(from) && !e.Time.After(to) {
				out = append(out, e)
			}
		}
	}
	pick(x.byContainer[id])
	pick(byPid)
	pick(x.host)
	return out
}

// AddEvidence stores one piece of evidence; it implements source.Sink.
func (t *Tracker) AddEvidence(e attribution.Evidence) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.evidence.add(e, t.oldestEvidence(now))
	t.sweep(now, false)
}

// oldestEvidence is the earliest stamp a verdict still pending can use.
// Just after a start from saved state, exits that happened while the
// exporter was down are still to be decided, from evidence as old as
// that (the kernel log is replayed from there).
func (t *Tracker) oldestEvidence(now time.Time) time.Time {
	oldest := now.Add(-t.cfg.Window - t.cfg.Settle - attribution.ClockSkew)
	if now.Sub(t.start) < catchUp && t.ledger.horizon.Add(-t.cfg.Window).Before(oldest) {
		return t.ledger.horizon.Add(-t.cfg.Window)
	}
	return oldest
}

// catchUp is how long after its start the tracker keeps the evidence of
// the time it was down.
const catchUp = 2 * time.Minute

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
	}, t.oldestEvidence(at))
}

const stampFormat = "15:04:05.000"
