package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// containerFamilies are the metric families with one series per container.
var containerFamilies = []string{
	"exit137_container_info",
	"exit137_container_memory_usage_bytes",
	"exit137_container_memory_working_set_bytes",
	"exit137_container_memory_limit_bytes",
	"exit137_container_memory_max_usage_bytes",
	"exit137_container_memory_limit_hits_total",
	"exit137_container_oom_kills_total",
}

// TestImageMatchesHostBinary builds the image with scripts/build-image (no
// pulls), runs it the two ways the Dockerfile documents (--pid host
// both), and checks that the containerised exporter shows the same
// container series as the binary on the host, and which sources each way
// can use; run as root with every source, it must give the same verdicts
// with the same senders as the host binary for an OOM kill, a docker kill
// and a host kill -9.
func TestImageMatchesHostBinary(t *testing.T) {
	testrig.Docker(t)
	image := "exit137-exporter:e2e"
	testrig.Run(t, filepath.Join(testrig.RepoRoot(), "scripts", "build-image"), image)
	t.Cleanup(func() { _, _ = testrig.Try("docker", "rmi", image) })

	probe := testrig.UniqueName(t, "probe")
	testrig.Start(t, probe, []string{"--memory", "48m"}, "-alloc", "8")
	// Both trace, each in its own instance (exit137-<host pid>).
	host := testrig.StartExporter(t)
	tracefs := hostTracefs(t)

	gid := testrig.Run(t, "stat", "-c", "%g", testrig.DockerSocket())
	restrict, err := os.ReadFile("/proc/sys/kernel/dmesg_restrict")
	if err != nil {
		t.Fatal(err)
	}
	kmsgArgs, kmsgUp := []string{"--kmsg.path="}, "absent" // the documented non-root run where dmesg_restrict=1
	if strings.TrimSpace(string(restrict)) == "0" {
		kmsgArgs, kmsgUp = nil, "1"
	}
	// The two ways the Dockerfile documents. systemd stays down in both:
	// this host has no system bus to mount.
	modes := []struct {
		name, uid     string
		docker, flags []string
		up            map[string]string // source → 1, 0 or absent
		verdicts      bool              // compare verdicts with the host binary's
	}{
		{"non-root", "65534", []string{"--group-add", gid},
			append([]string{"--no-sigtrace.enable"}, kmsgArgs...),
			map[string]string{"kmsg": kmsgUp, "sigtrace": "absent"}, false},
		{"root-with-only-CAP_SYSLOG", "0",
			[]string{"--user", "0", "--cap-drop", "ALL", "--cap-add", "SYSLOG", "--device", "/dev/kmsg",
				"-v", tracefs + ":/host/sys/kernel/tracing"},
			[]string{"--tracefs.path=/host/sys/kernel/tracing"},
			map[string]string{"kmsg": "1", "sigtrace": "1"}, true},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			// --network host with a loopback listen address: Prometheus must
			// reach it, and the test containers get no network of their own.
			addr := testrig.FreeAddr(t)
			name := testrig.UniqueName(t, "image")
			args := append([]string{"run", "-d", "--name", name, "--label", testrig.OwnLabel,
				"--network", "host", "--read-only", "--pid", "host", "--cgroupns", "host",
				"-v", testrig.DockerSocket() + ":/var/run/docker.sock:ro",
				"-v", "/sys/fs/cgroup:/host/sys/fs/cgroup:ro",
				"-v", "/var/lib/docker:/var/lib/docker:ro"}, mode.docker...)
			args = append(append(args, image, "--cgroup.root=/host/sys/fs/cgroup", "--web.listen-address="+addr), mode.flags...)
			t.Cleanup(func() {
				if t.Failed() {
					logs, _ := testrig.Try("docker", "logs", name)
					t.Logf("containerised exporter log:\n%s", logs)
				}
				_, _ = testrig.Try("docker", "stop", name) // SIGTERM: it removes its trace instance
				_, _ = testrig.Try("docker", "rm", "-f", name)
			})
			testrig.Run(t, "docker", args...)
			if top := strings.Fields(testrig.Run(t, "docker", "top", name, "-o", "pid,uid")); top[len(top)-1] != mode.uid {
				t.Errorf("exporter runs as uid %v, want %s", top, mode.uid)
			}
			boxed := &testrig.Exporter{URL: "http://" + addr}
			waitAnswers(t, boxed)

			var onHost, inBox map[string][]string
			deadline := time.Now().Add(30 * time.Second)
			for {
				inBox, onHost = containerSeries(boxed.Scrape(t)), containerSeries(host.Scrape(t))
				if reflect.DeepEqual(inBox, onHost) && hasSeries(inBox, probe) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("container series differ:\nin the image: %v\non the host:   %v", inBox, onHost)
				}
				time.Sleep(500 * time.Millisecond)
			}
			t.Logf("same series in the image and on the host: %d containers, %d limited",
				len(inBox["exit137_container_info"]), len(inBox["exit137_container_memory_limit_bytes"]))
			if v, _ := boxed.Scrape(t).Value("exit137_container_memory_limit_bytes", map[string]string{"name": probe}); v != 48<<20 {
				t.Errorf("limit of %s = %v in the image, want %d", probe, v, 48<<20)
			}

			want := map[string]string{"docker": "1", "cgroupfs": "1", "disk": "1", "systemd": "0"}
			for source, up := range mode.up {
				want[source] = up
			}
			boxed.WaitFor(t, 15*time.Second, fmt.Sprintf("sources up as %v", want), func(m testrig.Metrics) bool {
				got := map[string]string{}
				for source := range want {
					got[source] = "absent"
					if v, ok := m.Value("exit137_source_up", map[string]string{"source": source}); ok {
						got[source] = fmt.Sprint(v)
					}
				}
				return reflect.DeepEqual(got, want)
			})
			if mode.verdicts {
				sameVerdicts(t, host, boxed)
			}
		})
	}
}

// sameVerdicts kills three containers, by the OOM killer, docker kill and
// a host kill -9 of the init, and checks that both exporters give each
// the same verdict from the same evidence, senders and pids included.
func sameVerdicts(t *testing.T, host, boxed *testrig.Exporter) {
	t.Helper()
	oom := testrig.UniqueName(t, "img-oom")
	testrig.Start(t, oom, []string{"--memory", "32m", "--memory-swap", "32m"}, "-alloc", "200")
	killed := testrig.UniqueName(t, "img-dkill")
	testrig.Start(t, killed, nil)
	testrig.Run(t, "docker", "kill", killed)
	hostKilled := testrig.UniqueName(t, "img-kill9")
	testrig.Start(t, hostKilled, nil)
	testrig.Run(t, "kill", "-9", testrig.PID(t, hostKilled))

	want := map[string]attribution.Cause{oom: attribution.CauseOOM, killed: attribution.CauseManual, hostKilled: attribution.CauseManual}
	for name, cause := range want {
		onHost, inBox := verdictOf(t, host, name), verdictOf(t, boxed, name)
		h, b := verdictKey(onHost), verdictKey(inBox)
		t.Logf("%s: host binary %s (%s)\n  image       %s (%s)", name, onHost.Cause, onHost.Summary, inBox.Cause, inBox.Summary)
		if onHost.Cause != cause {
			t.Errorf("%s: the host binary says %s, want %s: %s", name, onHost.Cause, cause, onHost.Summary)
		}
		if h != b {
			t.Errorf("%s: verdicts differ\nhost binary: %s\nimage:       %s", name, h, b)
		}
	}
}

// verdictKey is what two exporters watching one host must agree on: the
// verdict, its rule and strength, and each piece of evidence by source,
// kind, sender class, pid, comm, si_code, sender's container and weight
// (not the times, which each stamps as it reads, nor the details, where
// an executable path the container may not read can differ).
func verdictKey(v attribution.Verdict) string {
	items := make([]string, 0, len(v.Evidence))
	for _, c := range v.Evidence {
		items = append(items, fmt.Sprintf("%s/%s sender=%s pid=%d comm=%s code=%d from=%.12s decisive=%v strength=%s",
			c.Source, c.Kind, c.Sender, c.Pid, c.Comm, c.Code, c.SenderContainer, c.Decisive, c.Strength))
	}
	sort.Strings(items)
	return fmt.Sprintf("%s %s rule=%s strength=%s exit=%d pid=%d [%s]", v.Cause, v.Signal, v.Rule, v.Strength,
		v.Exit.ExitCode, v.Exit.Pid, strings.Join(items, "; "))
}

// hostTracefs is the host's tracefs at /sys/kernel/tracing, mounted for
// the test (and unmounted after) when nothing mounted it.
func hostTracefs(t *testing.T) string {
	t.Helper()
	const path = "/sys/kernel/tracing"
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err == nil && fs.Type == unix.TRACEFS_MAGIC {
		return path
	}
	if err := unix.Mount("nodev", path, "tracefs", 0, ""); err != nil {
		testrig.Need(t, "cannot mount tracefs at %s: %v", path, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(path, unix.MNT_DETACH) })
	return path
}

// containerSeries lists, per container metric family, the label sets of
// its series, and the limits' values (the only per-container values that
// do not move by themselves).
func containerSeries(m testrig.Metrics) map[string][]string {
	out := map[string][]string{}
	for _, family := range containerFamilies {
		out[family] = m.Series(family, nil)
		if family != "exit137_container_memory_limit_bytes" {
			for i, s := range out[family] {
				out[family][i] = s[:strings.LastIndex(s, "}")+1]
			}
		}
	}
	return out
}

func hasSeries(series map[string][]string, name string) bool {
	for _, s := range series["exit137_container_memory_limit_bytes"] {
		if strings.Contains(s, "name="+name+",") || strings.Contains(s, "name="+name+"}") {
			return true
		}
	}
	return false
}

// waitAnswers waits until an exporter started elsewhere serves /metrics.
func waitAnswers(t *testing.T, e *testrig.Exporter) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(e.URL + "/metrics"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the containerised exporter does not answer on %s", e.URL)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
