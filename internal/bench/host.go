package bench

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/collector"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/source/disk"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// Tree is a generated cgroup tree of N Docker containers.
type Tree struct {
	FS cgroupfs.FS
	// IDs and Containers are sorted by id; container i is ContainerName(i).
	IDs        []string
	Containers []cgroupfs.Container
	// Floor is the files a scrape reads, for ReadFloor.
	Floor []string
}

// NewTree generates a tree of n containers under dir (see
// cgroupfs.GenerateTree).
func NewTree(dir string, mode cgroupfs.Mode, n int) (*Tree, error) {
	ids, err := cgroupfs.GenerateTree(dir, mode, n)
	if err != nil {
		return nil, err
	}
	fs, err := cgroupfs.NewFS(dir)
	if err != nil {
		return nil, err
	}
	cs, err := fs.DockerContainers()
	if err != nil {
		return nil, err
	}
	return &Tree{FS: fs, IDs: ids, Containers: cs, Floor: FloorPaths(fs, cs)}, nil
}

// ContainerName is the name the benchmarks give container i.
func ContainerName(i int) string { return fmt.Sprintf("bench-%05d", i) }

// Host is a generated container host in-process: a tree, a tracker that
// knows each container by name, and the /metrics handler over both.
type Host struct {
	*Tree
	Tracker *tracker.Tracker
	Handler http.Handler
	// Registry is the first pass's /metrics over the same parts: every
	// series gathered by the registry, then encoded by promhttp; for
	// paired runs against Handler.
	Registry http.Handler
}

// NewHost generates a tree of n containers under dir and the exporter's
// parts over it.
func NewHost(dir string, mode cgroupfs.Mode, n int) (*Host, error) {
	tree, err := NewTree(dir, mode, n)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.DiscardHandler)
	t := tracker.New(tracker.Config{Settle: 2 * time.Second, Window: 30 * time.Second, Retention: time.Hour}, logger)
	Seed(t, tree.IDs, time.Now())
	sources := source.NewRegistry()
	deps := collector.Deps{
		Logger: logger, Sources: sources, Tracker: t, Cgroups: &tree.FS,
		Disk: disk.New([]string{dir}, 0.95, sources.Source("disk"), logger),
	}
	handler, err := MetricsHandler(deps)
	if err != nil {
		return nil, err
	}
	registry, err := RegistryHandler(deps, true)
	if err != nil {
		return nil, err
	}
	return &Host{Tree: tree, Tracker: t, Handler: handler, Registry: registry}, nil
}

// Seed makes the tracker know every id as a running container with a
// name and compose labels, as the Docker source would; every tenth was
// restarted after an earlier exit, so it has last-exit series too.
func Seed(t *tracker.Tracker, ids []string, now time.Time) {
	for i, id := range ids {
		t.Upsert(tracker.Meta{ID: id, Name: ContainerName(i), Image: "registry.example/bench:1.0",
			ComposeProject: "bench", ComposeService: fmt.Sprintf("svc%d", i%20), Pid: 1000 + i})
		if i%10 == 0 {
			t.Observe(id, tracker.RunState{StartedAt: now.Add(-2 * time.Hour), FinishedAt: now.Add(-time.Hour), ExitCode: 137})
		}
		t.Observe(id, tracker.RunState{Running: true, StartedAt: now.Add(-time.Minute), Pid: 1000 + i})
	}
}

var parseFlags sync.Once

// MetricsHandler builds /metrics as cmd/exit137-exporter does: every
// collector on by default, the version, Go and process collectors, and
// promhttp with the same options.
func MetricsHandler(deps collector.Deps) (http.Handler, error) {
	// The --collector.<name> flags only take their defaults on a parse.
	parseFlags.Do(func() { _, _ = kingpin.CommandLine.Parse(nil) })
	return collector.Handler(deps, true, 40)
}

// RegistryHandler is /metrics as the first pass served it, for
// comparison: the same collectors registered on a registry, gathered and
// encoded by promhttp.
func RegistryHandler(deps collector.Deps, exporterMetrics bool) (http.Handler, error) {
	parseFlags.Do(func() { _, _ = kingpin.CommandLine.Parse(nil) })
	exit137, err := collector.New(deps)
	if err != nil {
		return nil, err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(versioncollector.NewCollector(collector.Namespace), exit137)
	if exporterMetrics {
		registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return promhttp.HandlerFor(registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 40}), nil
}
