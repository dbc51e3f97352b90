// Package disk watches the filesystems whose exhaustion can take a
// container down: Docker's data root, its log path and configured paths.
// It measures them with statfs(2) in the background, each call bounded by
// a timeout, so that a hung mount never holds up a scrape or the counting
// of a death; the scrape and the death probe read the last samples.
package disk

import (
	"context"
	"errors"
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

// Usage is one path's filesystem, as last measured.
type Usage struct {
	Path string
	// UsedRatio is used / (used + available to unprivileged users), as df
	// computes Use%.
	UsedRatio float64
	// InodesUsedRatio is used inodes / all inodes; 0 on filesystems
	// without a fixed inode count (btrfs reports 0 files).
	InodesUsedRatio float64
	// Err is set when statfs failed or is stuck; the ratios are then 0.
	Err error
	// Stuck says statfs has not returned within the timeout (a hung NFS or
	// FUSE mount); it is not called again for the path until it returns.
	Stuck bool
	// At is when the sample was taken.
	At time.Time
}

const (
	// Timeout is how long a statfs may take before its path is stuck.
	Timeout = time.Second
	// Interval is how often Run samples every path; a sample older than
	// twice this is stale and Usage measures again.
	Interval = 2 * time.Second
)

// ErrStuck is the error of a path whose statfs does not return.
var ErrStuck = errors.New("statfs did not return")

// statfs is unix.Statfs; tests replace it.
var statfs = unix.Statfs

// Source measures the watched paths with statfs, off the hot path: Run
// samples them in the background, each statfs bounded by Timeout; Usage
// and Pressure (on the scrape and at each death) read the last samples,
// and measure only what is stale (without Run: the explain command,
// tests), never waiting longer than Timeout.
type Source struct {
	threshold float64
	health    *source.Health
	logger    *slog.Logger
	// timeout and interval are Timeout and Interval; tests shorten them.
	timeout, interval time.Duration
	kick              chan struct{}

	// root is where the host's root filesystem is (--path.rootfs); paths
	// are the host's and measured under it.
	root string

	mu      sync.Mutex
	paths   []string
	watches map[string]*watch
}

// watch is one path's last sample and its statfs in flight.
type watch struct {
	last Usage
	// done is non-nil while a statfs runs, closed when it returns; started
	// is when it began.
	done    chan struct{}
	started time.Time
	// lastErr is the last error counted and logged, "" when fine.
	lastErr string
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
	s := &Source{threshold: threshold, health: health, logger: logger, timeout: Timeout, interval: Interval,
		kick: make(chan struct{}, 1), watches: map[string]*watch{}}
	for _, p := range paths {
		s.AddPath(p)
	}
	return s
}

// AddPath watches one more path (Docker's data root, once the Docker
// source knows it). Paths are cleaned; a path already watched, or empty,
// is ignored. Run samples a new path at once. Safe for concurrent use.
func (s *Source) AddPath(p string) {
	if p == "" {
		return
	}
	p = filepath.Clean(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.paths, p) {
		s.paths = append(s.paths, p)
		s.watches[p] = &watch{}
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// SetRoot measures every path under root, the host's root filesystem as
// a containerised exporter sees it ("/" or "" on the host); the paths and
// their labels stay the host's. Call it before Run.
func (s *Source) SetRoot(root string) {
	if root == "/" {
		root = ""
	}
	s.root = root
}

// Paths lists the watched paths, in the order they were added.
func (s *Source) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.paths)
}

// Threshold is the used ratio at or above which a path is under pressure.
func (s *Source) Threshold() float64 { return s.threshold }

// Run samples every watched path each Interval, and a new path at once,
// until ctx ends.
func (s *Source) Run(ctx context.Context) {
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		s.Measure()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.kick:
		}
	}
}

// Usage returns every watched path's last sample, measuring the paths
// whose sample is stale (older than twice Interval, or none) first, for
// at most Timeout. A path whose statfs failed or is stuck has Err set.
func (s *Source) Usage() []Usage {
	now := time.Now()
	s.mu.Lock()
	var stale []string
	for _, p := range s.paths {
		if w := s.watches[p]; w.last.At.IsZero() || now.Sub(w.last.At) > 2*s.interval {
			stale = append(stale, p)
		}
	}
	s.mu.Unlock()
	if len(stale) > 0 {
		s.measure(stale)
	}
	return s.samples()
}

// samples returns the last samples, in the order of Paths.
func (s *Source) samples() []Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	usage := make([]Usage, len(s.paths))
	for i, p := range s.paths {
		usage[i] = s.watches[p].last
		usage[i].Path = p
	}
	return usage
}

// Measure samples every watched path now, waiting at most Timeout, and
// returns the samples.
func (s *Source) Measure() []Usage {
	s.measure(s.Paths())
	return s.samples()
}

// measure starts a statfs for each path that has none in flight, waits
// for them until the timeout, marks the paths whose statfs is still
// running stuck, and updates the source's health.
func (s *Source) measure(paths []string) {
	now := time.Now()
	dones := make([]chan struct{}, 0, len(paths))
	s.mu.Lock()
	for _, p := range paths {
		w := s.watches[p]
		if w.done == nil {
			w.done, w.started = make(chan struct{}), now
			go s.statfs(p, w)
		}
		dones = append(dones, w.done)
	}
	s.mu.Unlock()

	deadline := time.NewTimer(s.timeout)
	defer deadline.Stop()
wait:
	for _, done := range dones {
		select {
		case <-done:
		case <-deadline.C:
			break wait
		}
	}

	at := time.Now()
	s.mu.Lock()
	for _, p := range paths {
		if w := s.watches[p]; w.done != nil {
			w.last = Usage{Path: p, Stuck: true, At: at,
				Err: fmt.Errorf("statfs %s: %w for %s", p, ErrStuck, at.Sub(w.started).Round(time.Millisecond))}
		}
	}
	s.mu.Unlock()
	s.account()
}

// statfs measures one path and stores the sample; a stuck call stores it
// whenever it returns.
func (s *Source) statfs(p string, w *watch) {
	u := measure(filepath.Join(s.root, p))
	u.Path = p
	s.mu.Lock()
	defer s.mu.Unlock()
	u.At = time.Now()
	w.last = u
	close(w.done)
	w.done = nil
}

// account counts and logs each path's change of error, and sets the
// source's health: up while at least one path can be measured.
func (s *Source) account() {
	type change struct {
		path string
		err  error
	}
	var (
		changes  []change
		anyOK    bool
		firstErr error
	)
	s.mu.Lock()
	for _, p := range s.paths {
		w := s.watches[p]
		if w.last.At.IsZero() {
			continue // not measured yet
		}
		msg := ""
		if w.last.Err != nil {
			msg = w.last.Err.Error()
			if firstErr == nil {
				firstErr = w.last.Err
			}
		} else {
			anyOK = true
		}
		// A stuck path's message carries its duration: compare the kind.
		if w.last.Stuck {
			msg = "stuck"
		}
		if w.lastErr != msg {
			changes = append(changes, change{p, w.last.Err})
			w.lastErr = msg
		}
	}
	none := len(s.paths) == 0
	s.mu.Unlock()

	for _, c := range changes {
		switch {
		case c.err == nil:
			s.logger.Info("watched path measurable again", "evidence_source", s.health.Name(), "path", c.path)
		case errors.Is(c.err, ErrStuck):
			s.health.Error(s.logger, "statfs of a watched path does not return (a hung NFS or FUSE mount?); "+
				"it is marked stuck and not measured again until it returns", c.err)
		default:
			s.health.Error(s.logger, "cannot measure watched path", c.err)
		}
	}
	switch {
	case anyOK:
		s.health.SetUp(true, s.logger, nil)
	case firstErr != nil:
		s.health.SetUp(false, s.logger, firstErr)
	case none:
		s.health.SetUp(false, s.logger, fmt.Errorf("no path to watch"))
	}
}

func measure(path string) Usage {
	u := Usage{Path: path}
	var st unix.Statfs_t
	if err := statfs(path, &st); err != nil {
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
// threshold, from the last samples (Usage).
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
