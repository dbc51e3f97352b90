// Package testrig gives the end-to-end tests their real parts: the Docker
// daemon (started by scripts/dockerd.sh), a FROM scratch image built from
// the helper binary, containers that are always removed, and the exporter
// binary itself, started on loopback and scraped over HTTP.
package testrig

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// HelperImage is the image every test container runs.
const HelperImage = "exit137-helper:test"

// TestLabel marks every container a test makes, for cleanup.
const TestLabel = "exit137.test"

// OwnLabel is TestLabel with this test process's pid as its value: a
// sweep for leftovers removes only its own process's containers, never
// those of a test running beside it.
var OwnLabel = TestLabel + "=" + strconv.Itoa(os.Getpid())

// RepoRoot is the module root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// InCI reports whether a missing real part must fail rather than skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need fails the test in CI and skips it elsewhere: the real part is
// missing.
func Need(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("CI=true and a real part is missing: %s", msg)
	}
	t.Skipf("real part missing (set CI=true to make this fail): %s", msg)
}

// ShortLoop reports whether the quick loop (go test -short) leaves out
// the tests that change the host. Never in CI: there a real part runs or
// fails.
func ShortLoop() bool { return testing.Short() && !InCI() }

// WaitUntil polls cond every 10 ms until it holds, failing the test
// after within.
func WaitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SkipInShortLoop skips a real-host test in the quick loop.
func SkipInShortLoop(t testing.TB) {
	t.Helper()
	if ShortLoop() {
		t.Skip("real-host test: left out of the quick loop (go test -short, not CI)")
	}
}

// Run runs a command and returns its combined output, failing the test on
// error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Try(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a command with a one-minute bound and returns its output.
func Try(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return strings.TrimSpace(buf.String()), err
}

var (
	buildOnce sync.Map // key → *onceResult
	// buildDir holds this test process's binaries; RemoveBuilds deletes it.
	buildDir = filepath.Join(os.TempDir(), "exit137-bin-"+strconv.Itoa(os.Getpid()))
)

// RemoveBuilds deletes the binaries BuildBinary made; TestMain calls it.
func RemoveBuilds() { _ = os.RemoveAll(buildDir) }

type onceResult struct {
	once sync.Once
	val  string
	err  error
}

// once runs f a single time per test process for key.
func once(key string, f func() (string, error)) (string, error) {
	r, _ := buildOnce.LoadOrStore(key, &onceResult{})
	o := r.(*onceResult)
	o.once.Do(func() { o.val, o.err = f() })
	return o.val, o.err
}

// BuildBinary builds a static binary of the package at pkg (relative to
// the repo root) once per test process.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	path, err := once("bin:"+pkg, func() (string, error) {
		if err := os.MkdirAll(buildDir, 0o755); err != nil {
			return "", err
		}
		out := filepath.Join(buildDir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./"+pkg)
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}
