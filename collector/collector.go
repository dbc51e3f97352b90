// Package collector turns the exporter's state into Prometheus metrics,
// one small file per collector, in the manner of node_exporter: each
// collector registers a factory and a --collector.<name> flag, and the
// Exit137 collector runs the enabled ones in parallel on every scrape and
// reports exit137_scrape_collector_{duration_seconds,success} for each.
package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Namespace is the prefix of every metric.
const Namespace = "exit137"

// Collector is one group of metrics.
type Collector interface {
	// Update sends the collector's metrics to ch.
	Update(ch chan<- prometheus.Metric) error
}

// ErrNoData tells the scrape that a collector had nothing to report; it is
// logged at debug level and does not count as a failure.
var ErrNoData = errors.New("collector returned no data")

// Factory builds a collector from the exporter's parts.
type Factory func(deps Deps) (Collector, error)

var (
	factories      = map[string]Factory{}
	collectorState = map[string]*bool{}
)

func registerCollector(name string, enabledByDefault bool, factory Factory) {
	def := "disabled"
	if enabledByDefault {
		def = "enabled"
	}
	flag := kingpin.Flag("collector."+name, fmt.Sprintf("Enable the %s collector (default: %s).", name, def)).
		Default(fmt.Sprint(enabledByDefault)).Bool()
	collectorState[name] = flag
	factories[name] = factory
}

var (
	scrapeDurationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "scrape", "collector_duration_seconds"),
		"How long a collector took to collect.",
		[]string{"collector"}, nil)
	scrapeSuccessDesc = prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "scrape", "collector_success"),
		"Whether a collector succeeded.",
		[]string{"collector"}, nil)
)

// Exit137 is the prometheus.Collector that runs every enabled collector.
type Exit137 struct {
	collectors map[string]Collector
	ids        *identities
	logger     *slog.Logger
}

// New builds every collector enabled by its flag.
func New(deps Deps) (*Exit137, error) {
	names := make([]string, 0, len(factories))
	for name, enabled := range collectorState {
		if *enabled {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	deps.identities = &identities{}
	collectors := make(map[string]Collector, len(names))
	for _, name := range names {
		c, err := factories[name](deps)
		if err != nil {
			return nil, fmt.Errorf("collector %s: %w", name, err)
		}
		collectors[name] = c
	}
	return &Exit137{collectors: collectors, ids: deps.identities, logger: deps.Logger}, nil
}

// Names lists the enabled collectors.
func (e *Exit137) Names() []string {
	names := make([]string, 0, len(e.collectors))
	for name := range e.collectors {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Describe is empty: the collectors' metrics are dynamic, which makes
// Exit137 an unchecked collector.
func (e *Exit137) Describe(ch chan<- *prometheus.Desc) {}

// Collect runs every collector in parallel.
func (e *Exit137) Collect(ch chan<- prometheus.Metric) {
	scrape := e.ids.begin()
	defer e.ids.sweep(scrape)
	var wg sync.WaitGroup
	wg.Add(len(e.collectors))
	for name, c := range e.collectors {
		go func(name string, c Collector) {
			defer wg.Done()
			e.execute(name, c, ch)
		}(name, c)
	}
	wg.Wait()
}

func (e *Exit137) execute(name string, c Collector, ch chan<- prometheus.Metric) {
	begin := time.Now()
	err := c.Update(ch)
	duration := time.Since(begin)
	success := 1.0
	switch {
	case errors.Is(err, ErrNoData):
		e.logger.Debug("collector returned no data", "name", name, "duration_seconds", duration.Seconds(), "err", err)
	case err != nil:
		e.logger.Error("collector failed", "name", name, "duration_seconds", duration.Seconds(), "err", err)
		success = 0
	}
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, duration.Seconds(), name)
	ch <- prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, name)
}

// desc builds a metric description under the exit137 namespace.
func desc(name, help string, labels ...string) *prometheus.Desc {
	fq := prometheus.BuildFQName(Namespace, "", name)
	d := prometheus.NewDesc(fq, help, labels, nil)
	descInfos.Store(d, descInfo{name: fq, help: help})
	return d
}

// descInfo is what a Desc does not tell: its name and help, for the
// families the metrics handler writes itself.
type descInfo struct{ name, help string }

// descInfos holds the descInfo of every desc built by desc.
var descInfos sync.Map // *prometheus.Desc → descInfo
