package disk

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/source"
)

// TestStuckPath: a statfs that never returns marks its path stuck within
// the timeout, is not called again while it hangs, leaves the other
// paths measured and the source up, and clears when it returns.
func TestStuckPath(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	real := statfs
	statfs = func(path string, st *unix.Statfs_t) error {
		if path == "/hung" {
			calls.Add(1)
			<-release
			path = "/"
		}
		return real(path, st)
	}
	t.Cleanup(func() { statfs = real })
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	health := source.NewRegistry().Source("disk")
	s := New([]string{"/", "/hung"}, 0.95, health, nil)
	s.timeout = 50 * time.Millisecond

	began := time.Now()
	u := s.Usage()
	if took := time.Since(began); took > 500*time.Millisecond {
		t.Fatalf("Usage took %v with a hung path", took)
	}
	if u[0].Err != nil || u[0].Stuck || !u[1].Stuck || !errors.Is(u[1].Err, ErrStuck) {
		t.Fatalf("Usage = %+v", u)
	}
	if !health.Up() || health.Errors() != 1 {
		t.Errorf("up %v errors %d, want up with one error", health.Up(), health.Errors())
	}

	// The scrape and the death probe read samples: no wait, no new call.
	for range 3 {
		began = time.Now()
		s.Measure()
		s.Pressure(time.Now())
		if took := time.Since(began); took > 500*time.Millisecond {
			t.Fatalf("took %v", took)
		}
	}
	if calls.Load() != 1 || health.Errors() != 1 {
		t.Errorf("%d statfs calls of the hung path, %d errors; want 1 and 1", calls.Load(), health.Errors())
	}

	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for u = s.Measure(); u[1].Err != nil; u = s.Measure() {
		if time.Now().After(deadline) {
			t.Fatalf("still %+v after the statfs returned", u[1])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if u[1].Stuck || u[1].UsedRatio == 0 {
		t.Errorf("after it returned: %+v", u[1])
	}
}

// TestRunSamplesNewPaths: Run measures a path added while it runs at
// once, and Usage then reads the sample without measuring.
func TestRunSamplesNewPaths(t *testing.T) {
	var calls atomic.Int32
	real := statfs
	statfs = func(path string, st *unix.Statfs_t) error { calls.Add(1); return real(path, st) }
	t.Cleanup(func() { statfs = real })

	s := New(nil, 0.95, nil, nil)
	ctx := t.Context()
	go s.Run(ctx)
	s.AddPath(t.TempDir())
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not measure the new path")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	n := calls.Load()
	if u := s.Usage(); len(u) != 1 || u[0].Err != nil || u[0].At.IsZero() {
		t.Fatalf("Usage = %+v", u)
	}
	if calls.Load() != n {
		t.Error("Usage measured a fresh path again")
	}
}
