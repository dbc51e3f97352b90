package testrig

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	sweepOrphans(t)
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

// sweepOrphans removes the test containers of test processes that are
// gone (killed before their cleanup ran): a crash-looping leftover would
// add its deaths to the host-wide counts the tests check.
func sweepOrphans(t testing.TB) {
	out, err := Try("docker", "ps", "-a", "--filter", "label="+TestLabel, "--format", `{{.ID}} {{.Label "`+TestLabel+`"}}`)
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		id, owner, ok := strings.Cut(line, " ")
		pid, err := strconv.Atoi(owner)
		if !ok || err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // malformed, or its process still runs (it cleans up itself)
		}
		if _, err := Try("docker", "rm", "-f", id); err == nil {
			t.Logf("removed container %s left by test process %d, which is gone", id, pid)
		}
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

// Spec is one container of a batch: what Start takes.
type Spec struct {
	Name       string
	DockerArgs []string
	HelperArgs []string
}

// StartMany creates the specs' containers (as Start would run them),
// then starts them parallel at a time, so that the starts, not the
// creates, make the burst; it removes them all when the test ends and
// fails the test, after all were tried, if any did not start.
func StartMany(t testing.TB, specs []Spec, parallel int) []Container {
	t.Helper()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	t.Cleanup(func() { _, _ = Try("docker", append([]string{"rm", "-f"}, names...)...) })
	out := make([]Container, len(specs))
	errs := make([]error, len(specs))
	each := func(do func(i int, s Spec) error) {
		sem := make(chan struct{}, max(parallel, 1))
		var wg sync.WaitGroup
		for i, s := range specs {
			if errs[i] != nil {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				errs[i] = do(i, s)
			}()
		}
		wg.Wait()
	}
	each(func(i int, s Spec) error {
		args := append([]string{"create", "--network", "none", "--label", OwnLabel, "--name", s.Name}, s.DockerArgs...)
		args = append(append(args, HelperImage), s.HelperArgs...)
		id, err := Try("docker", args...)
		if err != nil {
			return fmt.Errorf("docker create %s: %v: %s", s.Name, err, id)
		}
		out[i] = Container{ID: lastLine(id), Name: s.Name}
		return nil
	})
	each(func(i int, s Spec) error {
		if msg, err := Try("docker", "start", s.Name); err != nil {
			return fmt.Errorf("docker start %s: %v: %s", s.Name, err, msg)
		}
		return nil
	})
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// Exec runs the helper in a running container (docker exec NAME /helper
// ARGS) and returns its output, failing the test on error.
func Exec(t testing.TB, name string, helperArgs ...string) string {
	t.Helper()
	return Run(t, "docker", append([]string{"exec", name, "/helper"}, helperArgs...)...)
}

// Inspect returns docker inspect's answer for a Go template.
func Inspect(t testing.TB, name, format string) string {
	t.Helper()
	return Run(t, "docker", "inspect", "-f", format, name)
}

// Events returns the daemon's events for a container since a time, one
// "action [exitCode=N] [signal=N]" line each: what Docker said about it.
func Events(t testing.TB, name string, since time.Time) []string {
	t.Helper()
	out := Run(t, "docker", "events", "--since", since.Add(-time.Second).Format(time.RFC3339Nano),
		"--until", time.Now().Add(time.Second).Format(time.RFC3339Nano),
		"--filter", "container="+name, "--format", "{{.Action}}{{with .Actor.Attributes.exitCode}} exitCode={{.}}{{end}}{{with .Actor.Attributes.signal}} signal={{.}}{{end}}")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// cgroupV1 is the mount of the cgroup v1 hierarchies; the memory
// controller is one of them.
const cgroupV1 = "/sys/fs/cgroup"

// MemoryCgroupParent makes a cgroup v1 memory group of this test process
// (/sys/fs/cgroup/memory/exit137-test-<pid>) with its own
// memory.limit_in_bytes, for docker run --cgroup-parent; it returns the
// --cgroup-parent value. When the test ends, after the containers in it
// are removed (register it before starting them), it removes the group
// and the groups runc made for the same parent in the other hierarchies.
func MemoryCgroupParent(t testing.TB, limitBytes int64) string {
	t.Helper()
	name := "exit137-test-" + fmt.Sprint(os.Getpid())
	dir := filepath.Join(cgroupV1, "memory", name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		Need(t, "cannot make a v1 memory cgroup (root and cgroup v1 needed): %v", err)
	}
	t.Cleanup(func() { removeCgroupParent(t, name) })
	limit := []byte(fmt.Sprint(limitBytes))
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), limit, 0o644); err != nil {
		t.Fatalf("setting the parent's limit: %v", err)
	}
	// With swap accounting, the limit of memory+swap must not let the
	// group swap past its limit (the memsw limit is set after the plain
	// one, which it must not be below).
	if sw := filepath.Join(dir, "memory.memsw.limit_in_bytes"); fileExists(sw) {
		if err := os.WriteFile(sw, limit, 0o644); err != nil {
			t.Fatalf("setting the parent's memsw limit: %v", err)
		}
	}
	return "/" + name
}

// removeCgroupParent removes the group name in every v1 hierarchy, its
// (empty) children first, retrying while the runtime lets them go.
func removeCgroupParent(t testing.TB, name string) {
	hierarchies, _ := os.ReadDir(cgroupV1)
	for _, h := range hierarchies {
		dir := filepath.Join(cgroupV1, h.Name(), name)
		if !fileExists(dir) {
			continue
		}
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			children, _ := os.ReadDir(dir)
			for _, c := range children {
				if c.IsDir() {
					_ = syscall.Rmdir(filepath.Join(dir, c.Name()))
				}
			}
			if err = syscall.Rmdir(dir); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Errorf("removing cgroup %s: %v", dir, err)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

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

// WaitSigtermSet waits until the helper in the Docker container name has
// set its SIGTERM handling (-ignore-term, -term-exit): a stop sent before
// then kills the init with Go's exit code 2, which a busy host makes
// likely.
func WaitSigtermSet(t testing.TB, name string) {
	t.Helper()
	WaitUntil(t, time.Minute, name+"'s SIGTERM handling set", func() bool {
		logs, _ := Try("docker", "logs", name)
		return strings.Contains(logs, "helper: SIGTERM handling set") // the helper's sigtermSet
	})
}
