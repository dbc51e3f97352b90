package collector

import (
	"log/slog"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/source/disk"
	"github.com/exit137-exporter/exit137-exporter/source/docker"
	"github.com/exit137-exporter/exit137-exporter/source/kmsg"
	"github.com/exit137-exporter/exit137-exporter/source/sigtrace"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// Deps are the parts of the exporter that collectors read. A nil part
// means its source is off; its collector then reports nothing.
type Deps struct {
	Logger  *slog.Logger
	Sources *source.Registry
	Tracker *tracker.Tracker
	// Cgroups is nil when no memory cgroup hierarchy could be found.
	Cgroups *cgroupfs.FS
	Kmsg    *kmsg.Source
	// Docker is nil when the Docker source is off (--docker.disable).
	Docker *docker.Source
	Disk   *disk.Source
	// Systemd is nil when the systemd source is off (--systemd.bus=none).
	Systemd PartOfStops

	// Sigtrace is nil when SIGKILL tracing is off (--no-sigtrace.enable).
	Sigtrace *sigtrace.Source

	// ProcRoot is where the host's /proc is (--path.procfs); "" is /proc.
	ProcRoot string

	// identities are the containers' label pairs the collectors share;
	// New makes them.
	identities *identities
}
