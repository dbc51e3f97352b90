package testrig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SystemdUser is a real systemd user manager on a private session bus,
// for the PartOf=/BindsTo= tests. It runs in a cgroup of its own, so it
// moves no other process, and its units live in a temporary
// XDG_CONFIG_HOME, so nothing lands in the caller's home.
type SystemdUser struct {
	// Env reaches the bus and the manager: XDG_RUNTIME_DIR,
	// DBUS_SESSION_BUS_ADDRESS and the XDG homes.
	Env     []string
	unitDir string
	cgroups []string // the manager's cgroup in every hierarchy
	bus     *proc
	manager *proc
	logDir  string
}

// proc is a process the rig started; done closes when it has exited and
// been reaped.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// systemdBootedDir is what systemd checks to believe it runs on a systemd
// host; a user manager refuses to start without it. A manager run as root
// also stamps systemdUnitsLoad.
const (
	systemdBootedDir = "/run/systemd/system"
	systemdUnitsLoad = "/run/systemd/systemd-units-load"
)

// StartSystemdUser starts a session bus and a systemd user manager, and
// stops both (by PID) when the test ends. Start it once per test; its
// subtests share it.
func StartSystemdUser(t *testing.T) *SystemdUser {
	t.Helper()
	managerBin := systemdBinary()
	for _, bin := range []string{"dbus-daemon", "systemctl", managerBin} {
		if _, err := exec.LookPath(bin); err != nil {
			Need(t, "%s is missing (Debian packages dbus and systemd): %v", bin, err)
		}
	}
	if os.Geteuid() != 0 {
		Need(t, "a systemd user manager in a cgroup of its own needs root")
	}
	base, err := os.MkdirTemp("", "exit137-systemd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	runtime := filepath.Join(base, "run")
	m := &SystemdUser{
		Env: []string{
			"XDG_RUNTIME_DIR=" + runtime,
			"DBUS_SESSION_BUS_ADDRESS=unix:path=" + filepath.Join(runtime, "bus"),
			"XDG_CONFIG_HOME=" + filepath.Join(base, "config"),
			"XDG_DATA_HOME=" + filepath.Join(base, "data"),
			"XDG_STATE_HOME=" + filepath.Join(base, "state"),
			"XDG_CACHE_HOME=" + filepath.Join(base, "cache"),
		},
		unitDir: filepath.Join(base, "config", "systemd", "user"),
		logDir:  base,
	}
	for _, dir := range []string{runtime, m.unitDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Dir(systemdBootedDir), systemdBootedDir, systemdUnitsLoad} {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			t.Cleanup(func() { os.Remove(p) })
		}
	}
	if err := os.MkdirAll(systemdBootedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	m.cgroups = makeCgroups(t, "exit137-systemd-"+randHex(4))
	t.Cleanup(func() { removeCgroups(m.cgroups) })

	m.bus = m.spawn(t, "dbus.log", "dbus-daemon", "--session", "--nofork", "--address=unix:path="+filepath.Join(runtime, "bus"))
	t.Cleanup(func() { stopByPID(m.bus, 5*time.Second) })
	WaitUntil(t, 10*time.Second, "the session bus socket", func() bool {
		_, err := os.Stat(filepath.Join(runtime, "bus"))
		return err == nil
	})
	m.startManager(t, managerBin)
	t.Cleanup(func() { stopByPID(m.manager, 30*time.Second) })
	return m
}

// startManager runs systemd --user after moving its shell into the
// manager's cgroups, and waits until it runs.
func (m *SystemdUser) startManager(t *testing.T, bin string) {
	t.Helper()
	var procs []string
	for _, cg := range m.cgroups {
		procs = append(procs, filepath.Join(cg, "cgroup.procs"))
	}
	script := `for f; do echo $$ > "$f" || exit 1; done; exec ` + bin + ` --user`
	m.manager = m.spawn(t, "systemd.log", "/bin/sh", append([]string{"-c", script, "sh"}, procs...)...)
	WaitUntil(t, 30*time.Second, "the user manager to run", func() bool {
		out, _ := m.TrySystemctl("is-system-running")
		return out == "running" || out == "degraded"
	})
}

// StopManager stops the manager by its PID; the bus stays. What runs
// under it stops with it.
func (m *SystemdUser) StopManager() { stopByPID(m.manager, 30*time.Second) }

// StartManager starts a manager again after StopManager.
func (m *SystemdUser) StartManager(t *testing.T) { m.startManager(t, systemdBinary()) }

// Setenv points this test's environment, and so the exporters it starts
// (StartExporter passes it on), at this manager's bus.
func (m *SystemdUser) Setenv(t *testing.T) {
	for _, kv := range m.Env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// WriteUnit writes a unit file and reloads the manager; when the test
// ends the unit is stopped, its file removed and the manager reloaded.
func (m *SystemdUser) WriteUnit(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(m.unitDir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = m.TrySystemctl("stop", name)
		_, _ = m.TrySystemctl("reset-failed", name)
		os.Remove(filepath.Join(m.unitDir, name))
		_, _ = m.TrySystemctl("daemon-reload")
	})
	m.Systemctl(t, "daemon-reload")
}

// Systemctl runs systemctl --user and fails the test on error.
func (m *SystemdUser) Systemctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := m.TrySystemctl(args...)
	if err != nil {
		t.Fatalf("systemctl --user %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TrySystemctl runs systemctl --user with a one-minute bound.
func (m *SystemdUser) TrySystemctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemctl", append([]string{"--user"}, args...)...)
	cmd.Env = append(os.Environ(), m.Env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return strings.TrimSpace(buf.String()), err
}

// Show returns one property of a unit.
func (m *SystemdUser) Show(t *testing.T, unit, property string) string {
	t.Helper()
	return strings.TrimPrefix(m.Systemctl(t, "show", "-p", property, "--", unit), property+"=")
}

// ServiceCgroup is the cgroup the manager gives a service of app.slice,
// the default slice of user services.
func (m *SystemdUser) ServiceCgroup(t *testing.T, service string) string {
	t.Helper()
	return path.Join(m.Show(t, "-.slice", "ControlGroup"), "app.slice", service)
}

// Logs returns what the bus and the manager logged, for failures.
func (m *SystemdUser) Logs() string {
	var b strings.Builder
	for _, name := range []string{"dbus.log", "systemd.log"} {
		data, _ := os.ReadFile(filepath.Join(m.logDir, name))
		fmt.Fprintf(&b, "--- %s\n%s", name, data)
	}
	return b.String()
}

// spawn starts a program of the manager's in a session of its own (a
// signal to the test's group does not reach it), logging to logName.
func (m *SystemdUser) spawn(t *testing.T, logName, name string, args ...string) *proc {
	t.Helper()
	return startProcess(t, filepath.Join(m.logDir, logName), m.Env, name, args...)
}

func systemdBinary() string {
	if p, err := exec.LookPath("systemd"); err == nil {
		return p
	}
	return "/lib/systemd/systemd"
}

// stopByPID sends SIGTERM and, after grace, SIGKILL to the process, and
// waits until it is gone.
func stopByPID(p *proc, grace time.Duration) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// makeCgroups creates a cgroup called name at the top of every cgroup
// hierarchy mounted under /sys/fs/cgroup (v1 controllers, name=systemd,
// the v2 tree), so that the manager's own cgroup is there and not the
// root, from which it would move every process on the host.
func makeCgroups(t *testing.T, name string) []string {
	t.Helper()
	var roots []string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err == nil {
		roots = []string{"/sys/fs/cgroup"}
	} else {
		entries, _ := os.ReadDir("/sys/fs/cgroup")
		for _, e := range entries {
			dir := filepath.Join("/sys/fs/cgroup", e.Name())
			if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil && !slices.Contains(roots, dir) {
				roots = append(roots, dir)
			}
		}
	}
	if len(roots) == 0 {
		Need(t, "no cgroup hierarchy under /sys/fs/cgroup")
	}
	var made []string
	for _, root := range roots {
		dir := filepath.Join(root, name)
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			made = append(made, dir)
			err = inheritCpuset(root, dir)
		}
		if err != nil {
			removeCgroups(made)
			t.Fatalf("creating the manager's cgroup: %v", err)
		}
	}
	return made
}

// inheritCpuset gives a new v1 cpuset cgroup its parent's CPUs and memory
// nodes: it starts with none, and takes no process until it has some.
func inheritCpuset(parent, dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		data, err := os.ReadFile(filepath.Join(parent, f))
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not the cpuset hierarchy
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// removeCgroups removes each cgroup and whatever the manager (or Docker's
// --cgroup-parent) left beneath it, deepest first; cgroups still holding
// processes stay.
func removeCgroups(dirs []string) {
	for _, dir := range dirs {
		var all []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(all[i])
		}
	}
}
