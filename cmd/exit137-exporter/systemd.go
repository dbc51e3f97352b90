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

func init() {
	sourceStarters = append(sourceStarters, func(ctx context.Context, deps *collector.Deps, logger *slog.Logger) error {
		if *systemdBus == "none" {
			return nil
		}
		src := systemd.New(systemd.Options{Bus: *systemdBus, ProcRoot: deps.ProcRoot, Retention: deps.Tracker.Retention()}, deps.Tracker, deps.Tracker,
			deps.Sources.Source(systemd.SourceName), logger)
		deps.Systemd = src
		go src.Run(ctx)
		return nil
	})
}
