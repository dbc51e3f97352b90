// Package cgroupfs reads container memory accounting straight from the
// cgroup filesystem, cgroup v1 (legacy and hybrid hosts) and v2.
//
// It is modelled on github.com/prometheus/procfs: an [FS] rooted at a path
// (the host's /sys/fs/cgroup, a host tree mounted into the exporter's
// container such as /host/sys/fs/cgroup, or a fixture tree in testdata),
// small typed results, and pure parsers that can be tested on literal
// strings.
//
// Error semantics, so that a collector can decide per container:
//   - a cgroup directory that is gone (the container exited mid-scrape)
//     gives an error matching errors.Is(err, ErrNotExist): skip it;
//   - an optional file or line that older kernels lack (v2 memory.peak,
//     the v1 oom_kill line) gives a nil field, not an error;
//   - a required file missing while the directory exists gives an error
//     matching ErrMissingFile (and not ErrNotExist);
//   - permission problems match fs.ErrPermission and say so;
//   - malformed content gives an *Error naming the file and the line.
package cgroupfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/cgroups/v3"
)

// DefaultMountPoint is where the cgroup filesystem is mounted on a host.
const DefaultMountPoint = "/sys/fs/cgroup"

// ErrNotExist is matched (errors.Is) by the errors for a container whose
// cgroup directory does not exist, for instance because it exited between
// the listing and the read. It is fs.ErrNotExist.
var ErrNotExist = fs.ErrNotExist

// Mode is the cgroup layout of a host.
type Mode int

// The zero Mode is not a valid layout.
const (
	// ModeUnified is cgroup v2 only: one hierarchy at the root.
	ModeUnified Mode = iota + 1
	// ModeHybrid is v1 controllers (memory at root/memory) plus a v2
	// hierarchy without controllers at root/unified, as systemd sets up.
	ModeHybrid
	// ModeLegacy is cgroup v1 only.
	ModeLegacy
)

// String gives "v2", "hybrid" or "v1".
func (m Mode) String() string {
	switch m {
	case ModeUnified:
		return "v2"
	case ModeHybrid:
		return "hybrid"
	case ModeLegacy:
		return "v1"
	}
	return "unknown"
}

// V2 reports whether memory accounting uses the cgroup v2 interface.
func (m Mode) V2() bool { return m == ModeUnified }

// FS is a cgroup filesystem rooted at a path. The zero FS is not usable;
// use NewFS.
type FS struct {
	root    string
	memRoot string
	mode    Mode
}

// NewFS opens the cgroup filesystem at root and detects its mode.
//
// For the host's own DefaultMountPoint the mode comes from containerd's
// cgroups.Mode(), which checks the filesystem magic of the mounts. Any
// other root (a fixture tree, or the host's tree bind-mounted at
// /host/sys/fs/cgroup where statfs would be fine too but is not needed)
// is detected from its layout: root/cgroup.controllers means v2;
// otherwise root/memory means v1, hybrid when root/unified exists too.
// A root with no memory hierarchy is an error.
func NewFS(root string) (FS, error) {
	root = filepath.Clean(root)
	if root == "" || root == "." {
		return FS{}, errors.New("cgroupfs: empty root path")
	}
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	var mode Mode
	if root == DefaultMountPoint {
		switch cgroups.Mode() {
		case cgroups.Unified:
			mode = ModeUnified
		case cgroups.Hybrid:
			mode = ModeHybrid
		case cgroups.Legacy:
			mode = ModeLegacy
		default:
			return FS{}, errors.New("cgroupfs: no cgroup filesystem mounted at " + root)
		}
	} else {
		var err error
		if mode, err = detectMode(root); err != nil {
			return FS{}, err
		}
	}
	f := FS{root: root, mode: mode, memRoot: root}
	if mode != ModeUnified {
		f.memRoot = filepath.Join(root, "memory")
	}
	if err := f.checkMemory(); err != nil {
		return FS{}, err
	}
	return f, nil
}

func detectMode(root string) (Mode, error) {
	st, err := os.Stat(root)
	if err != nil {
		return 0, &Error{File: root, Err: unwrapPathError(err)}
	}
	if !st.IsDir() {
		return 0, errors.New("cgroupfs: " + root + " is not a directory")
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return ModeUnified, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, &Error{File: filepath.Join(root, "cgroup.controllers"), Err: unwrapPathError(err)}
	}
	if st, err := os.Stat(filepath.Join(root, "memory")); err != nil || !st.IsDir() {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, &Error{File: filepath.Join(root, "memory"), Err: unwrapPathError(err)}
		}
		return 0, errors.New("cgroupfs: no memory cgroup hierarchy under " + root +
			": neither cgroup.controllers (v2) nor a memory directory (v1)")
	}
	if st, err := os.Stat(filepath.Join(root, "unified")); err == nil && st.IsDir() {
		return ModeHybrid, nil
	}
	return ModeLegacy, nil
}

// checkMemory makes sure the memory controller is there: the memory
// directory on v1, "memory" in the root's cgroup.controllers on v2.
func (f FS) checkMemory() error {
	if f.mode != ModeUnified {
		st, err := os.Stat(f.memRoot)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errors.New("cgroupfs: " + f.mode.String() + " cgroup hierarchy at " + f.root +
					" has no memory controller (no " + f.memRoot + ")")
			}
			return &Error{File: f.memRoot, Err: unwrapPathError(err)}
		}
		if !st.IsDir() {
			return errors.New("cgroupfs: " + f.memRoot + " is not a directory")
		}
		return nil
	}
	p := filepath.Join(f.root, "cgroup.controllers")
	data, err := os.ReadFile(p)
	if err != nil {
		return &Error{File: p, Err: unwrapPathError(err)}
	}
	for _, c := range bytes.Fields(data) {
		if string(c) == "memory" {
			return nil
		}
	}
	return errors.New("cgroupfs: cgroup v2 hierarchy at " + f.root +
		" has no memory controller (cgroup.controllers: " + string(bytes.TrimSpace(data)) + ")")
}

// Mode is the layout detected by NewFS.
func (f FS) Mode() Mode { return f.mode }

// Root is the path NewFS was given, made absolute.
func (f FS) Root() string { return f.root }

// MemoryRoot is the absolute path of the memory hierarchy: root/memory on
// v1 and hybrid hosts, root itself on v2. Container paths are relative to
// it.
func (f FS) MemoryRoot() string { return f.memRoot }

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
