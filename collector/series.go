package collector

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series is a metric whose label pairs are built once per container and
// shared by all its metrics and scrapes, where MustNewConstMetric builds
// them for every metric of every scrape (about 10 of a metric's 15
// allocations). client_golang treats label pairs as immutable, so sharing
// is safe.
type series struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	vtype  prometheus.ValueType
	value  float64
}

func (s *series) Desc() *prometheus.Desc { return s.desc }

func (s *series) Write(m *dto.Metric) error {
	m.Label = s.labels
	if s.vtype == prometheus.CounterValue {
		m.Counter = &dto.Counter{Value: &s.value}
	} else {
		m.Gauge = &dto.Gauge{Value: &s.value}
	}
	return nil
}

// seriesBatch sends a container's metrics from one allocation.
type seriesBatch []series

func (b *seriesBatch) send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels []*dto.LabelPair) {
	*b = append(*b, series{desc: d, labels: labels, vtype: t, value: v})
	ch <- &(*b)[len(*b)-1]
}

// labelCache keeps label pairs between scrapes, by key; the pairs of a
// key that a scrape did not use are dropped at its end. Hold mu from
// begin to end.
type labelCache[K comparable] struct {
	mu      sync.Mutex
	entries map[K]*labelEntry
	scrape  uint64
}

type labelEntry struct {
	values []string
	pairs  []*dto.LabelPair
	scrape uint64
}

func (c *labelCache[K]) begin() {
	c.mu.Lock()
	c.scrape++
	if c.entries == nil {
		c.entries = map[K]*labelEntry{}
	}
}

func (c *labelCache[K]) end() {
	for k, e := range c.entries {
		if e.scrape != c.scrape {
			delete(c.entries, k)
		}
	}
	c.mu.Unlock()
}

// get returns the label pairs of names=values for key, building them when
// the key is new or its values changed (a rename).
func (c *labelCache[K]) get(key K, names []string, values ...string) []*dto.LabelPair {
	e := c.entries[key]
	if e == nil || !slices.Equal(e.values, values) {
		e = &labelEntry{values: slices.Clone(values)}
		for i, v := range e.values {
			e.values[i] = validUTF8(v)
		}
		e.pairs = make([]*dto.LabelPair, len(names))
		backing := make([]dto.LabelPair, len(names))
		for i := range names {
			backing[i].Name, backing[i].Value = &names[i], &e.values[i]
			e.pairs[i] = &backing[i]
		}
		sort.Slice(e.pairs, func(i, j int) bool { return *e.pairs[i].Name < *e.pairs[j].Name })
		c.entries[key] = e
	}
	e.scrape = c.scrape
	return e.pairs
}

// validUTF8 replaces what is not UTF-8 in a label value: the registry
// dropped such a series with an error; the handler that writes the
// families itself would send it as it is, and Prometheus would refuse the
// whole scrape.
func validUTF8(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	return strings.ToValidUTF8(v, "\uFFFD")
}
