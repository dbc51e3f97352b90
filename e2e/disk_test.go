package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// hungSource names the FUSE mounts hungMount makes, so that a later run
// can find and remove what an interrupted one left.
const hungSource = "exit137-test-hung"

// hungMount mounts a FUSE filesystem that no server answers: the kernel
// queues its INIT and every request after it, so statfs blocks (only a
// fatal signal ends it) until the mount is torn down. Cleanup unmounts it
// and closes the device, which aborts the connection and wakes every
// waiter with ENOTCONN, the exporter's stuck statfs included.
func hungMount(t *testing.T) string {
	t.Helper()
	sweepHungMounts(t)
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		testrig.Need(t, "open /dev/fuse: %v", err)
	}
	dir := t.TempDir()
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", dev.Fd())
	if err := unix.Mount(hungSource, dir, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		dev.Close()
		testrig.Need(t, "mount a FUSE filesystem on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		dev.Close()
	})
	return dir
}

// sweepHungMounts unmounts the FUSE mounts an interrupted run left (their
// device closed with the process, so they answer ENOTCONN, but stay).
func sweepHungMounts(t *testing.T) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// source target fstype options dump pass
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[0] == hungSource && fields[2] == "fuse" {
			if err := unix.Unmount(fields[1], unix.MNT_DETACH); err == nil {
				t.Logf("removed a FUSE mount an earlier run left: %s", fields[1])
			}
		}
	}
}

// TestHungMountHoldsUpNothing watches a path whose statfs never returns:
// the path shows as stuck, /metrics answers within a second every time,
// and exits, a SIGKILL included, are still counted with their verdicts.
func TestHungMountHoldsUpNothing(t *testing.T) {
	testrig.Docker(t)
	hung := hungMount(t)
	e := testrig.StartExporter(t, append([]string{"--disk.path=" + hung}, fastSettle...)...)
	e.WaitFor(t, 10*time.Second, "exit137_disk_stuck of "+hung, func(m testrig.Metrics) bool {
		v, ok := m.Value("exit137_disk_stuck", map[string]string{"path": hung})
		return ok && v == 1
	})

	var slowest time.Duration
	scrape := func() {
		began := time.Now()
		resp, err := http.Get(e.URL + "/metrics")
		took := time.Since(began)
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		resp.Body.Close()
		slowest = max(slowest, took)
		if took > time.Second {
			t.Errorf("a scrape took %v with a hung mount watched", took)
		}
	}
	for range 5 {
		scrape()
	}

	exits := testrig.UniqueName(t, "hung-exit")
	testrig.Start(t, exits, nil, "-sleep", "300ms", "-exit", "3")
	killed := testrig.UniqueName(t, "hung-kill")
	testrig.Start(t, killed, nil)
	testrig.Run(t, "docker", "kill", killed)
	deadline := time.Now().Add(20 * time.Second)
	for {
		scrape()
		m := e.Scrape(t)
		code3, _ := m.Value("exit137_container_exits_total", exitsOf(exits, "exit_code", "3"))
		manual, _ := m.Value("exit137_container_exits_total", exitsOf(killed, "exit_code", "137", "cause", "manual"))
		if code3 == 1 && manual == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exits not counted with a hung mount watched: exit 3 → %v, docker kill → %v (manual); series %v",
				code3, manual, m.Series("exit137_container_exits_total", map[string]string{"name": killed}))
		}
		time.Sleep(200 * time.Millisecond)
	}
	m := e.Scrape(t)
	if v, _ := m.Value("exit137_source_up", map[string]string{"source": "disk"}); v != 1 {
		t.Errorf("disk source_up = %v: Docker's data root is still measurable", v)
	}
	if _, ok := m.Value("exit137_disk_usage_ratio", map[string]string{"path": hung}); ok {
		t.Errorf("a stuck path has a usage ratio")
	}
	if log := e.Log(); !strings.Contains(log, "does not return") || !strings.Contains(log, hung) {
		t.Errorf("the log does not say the path is stuck:\n%s", e.LogTail(30))
	}
	t.Logf("slowest of the scrapes with %s hung: %v", hung, slowest)
}
