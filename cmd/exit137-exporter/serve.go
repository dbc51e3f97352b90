package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/collector"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/source/disk"
	"github.com/exit137-exporter/exit137-exporter/source/docker"
	"github.com/exit137-exporter/exit137-exporter/source/kmsg"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// defaultGOGC is the GC target unless GOGC is set. The exporter's live
// heap is small (about 7 MB with 1,000 containers known) next to what
// Go's default of 100 lets it grow to between collections; at 25 the
// heap stays within a quarter of it: RSS with 1,000 generated containers
// known and scraped 31-32 MB at 100, 27-28 at 50, 26 at 25, the scrape
// no slower (docs/performance.md).
const defaultGOGC = 25

func setGCDefault(logger *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(defaultGOGC)
	logger.Debug("GC target set (GOGC unset)", "gogc", defaultGOGC)
}

// serveConfig holds the serve command's flags.
type serveConfig struct {
	web                       *web.FlagConfig
	metricsPath               *string
	disableExpMets, dockerOff *bool
	maxRequests               *int
	dockerHost, cgroupRoot    *string
	kmsgPath                  *string
	diskPaths                 *[]string
	diskThreshold             *float64
	settle, window, retention *time.Duration
	statePath                 *string
	logConfig                 *promslog.Config
}

func serve(cfg serveConfig, logger *slog.Logger) error {
	logger.Info("starting "+exporterName, "version", version.Info(), "build_context", version.BuildContext())
	setGCDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sources := source.NewRegistry()
	diskSource := disk.New(*cfg.diskPaths, *cfg.diskThreshold, sources.Source("disk"), logger)
	diskSource.SetRoot(*rootfsPath)
	kubeAPI := &kubernetesAPI{}
	t := tracker.New(tracker.Config{Settle: *cfg.settle, Window: *cfg.window, Retention: *cfg.retention},
		logger, diskSource.Pressure, kubeAPI.probe)
	deps := collector.Deps{Logger: logger, Sources: sources, Tracker: t, Disk: diskSource, ProcRoot: *procfsPath}
	since := loadState(t, *cfg.statePath, logger)

	cgroupHealth := sources.Source("cgroupfs")
	cgroupRoot := *cfg.cgroupRoot
	if cgroupRoot == "" {
		cgroupRoot = filepath.Join(*sysfsPath, "fs", "cgroup")
	}
	if fs, err := cgroupfs.NewFS(cgroupRoot); err != nil {
		cgroupHealth.SetUp(false, logger, err)
		logger.Error("no memory cgroups: memory metrics are off", "root", cgroupRoot, "err", err)
	} else {
		logger.Info("cgroup filesystem", "root", cgroupRoot, "mode", fs.Mode())
		cgroupHealth.SetUp(true, logger, nil)
		deps.Cgroups = &fs
	}

	diskSource.Usage()     // sets the disk source's health before the first scrape
	go diskSource.Run(ctx) // statfs off the scrape and the death: a hung mount holds up neither
	followDocker, followContainerd := runtimes(*cfg.dockerHost, *cfg.dockerOff)
	if followDocker {
		src, err := docker.New(docker.Options{
			Host:       *cfg.dockerHost,
			OOMKills:   oomKillReader(deps.Cgroups, *procfsPath),
			OnDataRoot: diskSource.AddPath,
		}, t, sources.Source("docker"), logger)
		if err != nil {
			return err
		}
		deps.Docker = src
		go src.Run(ctx)
	}
	if followContainerd {
		if err := startContainerd(ctx, &deps, t, logger); err != nil {
			return err
		}
	}
	if err := kubeAPI.start(ctx, t, sources, logger); err != nil {
		return err
	}
	if *cfg.kmsgPath != "" {
		deps.Kmsg = kmsg.New(kmsg.Options{Path: *cfg.kmsgPath, Since: since, ContainerByPID: func(pid int) (string, bool) {
			if id, ok := kmsg.ContainerOfPID(*procfsPath, pid); ok {
				return id, true
			}
			return t.ContainerOfInit(pid)
		}}, t, sources.Source("kmsg"), logger)
		go deps.Kmsg.Run(ctx)
	}

	startSystemd(ctx, &deps, logger)
	// sigtrace removes its trace instance when it stops: serve waits for
	// it after the server has shut down.
	var sourcesStopped sync.WaitGroup
	startSigtrace(ctx, &deps, &sourcesStopped, logger)

	metrics, err := collector.Handler(deps, !*cfg.disableExpMets, *cfg.maxRequests)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(*cfg.metricsPath, metrics)
	mux.Handle("/explain", explainHandler(t))
	addPprof(mux)
	if *cfg.metricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        exporterName,
			Description: "Why containers die with exit code 137: memory vs limit, every exit, and the cause of every SIGKILL",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: *cfg.metricsPath, Text: "Metrics"},
				{Address: "/explain", Text: "Recent verdicts with their evidence (JSON; ?container=NAME_OR_ID)"},
			},
		})
		if err != nil {
			return err
		}
		mux.Handle("/", landing)
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	go releaseFreeMemory(ctx, logger)
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		keepState(ctx, t, *cfg.statePath, logger)
	}()
	err = web.ListenAndServe(server, cfg.web, logger)
	stop() // a server that failed ends the sources too
	sourcesStopped.Wait()
	<-saved
	if err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// loadState restores the exit ledger saved by an earlier run, and returns
// the time to replay the kernel log from (zero: from now on). A missing,
// corrupt or foreign file is a fresh start, said in the log.
func loadState(t *tracker.Tracker, path string, logger *slog.Logger) time.Time {
	if path == "" {
		logger.Info("no --state.path: exits that happen while the exporter is down will not be counted")
		return time.Time{}
	}
	switch err := t.LoadState(path); {
	case errors.Is(err, tracker.ErrNoState):
		logger.Info("no saved state yet; counting exits from now on", "path", path)
	case err != nil:
		logger.Error("saved state unusable; counting exits from now on (it will be overwritten)", "path", path, "err", err)
	default:
		logger.Info("resuming from saved state: exits since then are replayed and counted once", "path", path, "since", t.Cursor())
		return t.Cursor()
	}
	return time.Time{}
}

// stateInterval is how often the ledger is saved when it changed (the
// cursor moves with every event); it is saved soon after an exit is
// counted, so that an exporter killed without warning does not count it
// again: at once, or minSaveGap after the last save. Each save encodes
// the whole ledger and syncs the file; a save per count cost 65 % of the
// exporter's CPU under 1,000 container lifecycles a minute.
const (
	stateInterval = time.Second
	minSaveGap    = 250 * time.Millisecond
)

// keepState saves the ledger after every count and every stateInterval
// until ctx ends, then decides every exit still settling and saves a last
// time.
func keepState(ctx context.Context, t *tracker.Tracker, path string, logger *slog.Logger) {
	lastErr := ""
	var lastSave time.Time
	save := func() {
		lastSave = time.Now()
		if path == "" {
			return
		}
		err := t.SaveState(path)
		switch {
		case err != nil && err.Error() != lastErr:
			logger.Error("cannot save state; an exporter restart may lose or recount exits", "path", path, "err", err)
		case err == nil && lastErr != "":
			logger.Info("saving state again", "path", path)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
	}
	tick := time.NewTicker(stateInterval)
	defer tick.Stop()
	var soon <-chan time.Time // armed while a count waits out minSaveGap
	for {
		select {
		case <-tick.C:
			save()
		case <-t.Counted():
			if wait := minSaveGap - time.Since(lastSave); wait > 0 {
				if soon == nil {
					soon = time.After(wait)
				}
				continue
			}
			save()
		case <-soon:
			soon = nil
			save()
		case <-ctx.Done():
			t.Flush()
			save()
			return
		}
	}
}

// oomKillReader lets the Docker source read a container's cgroup oom_kill
// counter at its start, OOM and death, before the cgroup is removed. The
// cgroup is found where Docker puts it or, for a custom cgroup parent,
// from the init's pid at the start, and kept: at the death the init is
// reaped and its pid says nothing any more. procRoot is the host's /proc.
func oomKillReader(fs *cgroupfs.FS, procRoot string) func(id string, pid int) (uint64, bool) {
	if fs == nil {
		return nil
	}
	var mu sync.Mutex
	paths := map[string]string{}
	return func(id string, pid int) (uint64, bool) {
		mu.Lock()
		path, ok := paths[id]
		mu.Unlock()
		if !ok {
			var err error
			if path, err = fs.ContainerPathFor(procRoot, id, pid); err != nil {
				return 0, false
			}
		}
		kills, found, err := fs.OOMKills(path)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || !found {
			delete(paths, id) // the cgroup is gone with the container
			return 0, false
		}
		paths[id] = path
		return kills, true
	}
}

// explainResponse is the JSON body of /explain.
type explainResponse struct {
	Verdicts []attribution.Verdict `json:"verdicts"`
}

// explainHandler serves the recent verdicts, newest first:
// ?container=NAME_OR_ID filters, ?limit=N bounds (default 100).
func explainHandler(t *tracker.Tracker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := 100
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				http.Error(w, fmt.Sprintf("bad limit %q: want a positive number", s), http.StatusBadRequest)
				return
			}
			limit = n
		}
		verdicts := t.Verdicts(r.URL.Query().Get("container"))
		if len(verdicts) > limit {
			verdicts = verdicts[:limit]
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(explainResponse{Verdicts: verdicts})
	})
}
