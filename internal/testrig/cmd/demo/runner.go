package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// runner lets the demo use the test rig outside `go test`. The rig is
// written against testing.TB; runner gives it the methods it calls: it
// keeps the cleanups, and Fatal or Skip (a missing part) end the demo
// after running them, as a failed test would. testing.TB is embedded only
// to satisfy the interface: a call the rig does not make would panic.
type runner struct {
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	tmp      string
	tmps     int
}

func newRunner() *runner {
	tmp, err := os.MkdirTemp("", "exit137-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	r := &runner{tmp: tmp}
	r.Cleanup(func() { os.RemoveAll(tmp) })
	return r
}

func (r *runner) Helper()      {}
func (r *runner) Name() string { return "demo" }

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *runner) TempDir() string {
	r.mu.Lock()
	r.tmps++
	dir := filepath.Join(r.tmp, strconv.Itoa(r.tmps))
	r.mu.Unlock()
	if err := os.Mkdir(dir, 0o700); err != nil {
		r.Fatal(err)
	}
	return dir
}

func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runner) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (r *runner) Fatal(args ...any)               { r.fail(fmt.Sprint(args...)) }
func (r *runner) Fatalf(format string, args ...any) {
	r.fail(fmt.Sprintf(format, args...))
}
func (r *runner) Skipf(format string, args ...any) {
	r.fail("cannot run the demo here: " + fmt.Sprintf(format, args...))
}

func (r *runner) fail(msg string) {
	fmt.Fprintln(os.Stderr, "demo failed:", msg)
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.exit(1)
}

// exit runs the cleanups, newest first, once, and exits with code.
func (r *runner) exit(code int) {
	r.mu.Lock()
	cleanups := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}
