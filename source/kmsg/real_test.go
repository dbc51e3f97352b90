package kmsg

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// The tests named TestReal* need the real host as root: they make memory
// cgroups, OOM-kill processes in them and read /dev/kmsg. `go test -short`
// skips them; without -short they run (scripts/test, CI), and where the
// host cannot give what they need they skip, or fail when CI=true. Each
// first removes what an interrupted run left (realHost) and cleans up
// after itself in t.Cleanup.

// realHost skips a real-host test under -short and, once per run, sweeps
// the leftovers of an interrupted one: cgroups named like this package's
// test containers (e137…), with whatever still runs in them.
func realHost(t *testing.T) {
	t.Helper()
	testrig.SkipInShortLoop(t)
	sweepOnce.Do(func() {
		const root = "/sys/fs/cgroup"
		leftover := regexp.MustCompile(`^(?:docker-)?(e137[0-9a-f]{60})(?:\.scope)?$`)
		testrig.SweepCgroups(t, leftover, filepath.Join(root, "memory"), filepath.Join(root, "memory", "docker"), root)
	})
}

var sweepOnce sync.Once

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
	realHost(t)
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
	for e.Pid != pid {
		select {
		case e = <-sink.ch:
			t.Logf("evidence: %+v", e)
		case <-deadline:
			t.Fatalf("no kernel OOM evidence for pid %d (cgroup %s)", pid, cg.kernelPath)
		}
	}
	if e.Kind != attribution.KindKernelOOM || e.Source != "kmsg" || e.Constraint != "CONSTRAINT_MEMCG" || e.Comm == "" {
		t.Errorf("evidence %+v", e)
	}
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15]
	}
	// The summary is rate-limited (10 per 5s): a run right after another
	// OOM-killing test may see only the Killed line.
	summary := strings.HasPrefix(e.Detail, "kernel oom-kill:")
	if summary {
		wantDetail := "kernel oom-kill: task " + comm + " pid " + strconv.Itoa(pid) + " in " + cg.kernelPath + ", constraint CONSTRAINT_MEMCG; "
		if !strings.HasPrefix(e.Detail, wantDetail) {
			t.Errorf("detail %q, want it to start %q", e.Detail, wantDetail)
		}
		if e.Container != id {
			t.Errorf("container %q, want %s", e.Container, id)
		}
	} else {
		t.Logf("the kernel's oom-kill summary was rate-limited; container by pid: %q", e.Container)
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

	if !summary {
		return // History finds a container's kills by their summary
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

// TestRealKmsgOOMStorm OOM-kills 12 processes, each in its own memory
// cgroup named like a container's, within about a second: more than the
// kernel's rate limit on the oom-kill summary (10 per 5s) lets through,
// so some kills have only their "Killed process" line. Every kill must
// be counted once, and its evidence name its pid, and its container when
// the summary or the victim's /proc/<pid>/cgroup tells it.
func TestRealKmsgOOMStorm(t *testing.T) {
	realHost(t)
	const n = 12
	if os.Geteuid() != 0 {
		testrig.Need(t, "needs root: euid %d", os.Geteuid())
	}
	f, err := os.Open(DefaultPath)
	if err != nil {
		testrig.Need(t, "cannot open the kernel log: %v", err)
	}
	f.Close()

	type hog struct {
		id     string
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		waited bool
	}
	hogs := make([]*hog, n)
	byPid := map[int]*hog{}
	for i := range hogs {
		raw := make([]byte, 30)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		h := &hog{id: "e137" + hex.EncodeToString(raw)}
		cg, err := makeMemoryCgroup(t, h.id) // removed in Cleanup, after the hog is killed
		if err != nil {
			testrig.Need(t, "cannot make a memory cgroup: %v", err)
		}
		h.cmd = exec.Command(os.Args[0], "-test.run=^$")
		h.cmd.Env = append(os.Environ(), hogEnv+"=1")
		if h.stdin, err = h.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := h.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if !h.waited {
				h.cmd.Process.Kill()
				h.cmd.Wait()
			}
		})
		if err := os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(h.cmd.Process.Pid)), 0); err != nil {
			t.Fatalf("move hog into %s: %v", cg.dir, err)
		}
		hogs[i] = h
		byPid[h.cmd.Process.Pid] = h
	}

	sink := newEvidenceSink()
	s, _ := startSourceOpts(t, Options{Path: DefaultPath, ContainerByPID: func(pid int) (string, bool) {
		return ContainerOfPID("", pid)
	}}, sink, nil)
	before := s.OOMKills()["memcg"]
	start := time.Now()
	for _, h := range hogs {
		if _, err := h.stdin.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}

	// A victim's /proc/<pid>/cgroup names its cgroup only until it has
	// exited (on cgroup v1 a zombie shows "/"), so the lookup by pid is a
	// race the exporter may lose: such evidence has the pid alone, for the
	// tracker to join to a container's init. It must never name another
	// container.
	got := map[int]attribution.Evidence{}
	withSummary, byPID := 0, 0
	deadline := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case e := <-sink.ch:
			h, ours := byPid[e.Pid]
			if !ours {
				continue // another OOM kill on this host
			}
			if prev, dup := got[e.Pid]; dup {
				t.Errorf("pid %d twice:\n%+v\n%+v", e.Pid, prev, e)
			}
			got[e.Pid] = e
			switch {
			case strings.HasPrefix(e.Detail, "kernel oom-kill:"):
				withSummary++
				if e.Container != h.id {
					t.Errorf("evidence %+v, want container %s from the summary", e, h.id)
				}
			case e.Container != "":
				byPID++
				if e.Container != h.id {
					t.Errorf("evidence %+v, want container %s or none", e, h.id)
				}
			}
			if e.Constraint != "CONSTRAINT_MEMCG" || e.Kind != attribution.KindKernelOOM || e.Comm == "" {
				t.Errorf("evidence %+v", e)
			}
		case <-deadline:
			t.Fatalf("%d of %d kills seen in the kernel log", len(got), n)
		}
	}
	took := time.Since(start)
	// No late duplicate (a Killed line counted apart from its summary).
	time.Sleep(3 * s.joinWait)
	for len(sink.ch) > 0 {
		if e := <-sink.ch; byPid[e.Pid] != nil {
			t.Errorf("late duplicate %+v", e)
		}
	}
	if kills := s.OOMKills()["memcg"] - before; kills < n {
		t.Errorf("memcg kills rose by %d, want at least %d", kills, n)
	}
	t.Logf("%d kills in %v: %d with the kernel's oom-kill summary, %d without it (%d of them found by pid)",
		n, took.Round(time.Millisecond), withSummary, n-withSummary, byPID)

	for _, h := range hogs {
		err := h.cmd.Wait()
		h.waited = true
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			t.Errorf("hog ended with %v, want SIGKILL", err)
			continue
		}
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("hog ended with %v, want SIGKILL", err)
		}
	}
}
