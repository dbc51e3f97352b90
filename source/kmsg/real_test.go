package kmsg

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// hogEnv makes the test binary a memory hog (see TestMain).
const hogEnv = "EXIT137_KMSG_TEST_HOG"

func TestMain(m *testing.M) {
	if os.Getenv(hogEnv) == "1" {
		hog()
	}
	os.Exit(m.Run())
}

// hog waits for a byte on stdin (its parent moves it into a small memory
// cgroup first), then touches 256 MiB until the OOM killer ends it.
func hog() {
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		os.Exit(3)
	}
	mem := make([]byte, 256<<20)
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	os.Exit(4) // not OOM-killed
}

// testCgroup is a memory cgroup made for one test.
type testCgroup struct {
	dir string
	// kernelPath is the cgroup's path as the kernel prints it.
	kernelPath string
}

// makeMemoryCgroup creates a 16 MiB memory cgroup whose path maps to id:
// <v1 memory>/docker/<id> when Docker's cgroupfs parent exists, else a
// top-level docker-<id>.scope (the systemd driver's name), on cgroup v1
// or v2. It is removed in Cleanup. The error says why none could be made.
func makeMemoryCgroup(t *testing.T, id string) (*testCgroup, error) {
	t.Helper()
	const root = "/sys/fs/cgroup"
	var cg testCgroup
	limits := [][2]string{}
	switch {
	case fileExists(filepath.Join(root, "memory", "memory.limit_in_bytes")):
		v1 := filepath.Join(root, "memory")
		if isDir(filepath.Join(v1, "docker")) {
			cg.kernelPath = "/docker/" + id
		} else {
			cg.kernelPath = "/docker-" + id + ".scope"
		}
		cg.dir = filepath.Join(v1, cg.kernelPath)
		limits = append(limits, [2]string{"memory.limit_in_bytes", "16M"})
		if fileExists(filepath.Join(v1, "memory.memsw.limit_in_bytes")) {
			limits = append(limits, [2]string{"memory.memsw.limit_in_bytes", "16M"})
		}
	case fileExists(filepath.Join(root, "cgroup.controllers")):
		controllers, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
		if err != nil || !strings.Contains(" "+string(controllers), " memory") {
			return nil, errors.New("cgroup v2 without the memory controller")
		}
		_ = os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+memory"), 0)
		cg.kernelPath = "/docker-" + id + ".scope"
		cg.dir = filepath.Join(root, cg.kernelPath)
		limits = append(limits, [2]string{"memory.max", "16M"})
		limits = append(limits, [2]string{"memory.swap.max", "0"})
	default:
		return nil, errors.New("no memory cgroup controller under " + root)
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return nil, err
	}
	t.Cleanup(func() { removeCgroup(t, cg.dir) })
	for _, l := range limits {
		p := filepath.Join(cg.dir, l[0])
		if !fileExists(p) {
			continue // memory.swap.max without swap accounting
		}
		if err := os.WriteFile(p, []byte(l[1]), 0); err != nil {
			return nil, err
		}
	}
	return &cg, nil
}

func removeCgroup(t *testing.T, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("cannot remove test cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func isDir(p string) bool { st, err := os.Stat(p); return err == nil && st.IsDir() }

// TestRealKmsgOOMKill makes the kernel OOM-kill a process in a memory
// cgroup named like a container's, and reads the kill from /dev/kmsg. In
// CI (CI=true) a host that cannot do this fails the test.
func TestRealKmsgOOMKill(t *testing.T) {
	unavailable := func(why string, err error) {
		t.Helper()
		testrig.Need(t, "%s: %v", why, err)
	}
	if os.Geteuid() != 0 {
		unavailable("needs root", errors.New("euid "+strconv.Itoa(os.Geteuid())))
	}
	f, err := os.Open(DefaultPath)
	if err != nil {
		unavailable("cannot open the kernel log", err)
	}
	f.Close()

	raw := make([]byte, 30)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	id := "e137" + hex.EncodeToString(raw) // marks the cgroup as this test's
	cg, err := makeMemoryCgroup(t, id)
	if err != nil {
		unavailable("cannot make a memory cgroup", err)
	}
	if got, ok := ContainerIDFromCgroup(cg.kernelPath); !ok || got != id {
		t.Fatalf("ContainerIDFromCgroup(%q) = %q, %v", cg.kernelPath, got, ok)
	}

	sink := newEvidenceSink()
	s, health := startSource(t, DefaultPath, sink)
	start := time.Now()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hogEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if err := os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatalf("move hog into %s: %v", cg.dir, err)
	}
	if _, err := stdin.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	waited = true
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("hog ended with %v, want SIGKILL", err)
	}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog ended with %v, want SIGKILL", err)
	}
	pid := cmd.Process.Pid

	// Other tests on the host may OOM-kill too: wait for ours.
	var e attribution.Evidence
	deadline := time.After(15 * time.Second)
	for e.Container != id {
		select {
		case e = <-sink.ch:
			t.Logf("evidence: %+v", e)
		case <-deadline:
			t.Fatalf("no kernel OOM evidence for %s (cgroup %s)", id, cg.kernelPath)
		}
	}
	if e.Kind != attribution.KindKernelOOM || e.Source != "kmsg" || e.Constraint != "CONSTRAINT_MEMCG" {
		t.Errorf("evidence %+v", e)
	}
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15]
	}
	wantDetail := "kernel oom-kill: task " + comm + " pid " + strconv.Itoa(pid) + " in " + cg.kernelPath + ", constraint CONSTRAINT_MEMCG; "
	if !strings.HasPrefix(e.Detail, wantDetail) {
		t.Errorf("detail %q, want it to start %q", e.Detail, wantDetail)
	}
	if !strings.Contains(e.Detail, "Memory cgroup out of memory: Killed process "+strconv.Itoa(pid)+" (") {
		t.Errorf("detail %q lacks the Killed process line", e.Detail)
	}
	if e.Time.Before(start.Add(-2*time.Second)) || e.Time.After(time.Now().Add(2*time.Second)) {
		t.Errorf("evidence time %v, test ran from %v to %v", e.Time, start, time.Now())
	}
	if got := s.OOMKills()["memcg"]; got < 1 {
		t.Errorf("memcg kills = %d, want ≥ 1", got)
	}
	if health.Events() < 1 || !health.Up() {
		t.Errorf("health: up %v events %d", health.Up(), health.Events())
	}

	// After the fact, the ring buffer still has it.
	hist, err := History(DefaultPath, id)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(hist) != 1 || hist[0].Detail != e.Detail || hist[0].Time.Sub(e.Time).Abs() > 100*time.Millisecond {
		t.Errorf("History = %+v, want %+v", hist, e)
	}
}
