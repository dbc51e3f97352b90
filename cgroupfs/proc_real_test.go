package cgroupfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// TestRealPathOfPID finds a process in a memory cgroup of a custom
// parent, as `docker run --cgroup-parent` makes one, on this host's real
// cgroup filesystem and /proc, then sees it exit: a zombie, then gone.
//
// It needs the real host as root; `go test -short` skips it. It first
// removes the parents an interrupted run left (exit137-test-*, killing
// what still runs in them) and cleans up after itself in t.Cleanup.
func TestRealPathOfPID(t *testing.T) {
	testrig.SkipInShortLoop(t)
	if os.Geteuid() != 0 {
		testrig.Need(t, "needs root (euid %d)", os.Geteuid())
	}
	f, err := NewFS(DefaultMountPoint)
	if err != nil {
		testrig.Need(t, "no cgroup filesystem: %v", err)
	}
	sweepTestParents(t, f.MemoryRoot())
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(raw)
	parent := "exit137-test-" + id[:12]
	rel := parent + "/" + id
	if f.Mode().V2() {
		parent += ".slice"
		rel = parent + "/docker-" + id + ".scope"
	}
	dir := filepath.Join(f.MemoryRoot(), rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		testrig.Need(t, "cannot make a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		for _, d := range []string{dir, filepath.Dir(dir)} {
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if err := unix.Rmdir(d); err == nil || errors.Is(err, unix.ENOENT) {
					break
				} else if time.Now().After(deadline) {
					t.Errorf("cannot remove %s: %v", d, err)
					break
				}
			}
		}
	})
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}

	if _, err := f.ContainerPath(id); !errors.Is(err, ErrNotExist) {
		t.Errorf("ContainerPath found a custom parent: %v", err)
	}
	got, err := f.ContainerPathFor("/proc", id, pid)
	if got != rel || err != nil {
		t.Fatalf("ContainerPathFor = %q, %v; want %q", got, err, rel)
	}
	if _, err := f.Memory(got); err != nil {
		t.Errorf("Memory(%q): %v", got, err)
	}

	// Killed, not yet reaped: a zombie. Its v1 paths read "/"; its v2
	// path stays until it is reaped.
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !zombie("/proc", pid); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the killed process did not become a zombie")
		}
	}
	got, err = f.PathOfPID("/proc", pid)
	switch {
	case f.Mode().V2() && got != rel:
		t.Errorf("zombie on v2: PathOfPID = %q, %v; want %q", got, err, rel)
	case !f.Mode().V2() && (!errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "has exited")):
		t.Errorf("zombie on v1: PathOfPID = %q, %v; want a has-exited error", got, err)
	}
	_ = cmd.Wait()
	reaped = true
	if got, err := f.ContainerPathFor("/proc", id, pid); !errors.Is(err, ErrNotExist) {
		t.Errorf("reaped: ContainerPathFor = %q, %v; want not found", got, err)
	}
}

// sweepTestParents removes the custom parents an interrupted run of
// TestRealPathOfPID left under the memory root.
func sweepTestParents(t *testing.T, memoryRoot string) {
	testrig.SweepCgroups(t, regexp.MustCompile(`^exit137-test-[0-9a-f]{12}(?:\.slice)?$`), memoryRoot)
}
