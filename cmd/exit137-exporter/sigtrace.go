package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/alecthomas/kingpin/v2"

	"github.com/exit137-exporter/exit137-exporter/collector"
	"github.com/exit137-exporter/exit137-exporter/source/sigtrace"
)

var (
	sigtraceEnable = kingpin.Flag("sigtrace.enable",
		"Trace who sends every SIGKILL (tracefs signal:signal_generate, in a trace instance of its own).").
		Default("true").Bool()
	tracefsPath = kingpin.Flag("tracefs.path", "Where tracefs is mounted (default: <path.sysfs>/kernel/tracing); the exporter mounts it there when it is not.").
			String()
)

// startSigtrace traces who sends every SIGKILL; stopped is done once it
// has removed its trace instance.
func startSigtrace(ctx context.Context, deps *collector.Deps, stopped *sync.WaitGroup, logger *slog.Logger) {
	if !*sigtraceEnable {
		return
	}
	tracefs := *tracefsPath
	if tracefs == "" {
		tracefs = filepath.Join(*sysfsPath, "kernel", "tracing")
	}
	deps.Sigtrace = sigtrace.New(sigtrace.Options{Tracefs: tracefs, Proc: deps.ProcRoot, ContainerByPID: deps.Tracker.ContainerOfInit},
		deps.Tracker, deps.Sources.Source(sigtrace.SourceName), logger)
	stopped.Add(1)
	go func() {
		defer stopped.Done()
		_ = deps.Sigtrace.Run(ctx) // Run logs why it cannot trace
	}()
}
