package collector

import (
	"log/slog"

	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/source/disk"
	"github.com/exit137-exporter/exit137-exporter/source/kmsg"
)

// Deps are the parts of the exporter that collectors read. A nil part
// means its source is off; its collector then reports nothing.
type Deps struct {
	Logger  *slog.Logger
	Sources *source.Registry
	Kmsg    *kmsg.Source
	Disk    *disk.Source
}
