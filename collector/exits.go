package collector

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/exit137-exporter/exit137-exporter/internal/shrink"
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
	names     map[exitNameKey]*exitNameLabels
	namesPeak shrink.Peak
	scrape    uint64
}

type exitNameKey struct{ name, image string }

// exitNameLabels are the label pairs of one (name, image): the name, image
// and Kubernetes pairs, built once. A series' pairs are composed at each
// scrape, with the exit_code, signal and cause pairs every name shares
// (their values are few), as a window of one array per scrape: kept per
// series between scrapes, they were the largest thing the exporter held
// (six series a live name, its five pre-created SIGKILL ones among them;
// 0.9 of 1.1 kB a name).
type exitNameLabels struct {
	name, image, namespace, pod, container *dto.LabelPair
	scrape                                 uint64
}

// exitPairs is the number of label pairs of a name's exit series.
const exitPairs = 8

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
	// Sized once, so that the windows handed out stay valid.
	pairs := make([]*dto.LabelPair, 0, len(byName)*exitPairs)
	for _, s := range byName {
		start := len(pairs)
		pairs = c.appendLabels(pairs, s)
		b.send(ch, containerExitsDesc, prometheus.CounterValue, float64(s.Count), pairs[start:len(pairs):len(pairs)])
	}
	c.namesPeak.See(len(c.names))
	for k, n := range c.names {
		if n.scrape != c.scrape {
			delete(c.names, k)
		}
	}
	c.names = shrink.Map(c.names, &c.namesPeak)
	for _, s := range host {
		ch <- prometheus.MustNewConstMetric(hostExitsDesc, prometheus.CounterValue, float64(s.Count),
			exitCodeLabel(s.ExitCode), s.Signal, string(s.Cause))
	}
	return nil
}

// appendLabels appends the series' label pairs, sorted by name: cause,
// container, exit_code, image, name, namespace, pod, signal.
func (c *exitsCollector) appendLabels(pairs []*dto.LabelPair, s tracker.ExitSeries) []*dto.LabelPair {
	k := exitNameKey{s.Name, s.Image}
	n := c.names[k]
	if n == nil || *n.pod.Value != s.Pod { // a name's pod is known once its container was seen
		n = &exitNameLabels{name: labelPair("name", validUTF8(s.Name)), image: labelPair("image", validUTF8(s.Image)),
			namespace: sharedPair("namespace", s.Namespace), pod: ownPair("pod", s.Pod),
			container: ownPair("container", s.Container)}
		c.names[k] = n
	}
	n.scrape = c.scrape
	return append(pairs, sharedPair("cause", string(s.Cause)), n.container, sharedPair("exit_code", exitCodeLabel(s.ExitCode)),
		n.image, n.name, n.namespace, n.pod, sharedPair("signal", s.Signal))
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
