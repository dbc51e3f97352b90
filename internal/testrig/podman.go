package testrig

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Podman is a Podman of the test's own: configuration, storage, run
// state and event log in a directory of its own (as root, apart from the
// host's /var/lib/containers), its Docker-compatible service on a socket
// in that directory, and the helper image built in its storage. The
// podman commands and the service share the configuration, so the
// service reports what the commands do. Everything stops, by pid, and
// goes when the test ends.
type Podman struct {
	// Dir holds everything; Socket is the service's socket in it.
	Dir, Socket string
	env         []string
}

// Host is the service's address for --docker.host.
func (p *Podman) Host() string { return "unix://" + p.Socket }

// podmanConf is the working configuration measured on the project's
// machines (see shared/reference): the cgroupfs manager (no systemd as
// PID 1), a file event log, no network, and rlimits the machine allows
// (runc fails to set the defaults: no CAP_SYS_RESOURCE, nofile capped at
// 20000). vfs storage needs no overlay mount.
//
// Every path follows from the flags conmon gives the cleanup command it
// runs at a container's exit (--root, --runroot, --tmpdir, ...), which
// does not see CONTAINERS_CONF: the event log must stay at its default,
// <tmp_dir>/events/events.log, or the die events that cleanup writes go
// to another file and the service never reports them.
const podmanConf = `[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "DIR/tmp"
`

const podmanStorageConf = `[storage]
driver = "vfs"
runroot = "DIR/run"
graphroot = "DIR/graph"
`

// StartPodman checks that podman can run here (root, cgroup v1 memory
// controller as on the project's hosts, podman, conmon and runc
// installed), writes the configuration, builds the helper image and
// starts `podman system service --time=0` on its own socket.
func StartPodman(t testing.TB) *Podman {
	t.Helper()
	if os.Geteuid() != 0 {
		Need(t, "podman tests run as root")
	}
	for _, bin := range []string{"podman", "conmon", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			Need(t, "%s is not installed (scripts/test installs Debian's podman): %v", bin, err)
		}
	}
	// A short path: a unix socket's path holds 107 bytes.
	dir, err := os.MkdirTemp("", "e137-podman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Podman{Dir: dir, Socket: filepath.Join(dir, "podman.sock")}
	t.Cleanup(func() { p.remove(t) })
	replace := strings.NewReplacer("DIR", dir)
	for name, text := range map[string]string{"containers.conf": podmanConf, "storage.conf": podmanStorageConf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(replace.Replace(text)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.env = append(os.Environ(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		// No registries are reached: the image is built FROM scratch.
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"))
	if err := os.WriteFile(filepath.Join(dir, "registries.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p.buildHelper(t)
	p.startService(t)
	return p
}

// Cmd runs podman with the test's configuration and returns its output.
func (p *Podman) Cmd(args ...string) (string, error) {
	return p.cmd(time.Minute, args...)
}

func (p *Podman) cmd(within time.Duration, args ...string) (string, error) {
	cmd := exec.Command("podman", args...)
	cmd.Env, cmd.Dir = p.env, p.Dir // conmon works (and drops files) where podman runs
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return strings.TrimSpace(out.String()), err
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-done
		return strings.TrimSpace(out.String()), fmt.Errorf("podman %s: no answer within %s", strings.Join(args, " "), within)
	}
}

// Run is Cmd that fails the test on error.
func (p *Podman) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := p.Cmd(args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Start runs a helper container detached, labelled and with --network
// none, and removes it when the test ends, pass or fail. podmanArgs go
// before the image, helperArgs after.
func (p *Podman) Start(t testing.TB, name string, podmanArgs []string, helperArgs ...string) Container {
	t.Helper()
	args := append([]string{"run", "-d", "--network", "none", "--label", OwnLabel, "--name", name}, podmanArgs...)
	args = append(args, HelperImage)
	args = append(args, helperArgs...)
	t.Cleanup(func() { _, _ = p.Cmd("rm", "-f", "-t", "0", name) })
	return Container{ID: lastLine(p.Run(t, args...)), Name: name}
}

// Inspect returns podman inspect's answer for a Go template.
func (p *Podman) Inspect(t testing.TB, name, format string) string {
	t.Helper()
	return p.Run(t, "inspect", "-f", format, name)
}

// WaitExited waits until the container is no longer running and returns
// its exit code as podman inspect reports it.
func (p *Podman) WaitExited(t testing.TB, name string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		out, err := p.Cmd("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", name)
		if err == nil && strings.HasPrefix(out, "false ") {
			return strings.TrimPrefix(out, "false ")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("podman container %s still running after %s", name, within)
	return ""
}

// Events returns what podman said about a container since a time, one
// "action [exitCode=N] [signal=N]" line each.
func (p *Podman) Events(t testing.TB, name string, since time.Time) []string {
	t.Helper()
	out := p.Run(t, "events", "--since", since.Add(-time.Second).Format(time.RFC3339Nano),
		"--until", time.Now().Add(2*time.Second).Format(time.RFC3339Nano), // podman stops reading at until
		"--filter", "container="+name, "--format", "{{.Status}}{{with .ContainerExitCode}} exitCode={{.}}{{end}}")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// buildHelper builds the helper image FROM scratch in this storage.
func (p *Podman) buildHelper(t testing.TB) {
	t.Helper()
	helper := BuildBinary(t, "internal/testrig/helper")
	ctx := filepath.Join(p.Dir, "build")
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(helper)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "helper"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	containerfile := "FROM scratch\nCOPY helper /helper\nENTRYPOINT [\"/helper\"]\n"
	if err := os.WriteFile(filepath.Join(ctx, "Containerfile"), []byte(containerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := p.cmd(2*time.Minute, "build", "--network", "none", "-q", "-t", HelperImage, ctx); err != nil {
		Need(t, "podman cannot build the helper image here: %v\n%s", err, out)
	}
}

// startService starts the API service in a process group of its own
// and waits until its socket answers; cleanup stops it by pid.
func (p *Podman) startService(t testing.TB) {
	t.Helper()
	log, err := os.Create(filepath.Join(p.Dir, "service.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("podman", "system", "service", "--time=0", p.Host())
	cmd.Env = p.env
	// conmon writes its oom marker into the working directory it inherits.
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("podman system service: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	t.Cleanup(func() { stopService(t, cmd.Process.Pid, done) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", p.Socket); err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(p.Dir, "service.log"))
			t.Fatalf("podman system service ended at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("podman system service: no socket at %s within 30s", p.Socket)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopService ends the service: SIGTERM to its pid, SIGKILL to its
// process group after 10s.
func stopService(t testing.TB, pid int, done <-chan struct{}) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(10 * time.Second):
	}
	t.Logf("podman system service (pid %d) ignored SIGTERM; killing its process group", pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-done
}

// remove takes away what the test left (after the service stopped: the
// cleanups run last-registered first): this process's containers, then
// the directory. A tmpfs podman mounted for a container it could not
// remove is unmounted first.
func (p *Podman) remove(t testing.TB) {
	if out, err := p.Cmd("ps", "-aq", "--filter", "label="+OwnLabel); err == nil && out != "" {
		if msg, err := p.Cmd(append([]string{"rm", "-f", "-t", "0"}, strings.Fields(out)...)...); err != nil {
			t.Logf("podman rm: %v: %s", err, msg)
		}
	}
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, l := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], p.Dir+"/") {
				_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
			}
		}
	}
	// conmon's cleanup of the last exit may still be writing.
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err = os.RemoveAll(p.Dir); err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Logf("removing %s: %v", p.Dir, err)
	}
}
