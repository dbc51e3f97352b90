package main

import (
	"bytes"
	"context"
	"flag"
	"github.com/alecthomas/kingpin/v2"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/collector"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/source/disk"
	"github.com/exit137-exporter/exit137-exporter/source/kmsg"
	"github.com/exit137-exporter/exit137-exporter/source/sigtrace"
	"github.com/exit137-exporter/exit137-exporter/source/systemd"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

var update = flag.Bool("update", false, "rewrite the golden /metrics files")

// goldenTrees maps each fixture tree to its golden file; the v1-cgroupfs
// one, the layout of the project's own hosts, is the one the rules and
// dashboards are checked against.
var goldenTrees = map[string]string{
	"v1-cgroupfs": "e2e-output.prom",
	"v1-systemd":  "e2e-output-v1-systemd.prom",
	"v2-systemd":  "e2e-output-v2-systemd.prom",
	"v2-cgroupfs": "e2e-output-v2-cgroupfs.prom",
}

// TestGoldenMetrics runs the exporter's whole /metrics over each fixture
// tree with a tracker that has seen one exit of every cause, and compares
// it with the checked-in file: every metric change is a reviewed diff.
// Run `go test ./cmd/exit137-exporter -run Golden -update` to rewrite.
func TestGoldenMetrics(t *testing.T) {
	for tree, golden := range goldenTrees {
		t.Run(tree, func(t *testing.T) {
			got := scrapeFixture(t, filepath.Join(testrig.RepoRoot(), "cgroupfs", "testdata", tree))
			path := filepath.Join(testrig.RepoRoot(), "testdata", golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("/metrics over %s differs from %s; run `go test ./cmd/exit137-exporter -run Golden -update` and review the diff\n%s",
					tree, golden, firstDiff(string(want), string(got)))
			}
			promtoolCheckMetrics(t, got)
		})
	}
}

// seedTime is when the seeded story starts; fixed, so the golden
// timestamps are too.
var seedTime = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func scrapeFixture(t *testing.T, root string) []byte {
	// The --collector.<name> flags take their defaults when parsed.
	if _, err := kingpin.CommandLine.Parse(nil); err != nil {
		t.Fatal(err)
	}
	fs, err := cgroupfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	containers, err := fs.DockerContainers()
	if err != nil || len(containers) < 2 {
		t.Fatalf("fixture %s: %v containers, err %v", root, len(containers), err)
	}
	logger := slog.New(slog.DiscardHandler)
	sources := source.NewRegistry()
	for _, name := range []string{"cgroupfs", "docker"} {
		sources.Source(name).SetUp(true, logger, nil)
	}
	tr := storyTracker(t, tracker.Config{Window: 30 * time.Second, Retention: time.Hour}, containers[0].ID, containers[1].ID)
	deps := collector.Deps{
		Logger: logger, Sources: sources, Tracker: tr, Cgroups: &fs,
		Kmsg: replayKernelLog(t, sources.Source("kmsg")),
		Disk: disk.New([]string{"/"}, 0.95, sources.Source("disk"), logger),
		// Built, never run: its counters stand at their pre-initialised zeros.
		Sigtrace: sigtrace.New(sigtrace.Options{}, tr, sources.Source(sigtrace.SourceName), logger),
		Systemd:  seededStops{{Unit: "cache.service", PartOf: "front.service"}: 1},
	}
	deps.Disk.Usage() // as serve does: the disk source's health is set before the first scrape
	handler, err := collector.Handler(deps, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return normalise(rec.Body.Bytes())
}

// storyTracker is a tracker that has watched since before seedStory's
// story (as one resumed from its saved state would have), fed the story.
func storyTracker(t *testing.T, cfg tracker.Config, busy, limited string) *tracker.Tracker {
	t.Helper()
	tr := tracker.New(cfg, slog.New(slog.DiscardHandler))
	state := filepath.Join(t.TempDir(), "state.json")
	cursor := seedTime.Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	if err := os.WriteFile(state, []byte(`{"version": 1, "cursor": "`+cursor+`", "entries": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tr.LoadState(state); err != nil {
		t.Fatal(err)
	}
	seedStory(tr, busy, limited)
	return tr
}

// seedStory feeds the tracker what the Docker and kernel sources would
// have: one exit of every cause. busy and limited are containers of the
// fixture tree (running again after their exit).
func seedStory(tr *tracker.Tracker, busy, limited string) {
	at := func(minutes int) time.Time { return seedTime.Add(time.Duration(minutes) * time.Minute) }
	type death struct {
		id, name, image string
		code            int
		evidence        []attribution.Evidence
		meta            tracker.Meta
		restart, remove bool
	}
	hex := func(c byte) string { return string(bytes.Repeat([]byte{c}, 64)) }
	deaths := []death{
		{id: limited, name: "worker", image: "acme/worker:2.1", code: 137, restart: true,
			meta:     tracker.Meta{ComposeProject: "shop", ComposeService: "worker"},
			evidence: []attribution.Evidence{{Kind: attribution.KindDockerOOM, Source: "docker", Detail: "docker event: oom"}}},
		{id: busy, name: "web", image: "nginx:1.27", code: 0, restart: true},
		{id: hex('a'), name: "batch", image: "acme/batch:7", code: 137,
			evidence: []attribution.Evidence{{Kind: attribution.KindDockerKill, Signal: 9, Source: "docker", Detail: "docker event: kill, signal 9"}}},
		{id: hex('b'), name: "cron-once", image: "acme/cron:1", code: 137, remove: true},
		{id: hex('c'), name: "cache", image: "redis:7", code: 137, meta: tracker.Meta{SystemdUnit: "cache.service"},
			evidence: []attribution.Evidence{{Kind: attribution.KindSystemdPartOf, Source: "systemd", Unit: "cache.service", PartOf: "front.service", Detail: "front.service stopped → cache.service stopped (PartOf=front.service)"}}},
		{id: hex('d'), name: "ingest", image: "acme/ingest:3", code: 137,
			evidence: []attribution.Evidence{{Kind: attribution.KindDiskPressure, Source: "disk", Detail: "/var/lib/docker 97.0% used (threshold 95%)"}}},
		{id: hex('e'), name: "parser", image: "acme/parser:5", code: 139},
		{id: hex('f'), name: "shop/web-0/app", image: "registry.local/app:1", code: 137, restart: true,
			meta: tracker.Meta{Namespace: "shop", Pod: "web-0", PodUID: "7f1c1d3e-4b2a-4c8e-9d61-0a1b2c3d4e5f", Container: "app"},
			evidence: []attribution.Evidence{{Kind: attribution.KindKubeProbe, Source: "kubernetes",
				Detail: "event Killing: Container app failed liveness probe, will be restarted"}}},
	}
	for i, d := range deaths {
		start, died := at(i*10), at(i*10+5)
		meta := d.meta
		meta.ID, meta.Name, meta.Image = d.id, d.name, d.image
		tr.Upsert(meta)
		tr.Started(d.id, start)
		for _, e := range d.evidence {
			if e.Kind != attribution.KindDiskPressure {
				e.Container = d.id
			}
			e.Time = died.Add(-time.Second)
			tr.AddEvidence(e)
		}
		tr.Died(d.id, died, d.code)
		tr.Wait()
		if d.restart {
			tr.Started(d.id, died.Add(time.Second))
		}
		if d.remove {
			tr.Removed(d.id, died.Add(time.Second))
		}
	}
}

// seededStops is the systemd source's count for the seeded cache.service
// exit.
type seededStops map[systemd.StopKey]uint64

func (s seededStops) PartOfStops() map[systemd.StopKey]uint64 { return s }

// kernelLog is what /dev/kmsg printed for a memcg OOM kill on this
// project's hosts, and a host-wide one.
const kernelLog = `6,1474,548363451,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/docker/b8dc0741e7bb8d21a7448602255e9453a62a86970e1d5e648c6049791c9507d8,task_memcg=/docker/b8dc0741e7bb8d21a7448602255e9453a62a86970e1d5e648c6049791c9507d8,task=worker,pid=12685,uid=0
3,1475,548363470,-;Memory cgroup out of memory: Killed process 12685 (worker) total-vm:221368kB, anon-rss:16128kB, file-rss:6500kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0
6,1480,548999000,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/cron.service,task=backup,pid=13000,uid=0
3,1481,548999020,-;Out of memory: Killed process 13000 (backup) total-vm:9221368kB, anon-rss:9016128kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:18100kB oom_score_adj:0
`

// replayKernelLog runs the real kmsg source over a file that receives the
// recorded lines after the source has started at its end.
func replayKernelLog(t *testing.T, health *source.Health) *kmsg.Source {
	path := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	src := kmsg.New(kmsg.Options{Path: path}, nil, health, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = src.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for !health.Up() {
		time.Sleep(10 * time.Millisecond)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(f, kernelLog)
	f.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		total := uint64(0)
		for _, n := range src.OOMKills() {
			total += n
		}
		if total == 2 {
			return src
		}
	}
	t.Fatal("the kmsg source did not read the replayed kernel log")
	return nil
}

// normalise blanks what differs from run to run and machine to machine:
// collector durations, the Go version, and the disk ratios of "/".
var volatile = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?m)^(exit137_scrape_collector_duration_seconds\{[^}]*\}) .*$`), "$1 0"},
	{regexp.MustCompile(`(?m)^(exit137_disk_(?:inodes_)?usage_ratio\{[^}]*\}) .*$`), "$1 0.5"},
	{regexp.MustCompile(`goversion="[^"]*"`), `goversion="go"`},
}

func normalise(b []byte) []byte {
	for _, v := range volatile {
		b = v.re.ReplaceAll(b, []byte(v.repl))
	}
	return b
}

func firstDiff(want, got string) string {
	w, g := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl []byte
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if !bytes.Equal(wl, gl) {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + string(wl) + "\n  got:  " + string(gl)
		}
	}
	return ""
}

// promtoolCheckMetrics lints the output as `promtool check metrics` does.
func promtoolCheckMetrics(t *testing.T, metrics []byte) {
	if _, err := exec.LookPath("promtool"); err != nil {
		testrig.Need(t, "promtool (Debian package prometheus) is not installed")
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(metrics)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
