package containerd

import (
	"strings"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// On a real containerd: every death of a task's init counted once, with
// its code, live and across cuts; an exec's exit never, nor a death in a
// namespace not followed; an OOM kill with containerd's /tasks/oom as its
// evidence.
func TestRealContainerdCountsEachDeathOnce(t *testing.T) {
	testrig.SkipInShortLoop(t)
	c := testrig.StartContainerd(t)
	const ns = "exit137-test"
	h := newHarnessAt(t, Options{Address: c.Address, Namespaces: []string{ns}})
	kill := func(id string) { c.Ctr(t, ns, "task", "kill", "-s", "SIGKILL", id) }
	waitStopped := func(id string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !taskStopped(c.Ctr(t, ns, "task", "ls"), id) {
			if time.Now().After(deadline) {
				t.Fatalf("task %s did not stop:\n%s", id, c.Ctr(t, ns, "task", "ls"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	h.connect()
	c.Run(t, ns, "killed", nil)
	kill("killed")
	c.Run(t, ns, "probed", nil)
	// An exec that exits 3, as a failing exec probe does: its exit is not
	// the container's.
	if out, err := c.TryCtr(ns, "task", "exec", "--exec-id", "probe-1", "probed", "/helper", "-exit", "3"); err == nil {
		t.Fatalf("the exec exited 0, want 3: %s", out)
	}
	c.Run(t, ns, "exits-7", nil, "-sleep", "100ms", "-exit", "7")
	c.Run(t, ns, "oom", []string{"--memory-limit", "33554432"}, "-alloc", "200")
	// A namespace not followed (as Docker's moby is not): its deaths are
	// not this source's.
	c.Run(t, "elsewhere", "other", nil)
	c.Ctr(t, "elsewhere", "task", "kill", "-s", "SIGKILL", "other")
	h.awaitExits(map[string]uint64{"killed 137 unknown": 1, "exits-7 7 none": 1, "oom 137 oom": 1})

	// Cut: what happens now is seen by no event.
	h.disconnect()
	kill("probed")
	waitStopped("probed")
	c.Run(t, ns, "exits-5-in-cut", nil, "-exit", "5")
	waitStopped("exits-5-in-cut")
	c.Run(t, ns, "killed-after-cut", nil)
	h.connect()
	kill("killed-after-cut")
	want := map[string]uint64{"killed 137 unknown": 1, "exits-7 7 none": 1, "oom 137 oom": 1,
		"probed 137 unknown": 1, "exits-5-in-cut 5 none": 1, "killed-after-cut 137 unknown": 1}
	h.awaitExits(want)

	// Heal again with nothing new: the reconcile finds the same stopped
	// tasks and counts none of them again.
	h.disconnect()
	h.connect()
	h.awaitExits(want)
}

// taskStopped reports whether ctr task ls shows id STOPPED.
func taskStopped(ls, id string) bool {
	for _, line := range strings.Split(ls, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id && f[2] == "STOPPED" {
			return true
		}
	}
	return false
}
