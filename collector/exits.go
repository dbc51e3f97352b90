package collector

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/exit137-exporter/exit137-exporter/tracker"
)

var (
	containerExitsDesc = desc("container_exits_total",
		"Container exits by container name, exit code, signal and cause. Series of a removed name stay for --exits.retention.",
		"name", "image", "namespace", "pod", "container", "exit_code", "signal", "cause")
	hostExitsDesc = desc("exits_total", "Container exits on this host by exit code, signal and cause.",
		"exit_code", "signal", "cause")
)

// exitsCollector exposes the exit counters the tracker keeps.
type exitsCollector struct {
	tracker *tracker.Tracker
	mu      sync.Mutex
	// names holds the label pairs of each (name, image) between scrapes;
	// a set the tracker no longer reports is dropped.
	names  map[exitNameKey]*exitNameLabels
	scrape uint64
}

type exitNameKey struct{ name, image string }

// exitNameLabels are the label pairs of one (name, image)'s series: the
// name, image and Kubernetes pairs built once, the other three shared by
// every name (their values are few), so that a series costs one slice of
// eight pointers. Every live name has six series (its five pre-created SIGKILL
// ones among them), which made the label pairs of the exit counters the
// largest thing the exporter holds between scrapes when each series had
// pairs of its own.
type exitNameLabels struct {
	name, image, namespace, pod, container *dto.LabelPair
	// series are few per name (six, mostly): a list, not a map; their
	// pairs are windows of one backing array.
	series  []exitKeyLabels
	backing []*dto.LabelPair
	scrape  uint64
}

type exitKeyLabels struct {
	key   tracker.ExitKey
	pairs []*dto.LabelPair
}

func init() {
	registerCollector("exits", true, func(d Deps) (Collector, error) {
		return &exitsCollector{tracker: d.Tracker, names: map[exitNameKey]*exitNameLabels{}}, nil
	})
}

func (c *exitsCollector) Update(ch chan<- prometheus.Metric) error {
	byName, host := c.tracker.ExitSeries()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scrape++
	b := make(seriesBatch, 0, len(byName))
	for _, s := range byName {
		b.send(ch, containerExitsDesc, prometheus.CounterValue, float64(s.Count), c.labels(s))
	}
	for k, n := range c.names {
		if n.scrape != c.scrape {
			delete(c.names, k)
		}
	}
	for _, s := range host {
		ch <- prometheus.MustNewConstMetric(hostExitsDesc, prometheus.CounterValue, float64(s.Count),
			exitCodeLabel(s.ExitCode), s.Signal, string(s.Cause))
	}
	return nil
}

// labels returns the series' label pairs, sorted by name: cause,
// container, exit_code, image, name, namespace, pod, signal.
func (c *exitsCollector) labels(s tracker.ExitSeries) []*dto.LabelPair {
	k := exitNameKey{s.Name, s.Image}
	n := c.names[k]
	if n == nil || *n.pod.Value != s.Pod { // a name's pod is known once its container was seen
		n = &exitNameLabels{name: labelPair("name", validUTF8(s.Name)), image: labelPair("image", validUTF8(s.Image)),
			namespace: sharedPair("namespace", s.Namespace), pod: ownPair("pod", s.Pod),
			container: ownPair("container", s.Container),
			series:    make([]exitKeyLabels, 0, 6), backing: make([]*dto.LabelPair, 0, 6*8)}
		c.names[k] = n
	}
	n.scrape = c.scrape
	for i := range n.series {
		if n.series[i].key == s.ExitKey {
			return n.series[i].pairs
		}
	}
	start := len(n.backing)
	n.backing = append(n.backing, sharedPair("cause", string(s.Cause)), n.container, sharedPair("exit_code", exitCodeLabel(s.ExitCode)),
		n.image, n.name, n.namespace, n.pod, sharedPair("signal", s.Signal))
	pairs := n.backing[start:len(n.backing):len(n.backing)]
	n.series = append(n.series, exitKeyLabels{s.ExitKey, pairs})
	return pairs
}

// sharedPairs holds one label pair per (label, value) of the labels whose
// values are few: exit codes, signals, causes, namespaces.
var sharedPairs sync.Map // [2]string → *dto.LabelPair

func sharedPair(name, value string) *dto.LabelPair {
	k := [2]string{name, value}
	if p, ok := sharedPairs.Load(k); ok {
		return p.(*dto.LabelPair)
	}
	p, _ := sharedPairs.LoadOrStore(k, labelPair(name, validUTF8(value)))
	return p.(*dto.LabelPair)
}

// ownPair is a pair of its own for value, or the shared one when it is
// empty: a pod and container off Kubernetes.
func ownPair(name, value string) *dto.LabelPair {
	if value == "" {
		return sharedPair(name, "")
	}
	return labelPair(name, validUTF8(value))
}

func labelPair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: &name, Value: &value}
}
