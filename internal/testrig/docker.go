package testrig

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lockPath serialises the tests that use the shared daemon across test
// processes: they count host-wide exits, so two at once would see each
// other's deaths.
const lockPath = "/run/exit137-test/docker.lock"

// Docker makes sure a daemon answers and the helper image exists, and
// holds the daemon's test lock until the test ends.
func Docker(t testing.TB) {
	t.Helper()
	lockDocker(t)
	if _, err := Try("docker", "info"); err != nil {
		Need(t, "no Docker daemon answers (run scripts/dockerd.sh start): %v", err)
	}
	helper := BuildBinary(t, "internal/testrig/helper")
	if _, err := once("image", func() (string, error) {
		dir, err := os.MkdirTemp("", "exit137-image-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		data, err := os.ReadFile(helper)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "helper"), data, 0o755); err != nil {
			return "", err
		}
		dockerfile := "FROM scratch\nCOPY helper /helper\nENTRYPOINT [\"/helper\"]\n"
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
			return "", err
		}
		return Try("docker", "build", "--network", "none", "-q", "-t", HelperImage, dir)
	}); err != nil {
		t.Fatalf("building %s: %v", HelperImage, err)
	}
}

// Container is a test container.
type Container struct {
	ID, Name string
}

// Start runs a helper container detached with --network none and removes
// it when the test ends. dockerArgs go before the image, helperArgs after.
func Start(t testing.TB, name string, dockerArgs []string, helperArgs ...string) Container {
	t.Helper()
	args := append([]string{"run", "-d", "--network", "none", "--label", OwnLabel, "--name", name}, dockerArgs...)
	args = append(args, HelperImage)
	args = append(args, helperArgs...)
	t.Cleanup(func() { _, _ = Try("docker", "rm", "-f", name) })
	id := Run(t, "docker", args...)
	return Container{ID: lastLine(id), Name: name}
}

// UniqueName makes a container name unique to this run, so that per-name
// counters start from zero.
func UniqueName(t testing.TB, base string) string {
	return "e137-" + base + "-" + randHex(4)
}

// WaitExited waits until the container is no longer running and returns
// its exit code as docker inspect reports it.
func WaitExited(t testing.TB, name string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		out, err := Try("docker", "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", name)
		if err == nil && strings.HasPrefix(out, "false ") {
			return strings.TrimPrefix(out, "false ")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("container %s still running after %s", name, within)
	return ""
}

// PID returns the host PID of the container's main process.
func PID(t testing.TB, name string) string {
	t.Helper()
	return Run(t, "docker", "inspect", "-f", "{{.State.Pid}}", name)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func lockDocker(t testing.TB) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}
