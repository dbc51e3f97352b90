// Package shrink gives back the table of a map that emptied out. A Go map
// keeps the table of the most entries it ever held until the map itself
// is dropped, so a map that peaked with a wave of containers (a churn,
// a burst) would hold that table for good.
package shrink

// minPeak is the peak under which a map's table is not worth a copy.
const minPeak = 256

// Peak is the most entries a map held since its last copy, as its owner
// saw it (See before a sweep deletes, Map after).
type Peak int

// See records that the map holds n entries.
func (p *Peak) See(n int) {
	if Peak(n) > *p {
		*p = Peak(n)
	}
}

// Map returns m, or, when it holds under a quarter of its peak (of at
// least minPeak entries), a copy of it sized to what it holds.
func Map[M ~map[K]V, K comparable, V any](m M, peak *Peak) M {
	n := len(m)
	peak.See(n)
	if *peak < minPeak || Peak(n) >= *peak/4 {
		return m
	}
	out := make(M, n)
	for k, v := range m {
		out[k] = v
	}
	*peak = Peak(n)
	return out
}
