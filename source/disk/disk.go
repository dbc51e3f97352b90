// Package disk watches the filesystems whose exhaustion can take a
// container down: Docker's data root, its log path and configured paths.
// It measures them with statfs(2) when asked — on each scrape and at each
// container death — and keeps no state beyond the list of paths.
package disk

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// SourceName is the evidence's Source.
const SourceName = "disk"

// DefaultThreshold is the used ratio at which a filesystem is under
// pressure when New is given no usable threshold.
const DefaultThreshold = 0.95

// Usage is one path's filesystem, measured now.
type Usage struct {
	Path string
	// UsedRatio is used / (used + available to unprivileged users), as df
	// computes Use%.
	UsedRatio float64
	// InodesUsedRatio is used inodes / all inodes; 0 on filesystems
	// without a fixed inode count (btrfs reports 0 files).
	InodesUsedRatio float64
	// Err is set when statfs failed; the ratios are then 0.
	Err error
}

// Source measures the watched paths with statfs.
type Source struct {
	threshold float64
	health    *source.Health
	logger    *slog.Logger

	mu      sync.Mutex
	paths   []string
	lastErr map[string]string // path → last statfs error, "" when fine
}

// New watches paths. threshold is a ratio (0.95); a value above 1 is
// taken as a percentage (95), and a value ≤ 0 means DefaultThreshold.
func New(paths []string, threshold float64, health *source.Health, logger *slog.Logger) *Source {
	switch {
	case threshold <= 0:
		threshold = DefaultThreshold
	case threshold > 1:
		threshold /= 100
	}
	if health == nil {
		health = new(source.Health)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{threshold: threshold, health: health, logger: logger, lastErr: map[string]string{}}
	for _, p := range paths {
		s.AddPath(p)
	}
	return s
}

// AddPath watches one more path (Docker's data root, once the Docker
// source knows it). Paths are cleaned; a path already watched, or empty,
// is ignored. Safe for concurrent use.
func (s *Source) AddPath(p string) {
	if p == "" {
		return
	}
	p = filepath.Clean(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.paths, p) {
		s.paths = append(s.paths, p)
	}
}

// Paths lists the watched paths, in the order they were added.
func (s *Source) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.paths)
}

// Threshold is the used ratio at or above which a path is under pressure.
func (s *Source) Threshold() float64 { return s.threshold }

// Usage measures every watched path now. A path whose statfs fails is
// returned with Err set (and counted as a source error when its error
// changes); the source is up while at least one path can be measured.
func (s *Source) Usage() []Usage {
	paths := s.Paths()
	usage := make([]Usage, len(paths))
	var (
		anyOK    bool
		firstErr error
	)
	for i, p := range paths {
		usage[i] = measure(p)
		if usage[i].Err == nil {
			anyOK = true
		} else if firstErr == nil {
			firstErr = usage[i].Err
		}
	}

	s.mu.Lock()
	var newErrs []error
	for _, u := range usage {
		msg := ""
		if u.Err != nil {
			msg = u.Err.Error()
		}
		if s.lastErr[u.Path] != msg {
			if msg != "" {
				newErrs = append(newErrs, u.Err)
			} else {
				s.logger.Info("watched path measurable again", "evidence_source", s.health.Name(), "path", u.Path)
			}
			s.lastErr[u.Path] = msg
		}
	}
	s.mu.Unlock()

	for _, err := range newErrs {
		s.health.Error(s.logger, "cannot measure watched path", err)
	}
	switch {
	case anyOK:
		s.health.SetUp(true, s.logger, nil)
	case firstErr != nil:
		s.health.SetUp(false, s.logger, firstErr)
	default:
		s.health.SetUp(false, s.logger, fmt.Errorf("no path to watch"))
	}
	return usage
}

func measure(path string) Usage {
	u := Usage{Path: path}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		u.Err = fmt.Errorf("statfs %s: %w", path, err)
		return u
	}
	// df: used = blocks - bfree; Use% = used / (used + bavail), which
	// leaves out the blocks reserved for root.
	if st.Bfree <= st.Blocks {
		used := float64(st.Blocks - st.Bfree)
		if total := used + float64(st.Bavail); total > 0 {
			u.UsedRatio = used / total
		}
	}
	if st.Files > 0 && st.Ffree <= st.Files {
		u.InodesUsedRatio = float64(st.Files-st.Ffree) / float64(st.Files)
	}
	return u
}

// Pressure returns one host-wide KindDiskPressure evidence, stamped now,
// for each watched path whose space or inodes are used at or above the
// threshold.
func (s *Source) Pressure(now time.Time) []attribution.Evidence {
	var ev []attribution.Evidence
	for _, u := range s.Usage() {
		if u.Err != nil {
			continue
		}
		space := u.UsedRatio >= s.threshold
		inodes := u.InodesUsedRatio >= s.threshold
		if !space && !inodes {
			continue
		}
		d := u.Path
		switch {
		case space && inodes:
			d += " " + percent(u.UsedRatio) + " used, inodes " + percent(u.InodesUsedRatio) + " used"
		case space:
			d += " " + percent(u.UsedRatio) + " used"
		default:
			d += " inodes " + percent(u.InodesUsedRatio) + " used"
		}
		d += " (threshold " + strconv.FormatFloat(s.threshold*100, 'g', 4, 64) + "%)"
		ev = append(ev, attribution.Evidence{
			Time:   now,
			Source: SourceName,
			Kind:   attribution.KindDiskPressure,
			Detail: d,
		})
		s.health.Event()
	}
	return ev
}

func percent(r float64) string { return strconv.FormatFloat(r*100, 'f', 1, 64) + "%" }
