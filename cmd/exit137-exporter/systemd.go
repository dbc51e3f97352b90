package main

import (
	"context"
	"log/slog"

	"github.com/alecthomas/kingpin/v2"

	"github.com/exit137-exporter/exit137-exporter/collector"
	"github.com/exit137-exporter/exit137-exporter/source/systemd"
)

var systemdBus = kingpin.Flag("systemd.bus",
	"D-Bus to follow the systemd manager on, for PartOf=/BindsTo= stops: system, user (DBUS_SESSION_BUS_ADDRESS), or none.").
	Default(systemd.SystemBus).Enum(systemd.SystemBus, systemd.UserBus, "none")

// startSystemd follows the systemd manager for PartOf=/BindsTo= stops.
func startSystemd(ctx context.Context, deps *collector.Deps, logger *slog.Logger) {
	if *systemdBus == "none" {
		return
	}
	src := systemd.New(systemd.Options{Bus: *systemdBus, ProcRoot: deps.ProcRoot, Retention: deps.Tracker.Retention()}, deps.Tracker, deps.Tracker,
		deps.Sources.Source(systemd.SourceName), logger)
	deps.Systemd = src
	go src.Run(ctx)
}
