package sigtrace

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	// DefaultTracefs is where tracefs is mounted.
	DefaultTracefs = "/sys/kernel/tracing"
	// InstancePrefix names the exporter's trace instances,
	// <prefix>-<pid>: one per exporter process, so that exporters side by
	// side (a test next to a deployed one) each trace, and what a killed
	// one left is known as such.
	InstancePrefix = "exit137"
	// bufferSizeKB bounds the instance's ring buffer, per CPU.
	bufferSizeKB = "256"
	eventDir     = "events/signal/signal_generate"
	filter       = "sig == 9"
)

// tracefs is the tracing filesystem as an instance needs it. On tracefs,
// mkdir and rmdir of instances/<name> create and destroy a whole trace
// buffer; the tests replace them (and mount) on a plain directory.
type tracefs struct {
	root                         string
	mkdir, rmdir, mount, unmount func(path string) error
	logger                       *slog.Logger
}

// DefaultInstance is this process's trace instance name.
func DefaultInstance() string { return InstancePrefix + "-" + strconv.Itoa(os.Getpid()) }

func realTracefs(root string, logger *slog.Logger) *tracefs {
	return &tracefs{
		root:    root,
		mkdir:   func(p string) error { return os.Mkdir(p, 0o700) },
		rmdir:   func(p string) error { return unix.Rmdir(p) },
		mount:   func(p string) error { return unix.Mount("nodev", p, "tracefs", 0, "") },
		unmount: func(p string) error { return unix.Unmount(p, 0) },
		logger:  logger,
	}
}

// instance is an open trace instance with the SIGKILL event enabled.
type instance struct {
	fs      *tracefs
	dir     string
	mounted bool // this instance mounted tracefs, and unmounts it
	pipe    *os.File
}

// open mounts tracefs when it is not mounted, removes the stale instances
// killed exporters left, and creates and enables a fresh one.
func (fs *tracefs) open(name string) (*instance, error) {
	in := &instance{fs: fs, dir: filepath.Join(fs.root, "instances", name)}
	if !isDir(filepath.Join(fs.root, "instances")) {
		if err := fs.mount(fs.root); err != nil {
			return nil, fmt.Errorf("tracefs is not mounted at %s and mounting it failed: %w", fs.root, err)
		}
		in.mounted = true
		fs.logger.Info("mounted tracefs", "path", fs.root)
	}
	fs.removeStale(name)
	if isDir(in.dir) {
		if err := fs.rmdir(in.dir); err != nil {
			in.unmount()
			if errors.Is(err, syscall.EBUSY) {
				return nil, fmt.Errorf("trace instance %s is in use by another reader: %w", in.dir, err)
			}
			return nil, fmt.Errorf("removing the stale trace instance %s: %w", in.dir, err)
		}
		fs.logger.Info("removed a stale trace instance", "path", in.dir)
	}
	if err := fs.mkdir(in.dir); err != nil {
		in.unmount()
		return nil, fmt.Errorf("creating trace instance %s: %w", in.dir, err)
	}
	// The pipe first: from now on the instance is busy, and another
	// exporter starting up does not take it for a stale one. O_NONBLOCK:
	// the runtime poller waits for events, so Close ends a blocked read.
	var err error
	in.pipe, err = os.OpenFile(filepath.Join(in.dir, "trace_pipe"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err == nil {
		err = in.write("buffer_size_kb", bufferSizeKB)
	}
	if err == nil {
		// The sender's process, not only its thread: the OOM killer sends
		// from the allocating thread, which is gone from /proc as soon as
		// the kill it sent ends it. Older kernels lack the option.
		if err := in.write("options/record-tgid", "1"); err != nil {
			fs.logger.Debug("cannot record the senders' thread group ids", "err", err)
		}
		err = in.write(eventDir+"/filter", filter)
	}
	if err == nil {
		err = in.write(eventDir+"/enable", "1")
	}
	if err != nil {
		in.close()
		return nil, fmt.Errorf("setting up trace instance %s: %w", in.dir, err)
	}
	return in, nil
}

// removeStale removes the instances other exporters left when they were
// killed. rmdir works on an enabled instance and fails with EBUSY while a
// reader holds its trace_pipe, so a live exporter's stays untouched
// (disabling it first would blind that exporter).
func (fs *tracefs) removeStale(own string) {
	entries, err := os.ReadDir(filepath.Join(fs.root, "instances"))
	if err != nil {
		fs.logger.Warn("cannot list trace instances", "path", fs.root, "err", err)
		return
	}
	for _, e := range entries {
		if e.Name() == own || !isExporterInstance(e.Name()) {
			continue
		}
		dir := filepath.Join(fs.root, "instances", e.Name())
		switch err := fs.rmdir(dir); {
		case err == nil:
			fs.logger.Info("removed a stale trace instance", "path", dir)
		case errors.Is(err, syscall.EBUSY):
			fs.logger.Debug("trace instance of a running exporter", "path", dir)
		default:
			fs.logger.Warn("cannot remove a stale trace instance", "path", dir, "err", err)
		}
	}
}

// isExporterInstance reports whether name is <InstancePrefix>-<pid>.
func isExporterInstance(name string) bool {
	pid, ok := strings.CutPrefix(name, InstancePrefix+"-")
	if !ok || pid == "" {
		return false
	}
	for _, c := range pid {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// write writes a control file; tracefs files exist or the kernel lacks
// the feature, so it never creates one.
func (in *instance) write(name, value string) error {
	f, err := os.OpenFile(filepath.Join(in.dir, name), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	return errors.Join(err, f.Close())
}

// close disables the event, closes the pipe, removes the instance and
// unmounts tracefs if open mounted it. It logs what it cannot undo.
func (in *instance) close() {
	if err := in.write(eventDir+"/enable", "0"); err != nil {
		in.fs.logger.Debug("disabling the trace event", "path", in.dir, "err", err)
	}
	if in.pipe != nil {
		in.pipe.Close()
	}
	if err := in.fs.rmdir(in.dir); err != nil {
		in.fs.logger.Warn("cannot remove the trace instance; the next start removes it", "path", in.dir, "err", err)
	}
	in.unmount()
}

func (in *instance) unmount() {
	if !in.mounted {
		return
	}
	// Without MNT_DETACH: a tracefs another program has started to use
	// stays mounted.
	if err := in.fs.unmount(in.fs.root); err != nil {
		in.fs.logger.Info("left tracefs mounted", "path", in.fs.root, "err", err)
	}
}

func isDir(p string) bool { st, err := os.Stat(p); return err == nil && st.IsDir() }
