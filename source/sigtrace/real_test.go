package sigtrace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// TestRealTracefs needs the real host as root: it mounts tracefs, makes
// trace instances and a cgroup, and kills processes. `go test -short`
// skips it; without -short it runs (scripts/test, CI), and where the host
// cannot give what it needs it skips, or fails when CI=true. It first
// removes what an interrupted run left (sweepLeftovers) and cleans up
// after itself in t.Cleanup.

// sweepLeftovers removes what an interrupted run of TestRealTracefs left:
// its trace instances (exit137-test-*, which outlive every mount), the
// tracefs mounts it made in its temporary directories, and its cgroups.
func sweepLeftovers(t *testing.T) {
	t.Helper()
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, line := range strings.Split(string(mounts), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[2] == "tracefs" && strings.HasPrefix(f[1], filepath.Join(os.TempDir(), "TestRealTracefs")) {
				if err := unix.Unmount(f[1], unix.MNT_DETACH); err == nil {
					t.Logf("removed a tracefs mount an interrupted run left: %s", f[1])
				}
			}
		}
	}
	tracefs := t.TempDir()
	if err := unix.Mount("nodev", tracefs, "tracefs", 0, ""); err == nil {
		dirs, _ := filepath.Glob(filepath.Join(tracefs, "instances", "exit137-test-*"))
		for _, dir := range dirs {
			if err := unix.Rmdir(dir); err == nil {
				t.Logf("removed a trace instance an interrupted run left: %s", filepath.Base(dir))
			}
		}
		_ = unix.Unmount(tracefs, unix.MNT_DETACH)
	}
	leftover := regexp.MustCompile(`^docker-(e137[0-9a-f]{60})\.scope$`)
	testrig.SweepCgroups(t, leftover, "/sys/fs/cgroup/unified", "/sys/fs/cgroup")
}

// TestRealTracefs traces real SIGKILLs through a real trace instance: it
// mounts tracefs where it is not mounted, removes a stale instance,
// leaves one in use alone, reads the sender from /proc, maps the target
// to a container by its cgroup, and removes the instance and its mount
// when done.
func TestRealTracefs(t *testing.T) {
	testrig.SkipInShortLoop(t)
	if os.Geteuid() != 0 {
		testrig.Need(t, "needs root (euid %d)", os.Geteuid())
	}
	sweepLeftovers(t)
	raw := make([]byte, 30)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	id := "e137" + hex.EncodeToString(raw) // marks the cgroup as this test's
	instance := "exit137-test-" + id[4:12]

	// A stale instance, as a crashed exporter leaves it, made through a
	// tracefs mount of the test's own.
	other := t.TempDir()
	if err := unix.Mount("nodev", other, "tracefs", 0, ""); err != nil {
		testrig.Need(t, "cannot mount tracefs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(other, unix.MNT_DETACH) })
	stale := filepath.Join(other, "instances", instance)
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Rmdir(stale) })
	if err := os.WriteFile(filepath.Join(stale, eventDir, "enable"), []byte("1"), 0); err != nil {
		t.Fatal(err)
	}

	cgroup := makeCgroup(t, id)
	root := t.TempDir() // not a tracefs: the source mounts one here
	evidence := make(chan attribution.Evidence, 16)
	health := source.NewRegistry().Source(SourceName)
	s := New(Options{Tracefs: root, Instance: instance}, source.SinkFunc(func(e attribution.Evidence) { evidence <- e }), health, testrig.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done }) // before the temporary dirs go
	for !health.Up() {
		select {
		case err := <-done:
			t.Fatalf("Run: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if got := readFile(t, filepath.Join(stale, eventDir, "filter")); strings.TrimSpace(got) != filter {
		t.Errorf("filter %q, want %q (a fresh instance in place of the stale one)", got, filter)
	}
	if got := readFile(t, filepath.Join(stale, "options", "record-tgid")); strings.TrimSpace(got) != "1" {
		t.Errorf("record-tgid %q, want 1 (the senders' processes)", got)
	}

	// A second source on the same instance stays down and leaves it be.
	busy := New(Options{Tracefs: other, Instance: instance}, nil, source.NewRegistry().Source(SourceName), testrig.Logger(t))
	if err := busy.Run(ctx); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("a second reader: %v, want EBUSY", err)
	}

	inside, outside := startSleep(t), startSleep(t)
	if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(inside.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	// A shell without a terminal kills both and stays a second, so that
	// it can be read. It gives itself a login uid where it may.
	sh := exec.Command("sh", "-c", `echo 1000 > /proc/self/loginuid 2>/dev/null; cat /proc/$$/loginuid; kill -9 "$1" "$2"; sleep 1`,
		"sh", strconv.Itoa(inside.Process.Pid), strconv.Itoa(outside.Process.Pid))
	sh.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	for _, p := range []*exec.Cmd{inside, outside} {
		if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("sleep %d ended with %v, want killed", p.Process.Pid, err)
		}
	}

	class, login := ClassOther, ""
	if lu := strings.TrimSpace(string(out)); lu != strconv.Itoa(noLoginUID) {
		class, login = ClassUser, ", login uid "+lu
	}
	exe, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	// Other tests on the host kill too: collect a while, then look for
	// ours.
	var ours []attribution.Evidence
	outsideTarget := "target sleep (pid " + strconv.Itoa(outside.Process.Pid) + ")"
	for deadline := time.After(2 * time.Second); ; {
		var e attribution.Evidence
		select {
		case e = <-evidence:
		case <-deadline:
		}
		if e.Container == "" {
			break
		}
		switch {
		case e.Container == id:
			ours = append(ours, e)
		case strings.HasSuffix(e.Detail, outsideTarget):
			t.Errorf("evidence for a host process: %+v", e)
		}
	}
	// The parent chain goes on past the test binary to go test.
	prefix := "sh (pid " + strconv.Itoa(sh.Process.Pid) + ", uid 0" + login + "), " + exe + ", parent " + testComm()
	suffix := ", target sleep (pid " + strconv.Itoa(inside.Process.Pid) + ")"
	if len(ours) != 1 {
		t.Fatalf("evidence for %s: %+v, want one", id, ours)
	}
	if e := ours[0]; e.Kind != attribution.KindSignal || e.Signal != 9 || e.Sender != class || e.Source != SourceName ||
		!strings.HasPrefix(e.Detail, prefix) || !strings.HasSuffix(e.Detail, suffix) {
		t.Errorf("evidence %+v\nwant sender %s, detail %q...%q", e, class, prefix, suffix)
	}
	if e := ours[0]; e.Pid != inside.Process.Pid || e.Comm != "sleep" || e.Code != 0 || e.SenderContainer != "" {
		t.Errorf("evidence %+v\nwant target pid %d, comm sleep, code 0 (SI_USER), a sender on the host", e, inside.Process.Pid)
	}
	if got := s.SIGKILLs()[class]; got < 2 {
		t.Errorf("%s SIGKILLs %d, want at least our 2 (%v)", class, got, s.SIGKILLs())
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	done <- nil // for the cleanup
	if isDir(stale) {
		t.Error("the instance is left after the source stopped")
	}
	if isDir(filepath.Join(root, "instances")) {
		t.Error("the source left its tracefs mount")
	}
}

// testComm is this test binary's comm (15 bytes at most).
func testComm() string {
	comm := filepath.Base(os.Args[0])
	return comm[:min(len(comm), 15)]
}

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// makeCgroup makes a cgroup named like a systemd-driver container's,
// docker-<id>.scope, in the unified (v2) hierarchy, where an exited
// process keeps its path until it is reaped, and removes it when the test
// ends.
func makeCgroup(t *testing.T, id string) string {
	t.Helper()
	parent := "/sys/fs/cgroup/unified" // hybrid
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		parent = "/sys/fs/cgroup" // v2
	}
	dir := filepath.Join(parent, "docker-"+id+".scope")
	if err := os.Mkdir(dir, 0o755); err != nil {
		testrig.Need(t, "cannot make a cgroup v2 cgroup: %v", err)
	}
	t.Cleanup(func() {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("cannot remove test cgroup %s: %v", dir, err)
				return
			}
		}
	})
	return dir
}
