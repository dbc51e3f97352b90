package tracker

import (
	"strings"
	"unsafe"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// verdictStore keeps the latest verdicts for /explain in a ring, without
// their summaries: Verdicts composes them again from what each verdict
// cites. A thousand summaries held were 0.4 MB of heap, scattered among
// the churn's garbage. For the same reason the ring copies each verdict's
// strings and cited evidence into blocks it shares between verdicts: left
// where the events' JSON decoded them, a thousand verdicts' few thousand
// small strings each kept a span of a churn's garbage in use, about a
// megabyte of heap that no collection gave back.
type verdictStore struct {
	items []attribution.Verdict
	next  int // where the next verdict goes once the ring is full
	max   int
	text  []byte              // the block strings are copied into
	cited []attribution.Cited // the block evidence is copied into
}

const (
	textBlock  = 16 << 10 // bytes: the strings of about forty verdicts
	citedBlock = 64       // pieces of evidence
)

func (s *verdictStore) add(v attribution.Verdict) {
	v.Summary = ""
	s.compact(&v)
	if len(s.items) < s.max {
		if s.items == nil {
			// At its size from the first: grown by append, the full ring
			// was a third larger, and left its smaller copies behind.
			s.items = make([]attribution.Verdict, 0, s.max)
		}
		s.items = append(s.items, v)
		return
	}
	s.items[s.next] = v
	s.next = (s.next + 1) % s.max
}

// compact points v's strings and evidence at copies in the store's
// blocks. A block is written only past what it has handed out, and is
// freed once the ring has overwritten every verdict that points into it.
func (s *verdictStore) compact(v *attribution.Verdict) {
	id := v.Exit.ContainerID
	v.Exit.ContainerID = s.copyString(id)
	v.Exit.Name = s.copyString(v.Exit.Name)
	v.Exit.Image = s.copyString(v.Exit.Image)
	if len(v.Evidence) == 0 {
		return
	}
	if len(v.Evidence) > cap(s.cited)-len(s.cited) {
		s.cited = make([]attribution.Cited, 0, max(citedBlock, len(v.Evidence)))
	}
	from := len(s.cited)
	for _, c := range v.Evidence {
		e := &c.Evidence
		if e.Container == id {
			e.Container = v.Exit.ContainerID
		} else {
			e.Container = s.copyString(e.Container)
		}
		for _, f := range []*string{&e.Source, &e.Constraint, &e.Sender, &e.Unit, &e.PartOf, &e.Comm, &e.SenderContainer, &e.Detail} {
			*f = s.copyString(*f)
		}
		s.cited = append(s.cited, c)
	}
	v.Evidence = s.cited[from:len(s.cited):len(s.cited)]
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

// newestFirst calls f on every verdict from the newest; f returns false
// to stop.
func (s *verdictStore) newestFirst(f func(v *attribution.Verdict) bool) {
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
	t.mu.Lock()
	out := make([]attribution.Verdict, 0)
	t.verdicts.newestFirst(func(v *attribution.Verdict) bool {
		if filter == "" || v.Exit.Name == filter || (len(filter) >= 4 && strings.HasPrefix(v.Exit.ContainerID, filter)) {
			out = append(out, *v)
		}
		return true
	})
	t.mu.Unlock()
	for i := range out {
		out[i].Summary = attribution.Decide(out[i].Exit, out[i].CitedEvidence(), t.cfg.Window).Summary
	}
	return out
}
