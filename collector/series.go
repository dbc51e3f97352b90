package collector

import (
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/tracker"
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

// containerLabelNames are the labels of every container series: namespace,
// pod and container name a kubelet's container (empty elsewhere, as
// cAdvisor has them).
var containerLabelNames = [...]string{"id", "name", "image", "namespace", "pod", "container"}

var containerLabels = containerLabelNames[:]

// identityValues are a container's values of containerLabels, in order.
type identityValues [len(containerLabelNames)]string

func identityOf(id string, v tracker.View) identityValues {
	return identityValues{cgroupfs.ShortID(id), v.Name, v.Image, v.Namespace, v.Pod, v.Container}
}

// identity is the label pairs of one container's identity, made once and
// shared by every collector that labels the container's series (memory,
// container_info, last exit, last kill): each kept a copy of its own
// before, the largest thing held between scrapes.
type identity struct {
	values identityValues
	pairs  [len(containerLabelNames)]dto.LabelPair // in containerLabels order
	sorted [len(containerLabelNames)]*dto.LabelPair
	scrape uint64
}

// identities holds each container's identity between scrapes.
type identities struct {
	mu     sync.Mutex
	byID   map[string]*identity
	scrape uint64
}

// get returns the identity of the container id with these values, made
// anew when the container is new or its values changed (a rename).
func (s *identities) get(id string, values identityValues) *identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byID[id]
	if e == nil || e.values != values {
		e = &identity{values: values}
		for i := range e.values {
			e.values[i] = validUTF8(e.values[i])
			e.pairs[i].Name, e.pairs[i].Value = &containerLabelNames[i], &e.values[i]
			e.sorted[i] = &e.pairs[i]
		}
		sortPairs(e.sorted[:])
		if s.byID == nil {
			s.byID = map[string]*identity{}
		}
		s.byID[id] = e
	}
	e.scrape = s.scrape
	return e
}

// begin starts a scrape and returns its number, for sweep.
func (s *identities) begin() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scrape++
	return s.scrape
}

// sweep forgets the containers no collector asked for since scrape began
// (those a scrape that began later asked for stay).
func (s *identities) sweep(scrape uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.byID {
		if e.scrape < scrape {
			delete(s.byID, id)
		}
	}
}

// labelCache keeps, between scrapes and by container, the label pairs of
// a series that has labels besides the container's identity: the
// identity's pairs and pairs of its own, sorted by name.
type labelCache struct {
	mu      sync.Mutex
	entries map[string]*labelEntry
	scrape  uint64
}

type labelEntry struct {
	identity *identity
	values   []string
	pairs    []*dto.LabelPair
	scrape   uint64
}

func (c *labelCache) begin() {
	c.mu.Lock()
	c.scrape++
	if c.entries == nil {
		c.entries = map[string]*labelEntry{}
	}
}

func (c *labelCache) end() {
	for k, e := range c.entries {
		if e.scrape != c.scrape {
			delete(c.entries, k)
		}
	}
	c.mu.Unlock()
}

// get returns the pairs of id's identity and names=values, building them
// when the container is new or a value changed.
func (c *labelCache) get(id string, ident *identity, names []string, values ...string) []*dto.LabelPair {
	e := c.entries[id]
	if e == nil || e.identity != ident || !slices.Equal(e.values, values) {
		e = &labelEntry{identity: ident, values: slices.Clone(values)}
		own := make([]dto.LabelPair, len(names))
		e.pairs = make([]*dto.LabelPair, 0, len(ident.sorted)+len(names))
		e.pairs = append(e.pairs, ident.sorted[:]...)
		for i := range names {
			e.values[i] = validUTF8(e.values[i])
			own[i].Name, own[i].Value = &names[i], &e.values[i]
			e.pairs = append(e.pairs, &own[i])
		}
		sortPairs(e.pairs)
		c.entries[id] = e
	}
	e.scrape = c.scrape
	return e.pairs
}

func sortPairs(pairs []*dto.LabelPair) {
	slices.SortFunc(pairs, func(a, b *dto.LabelPair) int { return strings.Compare(*a.Name, *b.Name) })
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
