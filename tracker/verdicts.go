package tracker

import (
	"strings"
	"unsafe"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// verdictStore keeps the latest verdicts for /explain in a ring, each as
// the exit and the evidence it cites: Verdicts decides them again from
// those (Decide of a verdict's exit and its cited evidence gives the
// verdict again; TestDecide checks every row). A thousand summaries held
// were 0.4 MB of heap, scattered among the churn's garbage; the rest of
// each verdict (cause, rule, signal, each piece's weight) another 0.1 MB.
// For the same reason the ring copies each exit's strings and cited
// evidence into blocks it shares between verdicts: left where the events'
// JSON decoded them, a thousand verdicts' few thousand small strings each
// kept a span of a churn's garbage in use, about a megabyte of heap that
// no collection gave back.
type verdictStore struct {
	items    []keptVerdict
	next     int // where the next verdict goes once the ring is full
	max      int
	text     []byte                 // the block strings are copied into
	evidence []attribution.Evidence // the block evidence is copied into
}

// keptVerdict is what the ring keeps of a verdict.
type keptVerdict struct {
	exit     attribution.Exit
	evidence []attribution.Evidence // as Decide takes it
}

const (
	textBlock     = 16 << 10 // bytes: the strings of about forty verdicts
	evidenceBlock = 64       // pieces of evidence
)

func (s *verdictStore) add(v *attribution.Verdict) {
	k := s.compact(v)
	if len(s.items) < s.max {
		if s.items == nil {
			// At its size from the first: grown by append, the full ring
			// was a third larger, and left its smaller copies behind.
			s.items = make([]keptVerdict, 0, s.max)
		}
		s.items = append(s.items, k)
		return
	}
	s.items[s.next] = k
	s.next = (s.next + 1) % s.max
}

// compact copies v's exit and the evidence it cites, their strings and
// the evidence pointing into the store's blocks. A block is written only
// past what it has handed out, and is freed once the ring has overwritten
// every verdict that points into it.
func (s *verdictStore) compact(v *attribution.Verdict) keptVerdict {
	k := keptVerdict{exit: v.Exit}
	id := v.Exit.ContainerID
	k.exit.ContainerID = s.copyString(id)
	k.exit.Name = s.copyString(k.exit.Name)
	k.exit.Image = s.copyString(k.exit.Image)
	if len(v.Evidence) == 0 {
		return k
	}
	if len(v.Evidence) > cap(s.evidence)-len(s.evidence) {
		s.evidence = make([]attribution.Evidence, 0, max(evidenceBlock, len(v.Evidence)))
	}
	from := len(s.evidence)
	for i := range v.Evidence {
		e := v.Evidence[i].Evidence
		if e.Container == id {
			e.Container = k.exit.ContainerID
		} else {
			e.Container = s.copyString(e.Container)
		}
		for _, f := range []*string{&e.Source, &e.Constraint, &e.Sender, &e.Unit, &e.PartOf, &e.Comm, &e.SenderContainer, &e.Detail} {
			*f = s.copyString(*f)
		}
		s.evidence = append(s.evidence, e)
	}
	k.evidence = s.evidence[from:len(s.evidence):len(s.evidence)]
	return k
}

// copyString returns a copy of str in the text block, starting a new
// block when this one is full.
func (s *verdictStore) copyString(str string) string {
	if str == "" {
		return ""
	}
	if len(str) > cap(s.text)-len(s.text) {
		s.text = make([]byte, 0, max(textBlock, len(str)))
	}
	s.text = append(s.text, str...)
	return unsafe.String(&s.text[len(s.text)-len(str)], len(str))
}

// newestFirst calls f on every verdict kept, from the newest; f returns
// false to stop.
func (s *verdictStore) newestFirst(f func(k *keptVerdict) bool) {
	n := len(s.items)
	for i := range n {
		// next stays 0 until the ring is full, so this holds for both.
		if !f(&s.items[(s.next-1-i+2*n)%n]) {
			return
		}
	}
}

// Verdicts returns the recent verdicts, newest first; a non-empty filter
// keeps those whose container name or id (or id prefix) matches it.
func (t *Tracker) Verdicts(filter string) []attribution.Verdict {
	filter = strings.TrimPrefix(filter, "/")
	var kept []keptVerdict
	t.mu.Lock()
	t.verdicts.newestFirst(func(k *keptVerdict) bool {
		if filter == "" || k.exit.Name == filter || (len(filter) >= 4 && strings.HasPrefix(k.exit.ContainerID, filter)) {
			kept = append(kept, *k)
		}
		return true
	})
	t.mu.Unlock()
	out := make([]attribution.Verdict, len(kept))
	for i := range kept {
		out[i] = attribution.Decide(kept[i].exit, kept[i].evidence, t.cfg.Window)
	}
	return out
}
