package testrig

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Logger logs at debug level into the test's own log, so a source's
// messages show next to the failure that they explain.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter drops what is logged after its test ended: a timer the test
// left behind (a tracker's settle) would otherwise panic the test binary
// with "Log in goroutine after Test… has completed".
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
