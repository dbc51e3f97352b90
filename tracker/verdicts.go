package tracker

import (
	"strings"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// verdictStore keeps the latest verdicts for /explain in a ring, without
// their summaries: Verdicts composes them again from what each verdict
// cites. A thousand summaries held were 0.4 MB of heap, scattered among
// the churn's garbage.
type verdictStore struct {
	items []attribution.Verdict
	next  int // where the next verdict goes once the ring is full
	max   int
}

func (s *verdictStore) add(v attribution.Verdict) {
	v.Summary = ""
	if len(s.items) < s.max {
		s.items = append(s.items, v)
		return
	}
	s.items[s.next] = v
	s.next = (s.next + 1) % s.max
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
