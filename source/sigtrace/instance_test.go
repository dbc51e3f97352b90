package sigtrace

import (
	"errors"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeTracefs is a plain directory that behaves as tracefs does for the
// source: mkdir of an instance creates its control files and a FIFO for
// trace_pipe, rmdir removes the whole instance (failing with EBUSY when
// busy), mount creates instances/.
type fakeTracefs struct {
	*tracefs
	t *testing.T
	// ops records mkdir, rmdir (with the event's enable at that time),
	// mount and unmount, in order.
	ops []string
	// busy names the instances whose trace_pipe a reader holds.
	busy     map[string]bool
	noEvent  bool
	mountErr error
	// pipe is the writing end of the newest instance's trace_pipe.
	pipe *os.File
}

func newFakeTracefs(t *testing.T, mounted bool) *fakeTracefs {
	f := &fakeTracefs{t: t, busy: map[string]bool{}}
	f.tracefs = &tracefs{root: t.TempDir(), mkdir: f.mkdir, rmdir: f.rmdir, mount: f.mount, unmount: f.unmount, logger: testrig.Logger(t)}
	if mounted {
		if err := os.Mkdir(filepath.Join(f.root, "instances"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fakeTracefs) instanceDir(name string) string {
	return filepath.Join(f.root, "instances", name)
}

func (f *fakeTracefs) mkdir(p string) error {
	f.ops = append(f.ops, "mkdir "+filepath.Base(p))
	if err := os.Mkdir(p, 0o700); err != nil {
		return err
	}
	files := map[string]string{"buffer_size_kb": "1410"}
	if !f.noEvent {
		files[eventDir+"/filter"] = "none"
		files[eventDir+"/enable"] = "0"
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(p, name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(p, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	fifo := filepath.Join(p, "trace_pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return err
	}
	// O_RDWR: a writer that never blocks and never goes away, so the
	// reader sees no EOF, as on a real trace_pipe.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	f.t.Cleanup(func() { w.Close() })
	f.pipe = w
	return nil
}

func (f *fakeTracefs) rmdir(p string) error {
	enable, _ := os.ReadFile(filepath.Join(p, eventDir, "enable"))
	f.ops = append(f.ops, "rmdir "+filepath.Base(p)+" enable="+string(enable))
	if f.busy[filepath.Base(p)] {
		return syscall.EBUSY
	}
	if !isDir(p) {
		return syscall.ENOENT
	}
	return os.RemoveAll(p)
}

func (f *fakeTracefs) mount(p string) error {
	f.ops = append(f.ops, "mount")
	if f.mountErr != nil {
		return f.mountErr
	}
	return os.Mkdir(filepath.Join(p, "instances"), 0o755)
}

func (f *fakeTracefs) unmount(p string) error {
	f.ops = append(f.ops, "unmount")
	return os.RemoveAll(filepath.Join(p, "instances"))
}

func (f *fakeTracefs) wantOps(want ...string) {
	f.t.Helper()
	if !slices.Equal(f.ops, want) {
		f.t.Errorf("operations %q, want %q", f.ops, want)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// own is the instance name of the exporter under test.
const own = "exit137-100"

func TestInstanceSetUpAndRemoved(t *testing.T) {
	f := newFakeTracefs(t, true)
	in, err := f.open(own)
	if err != nil {
		t.Fatal(err)
	}
	dir := f.instanceDir(own)
	for name, want := range map[string]string{"buffer_size_kb": bufferSizeKB, eventDir + "/filter": "sig == 9", eventDir + "/enable": "1"} {
		if got := readFile(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	in.close()
	if isDir(dir) {
		t.Error("the instance is left after close")
	}
	f.wantOps("mkdir "+own, "rmdir "+own+" enable=0")
}

// makeInstance makes an instance as an exporter leaves it, enabled.
func (f *fakeTracefs) makeInstance(name string) {
	f.t.Helper()
	if err := f.mkdir(f.instanceDir(name)); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.instanceDir(name), eventDir, "enable"), []byte("1"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func TestStaleInstancesRemovedLiveOnesLeftAlone(t *testing.T) {
	f := newFakeTracefs(t, true)
	for _, name := range []string{"exit137-1", "exit137-2", "exit137-x1", "exit137-", "perf-trace", own} {
		f.makeInstance(name)
	}
	f.busy["exit137-2"] = true // a running exporter's
	f.ops = nil
	in, err := f.open(own)
	if err != nil {
		t.Fatal(err)
	}
	defer in.close()
	// Stale ones go as they are, enabled: rmdir works on an enabled
	// instance, and disabling a live one would blind its exporter.
	f.wantOps("rmdir exit137-1 enable=1", "rmdir exit137-2 enable=1", "rmdir "+own+" enable=1", "mkdir "+own)
	for name, want := range map[string]bool{"exit137-1": false, "exit137-2": true, "exit137-x1": true, "exit137-": true, "perf-trace": true} {
		if got := isDir(f.instanceDir(name)); got != want {
			t.Errorf("instance %s exists: %v, want %v", name, got, want)
		}
	}
	if got := readFile(t, filepath.Join(f.instanceDir("exit137-2"), eventDir, "enable")); got != "1" {
		t.Errorf("the running exporter's instance was disabled: enable = %q", got)
	}
}

func TestOwnInstanceInUse(t *testing.T) {
	f := newFakeTracefs(t, true)
	f.makeInstance(own)
	f.ops, f.busy[own] = nil, true
	_, err := f.open(own)
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "in use by another reader") {
		t.Fatalf("open = %v, want EBUSY and in use", err)
	}
	f.wantOps("rmdir " + own + " enable=1")
}

func TestMountsWhenNotMountedAndUnmounts(t *testing.T) {
	f := newFakeTracefs(t, false)
	in, err := f.open(own)
	if err != nil {
		t.Fatal(err)
	}
	in.close()
	f.wantOps("mount", "mkdir "+own, "rmdir "+own+" enable=0", "unmount")
}

func TestMountNotPermitted(t *testing.T) {
	f := newFakeTracefs(t, false)
	f.mountErr = syscall.EPERM
	_, err := f.open(own)
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "not mounted at "+f.root) {
		t.Fatalf("open = %v, want EPERM and a clear reason", err)
	}
	f.wantOps("mount")
}

func TestKernelWithoutSignalEvents(t *testing.T) {
	f := newFakeTracefs(t, false)
	f.noEvent = true
	_, err := f.open(own)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "setting up trace instance") {
		t.Fatalf("open = %v, want a missing event file", err)
	}
	if isDir(f.instanceDir(own)) {
		t.Error("the half-made instance is left")
	}
	f.wantOps("mount", "mkdir "+own, "rmdir "+own+" enable=", "unmount")
}

func TestDefaultInstanceIsAnExporters(t *testing.T) {
	if name := DefaultInstance(); !isExporterInstance(name) || name != "exit137-"+strconv.Itoa(os.Getpid()) {
		t.Errorf("DefaultInstance() = %q", name)
	}
}
