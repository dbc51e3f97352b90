package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// TestContainerdRig runs a task on the rig's second containerd, kills it
// with SIGKILL through ctr, and checks that Stop leaves nothing behind.
func TestContainerdRig(t *testing.T) {
	testrig.SkipInShortLoop(t)
	c := testrig.StartContainerd(t)
	const ns = "exit137-test"
	c.Run(t, ns, "sleeper", []string{"--memory-limit", strconv.Itoa(64 << 20)})
	pid := c.TaskPID(t, ns, "sleeper")
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("task pid %d does not run", pid)
	}
	c.Ctr(t, ns, "tasks", "kill", "-s", "SIGKILL", "sleeper")
	waitUntil(t, 10*time.Second, "the task to stop", func() bool {
		out, _ := c.TryCtr(ns, "tasks", "ls")
		return strings.Contains(out, "STOPPED")
	})
	if out, err := c.TryCtr(ns, "tasks", "delete", "sleeper"); !strings.Contains(out+errString(err), "137") {
		t.Errorf("ctr tasks delete of the killed task: %q, %v; want exit status 137", out, err)
	}
	c.Stop(t)
	assertRigGone(t, c.Dir, c.Address, pid)
}

// assertRigGone checks that a stopped rig left no directory, mount or
// process (the shims carry the socket in their arguments) and that the
// given pids are gone.
func assertRigGone(t *testing.T, dir, address string, pids ...int) {
	t.Helper()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", dir, err)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), dir) {
		t.Errorf("mounts under %s remain", dir)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), address) {
			t.Errorf("process %s still runs: %q", e.Name(), strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("pid %d still runs", pid)
		}
	}
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
