package testrig

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// Runner lets a command use the rig outside `go test` (scripts/kube-rig).
// The rig is written against testing.TB; Runner gives it the methods it
// calls: it keeps the cleanups, and Fatal or Skip (a missing part) end
// the command after running them, as a failed test would. testing.TB is
// embedded only to satisfy the interface: a call the rig does not make
// would panic.
type Runner struct {
	testing.TB

	name     string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	tmp      string
	tmps     int
}

// NewRunner returns a Runner whose messages start with name.
func NewRunner(name string) *Runner {
	tmp, err := os.MkdirTemp("", "exit137-"+name+"-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	r := &Runner{name: name, tmp: tmp}
	r.Cleanup(func() { os.RemoveAll(tmp) })
	return r
}

func (r *Runner) Helper()      {}
func (r *Runner) Name() string { return r.name }

func (r *Runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *Runner) TempDir() string {
	r.mu.Lock()
	r.tmps++
	dir := filepath.Join(r.tmp, strconv.Itoa(r.tmps))
	r.mu.Unlock()
	if err := os.Mkdir(dir, 0o700); err != nil {
		r.Fatal(err)
	}
	return dir
}

func (r *Runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *Runner) Log(args ...any)                 { fmt.Fprintln(os.Stderr, args...) }
func (r *Runner) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (r *Runner) Errorf(format string, args ...any) {
	r.Logf(format, args...)
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}
func (r *Runner) Fatal(args ...any) { r.fail(fmt.Sprint(args...)) }
func (r *Runner) Fatalf(format string, args ...any) {
	r.fail(fmt.Sprintf(format, args...))
}
func (r *Runner) Skipf(format string, args ...any) {
	r.fail("cannot run here: " + fmt.Sprintf(format, args...))
}

func (r *Runner) fail(msg string) {
	fmt.Fprintf(os.Stderr, "%s failed: %s\n", r.name, msg)
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.Exit(1)
}

// Exit runs the cleanups, newest first, once, and exits with code.
func (r *Runner) Exit(code int) {
	r.mu.Lock()
	cleanups := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}
