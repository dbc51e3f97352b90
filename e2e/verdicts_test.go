package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// The verdict is about the death of the container's init. These tests
// make each case of the rules happen on the real kernel and daemon, and
// log what every source said, for docs/scenarios.md.

// limit32 is a container memory limit that a 200 MiB allocation passes.
var limit32 = []string{"--memory", "32m", "--memory-swap", "32m"}

// explained is a verdict as /explain serves it. Strength is read by its
// JSON name, so the tests compile before and after the field lands in
// attribution.Verdict.
type explained struct {
	attribution.Verdict
	Strength string `json:"strength"`
}

// requireExplained is requireVerdict, plus the verdict's strength
// ("" accepts any of the three).
func requireExplained(t *testing.T, e *testrig.Exporter, name string, cause attribution.Cause, code, strength string, kinds ...attribution.Kind) explained {
	t.Helper()
	requireVerdict(t, e, name, cause, code, kinds...)
	var body struct{ Verdicts []explained }
	if err := json.Unmarshal([]byte(e.Get(t, "/explain?container="+name)), &body); err != nil || len(body.Verdicts) == 0 {
		t.Fatalf("/explain for %s: %v, %d verdicts", name, err, len(body.Verdicts))
	}
	v := body.Verdicts[0]
	switch {
	case strength == "" && v.Strength != "decisive" && v.Strength != "strong" && v.Strength != "weak":
		t.Errorf("%s: strength %q, want decisive, strong or weak", name, v.Strength)
	case strength != "" && v.Strength != strength:
		t.Errorf("%s: strength %q, want %q; summary %q", name, v.Strength, strength, v.Summary)
	}
	return v
}

// summaryHas checks that the summary says each of words (case-folded).
func summaryHas(t *testing.T, v explained, words ...string) {
	t.Helper()
	low := strings.ToLower(v.Summary)
	for _, w := range words {
		if !strings.Contains(low, strings.ToLower(w)) {
			t.Errorf("%s: summary %q does not say %q", v.Exit.Name, v.Summary, w)
		}
	}
}

// notTheCause matches a summary saying the child's OOM kill did not end
// the container.
var notTheCause = regexp.MustCompile(`(?i)\bnot\b|n't\b`)

// gap is how a summary states a time before the death.
var gap = regexp.MustCompile(`(\d+\.\d)s before`)

// waitSources waits until the named sources deliver.
func waitSources(t *testing.T, e *testrig.Exporter, sources ...string) {
	t.Helper()
	e.WaitFor(t, 20*time.Second, "sources "+strings.Join(sources, ", ")+" up", func(m testrig.Metrics) bool {
		for _, s := range sources {
			if v, _ := m.Value("exit137_source_up", map[string]string{"source": s}); v != 1 {
				return false
			}
		}
		return true
	})
}

// startVerdictExporter starts the exporter with every source these tests
// read evidence from.
func startVerdictExporter(t *testing.T) *testrig.Exporter {
	t.Helper()
	e := testrig.StartExporter(t, fastSettle...)
	waitSources(t, e, "docker", "kmsg", "sigtrace")
	return e
}

// waitChildOOM waits until the container's child says the OOM killer
// ended it.
func waitChildOOM(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs, _ := testrig.Try("docker", "logs", name)
		if strings.Contains(logs, "child ended: signal: killed") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the child was not OOM-killed within 30s; logs:\n%s", name, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cgroupOOMKills reads oom_kill from a running container's v1 memory
// cgroup (parent "" is docker's default).
func cgroupOOMKills(id, parent string) string {
	if parent == "" {
		parent = "/docker"
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", parent, id, "memory.oom_control"))
	if err != nil {
		return "unreadable (" + err.Error() + ")"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == "oom_kill" {
			return v
		}
	}
	return "absent"
}

// kmsgWatch keeps the kernel log lines printed from its start on.
type kmsgWatch struct {
	mu    sync.Mutex
	lines []string
	start time.Time
}

// watchKmsg reads /dev/kmsg from its end until the test ends.
func watchKmsg(t *testing.T) *kmsgWatch {
	t.Helper()
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		testrig.Need(t, "cannot read /dev/kmsg: %v", err)
	}
	if _, err := syscall.Seek(fd, 0, 2); err != nil {
		syscall.Close(fd)
		t.Fatalf("seeking /dev/kmsg: %v", err)
	}
	w := &kmsgWatch{start: time.Now()}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 8192)
		for {
			n, err := syscall.Read(fd, buf)
			switch {
			case err == syscall.EAGAIN:
				select {
				case <-done:
					return
				case <-time.After(20 * time.Millisecond):
				}
				continue
			case err == syscall.EPIPE: // overwritten records: read on
				continue
			case err != nil:
				return
			}
			rec := buf[:n]
			if i := bytes.IndexByte(rec, ';'); i >= 0 {
				rec = rec[i+1:]
			}
			if i := bytes.IndexByte(rec, '\n'); i >= 0 {
				rec = rec[:i]
			}
			w.mu.Lock()
			w.lines = append(w.lines, string(rec))
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(done); <-stopped; syscall.Close(fd) })
	return w
}

var (
	killedLine  = regexp.MustCompile(`Killed process (\d+) \(([^)]*)\)`)
	summaryLine = regexp.MustCompile(`oom-kill:constraint=(\w+),.*task_memcg=([^,]*),task=([^,]*),pid=(\d+)`)
)

// kmsgOOM is what the kernel said about OOM kills since the watch began.
type kmsgOOM struct {
	killed     map[int]string // victim pid → the Killed process line
	summaries  map[int]string // victim pid → the oom-kill: summary
	suppressed []string       // "callbacks suppressed" lines
}

func (w *kmsgWatch) oom() kmsgOOM {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := kmsgOOM{killed: map[int]string{}, summaries: map[int]string{}}
	for _, l := range w.lines {
		if m := killedLine.FindStringSubmatch(l); m != nil {
			pid, _ := strconv.Atoi(m[1])
			k.killed[pid] = l
		}
		if m := summaryLine.FindStringSubmatch(l); m != nil {
			pid, _ := strconv.Atoi(m[4])
			k.summaries[pid] = l
		}
		if strings.Contains(l, "callbacks suppressed") {
			k.suppressed = append(k.suppressed, l)
		}
	}
	return k
}

// logSources logs what each source said about one container's death,
// for docs/scenarios.md: Docker's events and flag, the kernel's lines,
// and the evidence the exporter cited (sigtrace, systemd, cgroupfs among
// it).
func logSources(t *testing.T, w *kmsgWatch, name string, since time.Time, cgroupOOM string, v explained) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "SOURCES %s\n", name)
	fmt.Fprintf(&b, "  docker events: %s\n", strings.Join(testrig.Events(t, name, since), " | "))
	fmt.Fprintf(&b, "  State: %s\n", testrig.Inspect(t, name, "OOMKilled={{.State.OOMKilled}} ExitCode={{.State.ExitCode}}"))
	// A scenario's own watch holds its few kills; in a storm only the
	// container's own are shown: its init's, or those in its cgroup.
	k := w.oom()
	id := testrig.Inspect(t, name, "{{.Id}}")
	for pid, l := range k.killed {
		if len(k.killed) <= 4 || pid == v.Exit.Pid || strings.Contains(k.summaries[pid], id) {
			fmt.Fprintf(&b, "  kmsg killed (pid %d, the init: %v): %s\n", pid, pid == v.Exit.Pid, l)
		}
	}
	for _, l := range k.summaries {
		if len(k.killed) <= 4 || strings.Contains(l, id) {
			fmt.Fprintf(&b, "  kmsg summary: %s\n", l)
		}
	}
	fmt.Fprintf(&b, "  cgroup oom_kill before the death: %s\n", cgroupOOM)
	fmt.Fprintf(&b, "  verdict: cause=%s code=%d init pid=%d strength=%s\n  summary: %s\n",
		v.Cause, v.Exit.ExitCode, v.Exit.Pid, v.Strength, v.Summary)
	for _, c := range v.Evidence {
		fmt.Fprintf(&b, "  evidence %s/%s pid=%d code=%d sender=%s decisive=%v offset=%s: %s\n",
			c.Source, c.Kind, c.Pid, c.Code, c.Sender, c.Decisive, c.Offset, c.Detail)
	}
	t.Log(b.String())
}

// TestOOMStormEveryDeathIsOOM: N containers started 8 at a time, each
// OOM-killed at once by its own limit. The kernel prints the oom-kill:
// summary under a rate limit and Docker's OOMKilled flag misses some;
// every death must still be oom, and every kill counted once.
func TestOOMStormEveryDeathIsOOM(t *testing.T) {
	testrig.Docker(t)
	const n, parallel = 40, 8
	e := startVerdictExporter(t)
	w := watchKmsg(t)
	m := e.Scrape(t)
	kernelBefore := m.Sum("exit137_kernel_oom_kills_total", nil)
	oomExitsBefore := m.Sum("exit137_exits_total", map[string]string{"cause": "oom", "exit_code": "137"})

	// Each container waits for a trigger file the test's directory shares
	// with all of them read-only, then allocates: the kills come within
	// seconds however slowly a loaded daemon starts containers.
	trigger := t.TempDir() // removed after the containers (cleanups run in reverse)
	base := testrig.UniqueName(t, "storm")
	specs := make([]testrig.Spec, n)
	for i := range specs {
		specs[i] = testrig.Spec{
			Name:       fmt.Sprintf("%s-%02d", base, i),
			DockerArgs: []string{"--memory", "24m", "--memory-swap", "24m", "-v", trigger + ":/t:ro"},
			HelperArgs: []string{"-alloc-when", "/t/go", "-alloc", "200"},
		}
	}
	began := time.Now()
	cs := testrig.StartMany(t, specs, parallel)
	t.Logf("%d containers started, %d at a time, in %s", n, parallel, time.Since(began).Round(time.Millisecond))
	ids := map[string]string{} // full id → name
	for _, c := range cs {
		ids[c.ID] = c.Name
	}
	time.Sleep(time.Second) // the exporter has seen every start
	began = time.Now()
	if err := os.WriteFile(filepath.Join(trigger, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	var first, last time.Time
	flags := map[string]int{}
	for _, c := range cs {
		if code := testrig.WaitExited(t, c.Name, 2*time.Minute); code != "137" {
			t.Errorf("%s exited %s, want 137", c.Name, code)
		}
		st := strings.Fields(testrig.Inspect(t, c.Name, "{{.State.OOMKilled}} {{.State.FinishedAt}}"))
		flags[st[0]]++
		at, err := time.Parse(time.RFC3339Nano, st[1])
		if err != nil {
			t.Fatalf("%s: FinishedAt %q: %v", c.Name, st[1], err)
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	t.Logf("deaths between %s and %s after the trigger; Docker State.OOMKilled: %d true, %d false", first.Sub(began).Round(time.Millisecond), last.Sub(began).Round(time.Millisecond), flags["true"], flags["false"])

	// Every verdict: cause oom, one exit of the name.
	causes, strengths, kinds := map[attribution.Cause]int{}, map[string]int{}, map[attribution.Kind]int{}
	ours := map[int]string{} // init pid → name
	for i, c := range cs {
		v := requireExplained(t, e, c.Name, attribution.CauseOOM, "137", "decisive")
		causes[v.Cause]++
		strengths[v.Strength]++
		seen := map[attribution.Kind]bool{}
		for _, ev := range v.Evidence {
			if !seen[ev.Kind] {
				kinds[ev.Kind]++
				seen[ev.Kind] = true
			}
		}
		if v.Exit.Pid != 0 {
			ours[v.Exit.Pid] = c.Name
		}
		if v.Cause != attribution.CauseOOM {
			t.Logf("%s: %s (%s): %s", c.Name, v.Cause, v.Strength, v.Summary)
		}
		if i < 3 { // a few in full: the kernel named the init as the victim
			logSources(t, w, c.Name, began, "gone with the container", v)
			if v.Exit.Pid == 0 {
				t.Errorf("%s: the exit carries no init pid", c.Name)
			}
			found := false
			for _, ev := range v.Evidence {
				found = found || ev.Kind == attribution.KindKernelOOM && ev.Pid == v.Exit.Pid && ev.Pid != 0
			}
			if !found {
				t.Errorf("%s: no kernel OOM evidence whose victim is the init (pid %d): %+v", c.Name, v.Exit.Pid, v.Evidence)
			}
			if v.Strength != string(attribution.StrengthDecisive) {
				t.Errorf("%s: strength %q, want decisive (the kernel named the init)", c.Name, v.Strength)
			}
		}
	}
	t.Logf("verdicts by cause %v, by strength %v; containers citing each kind %v", causes, strengths, kinds)

	// Every kill counted: the kernel's own lines, the exporter's counter.
	// Other tests on the host (the kmsg source's own, which OOM-kill a
	// process in a cgroup of their own) may OOM-kill at the same time:
	// those count in the host's counter too, and are reported.
	var k kmsgOOM
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if k = w.oom(); len(k.killed) >= n || time.Now().After(deadline) {
			break
		}
	}
	kills := map[int]string{} // every victim pid the kernel named, by its Killed line or its summary
	for pid, l := range k.summaries {
		kills[pid] = l
	}
	for pid, l := range k.killed {
		kills[pid] = l
	}
	// Ours: a victim the exporter knows as one of our inits, or whose
	// summary (when the kernel printed one) names one of our cgroups.
	var others []string
	mine := 0
	for pid, l := range kills {
		_, ok := ours[pid]
		if m := summaryLine.FindStringSubmatch(k.summaries[pid]); m != nil {
			_, inOurs := ids[filepath.Base(m[2])]
			ok = ok || inOurs
		}
		if ok {
			mine++
		} else {
			others = append(others, l)
		}
	}
	sort.Strings(others)
	t.Logf("kmsg: %d Killed process lines, %d oom-kill: summaries (%d of our %d inits without one), suppressed: %q; victims %d, ours %d, others %d %q",
		len(k.killed), len(k.summaries), n-countIn(k.summaries, ours), n, k.suppressed, len(kills), mine, len(others), others)

	var kernelAfter float64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if kernelAfter = e.Scrape(t).Sum("exit137_kernel_oom_kills_total", nil); kernelAfter-kernelBefore >= float64(len(kills)) {
			break
		}
	}
	time.Sleep(2 * time.Second) // a late or double count would show now
	m = e.Scrape(t)
	kernelAfter = m.Sum("exit137_kernel_oom_kills_total", nil)
	t.Logf("exit137_kernel_oom_kills_total: %v → %v (+%v) %v", kernelBefore, kernelAfter, kernelAfter-kernelBefore,
		m.Series("exit137_kernel_oom_kills_total", nil))
	if len(others) > 0 {
		t.Logf("the host had %d other OOM kills during the storm: the counter must rise by %d, not %d", len(others), len(kills), n)
	}
	if mine != n {
		t.Errorf("the kernel logged %d kills of our %d inits", mine, n)
	}
	if d := kernelAfter - kernelBefore; d != float64(len(kills)) {
		t.Errorf("kernel_oom_kills_total rose by %v; the kernel logged %d kills (%d ours, %d others)", d, len(kills), mine, len(others))
	}
	if d := m.Sum("exit137_exits_total", map[string]string{"cause": "oom", "exit_code": "137"}) - oomExitsBefore; d != n {
		t.Errorf("exits_total{cause=oom,exit_code=137} rose by %v, want %d", d, n)
	}
}

// countIn counts the pids of m that are keys of in.
func countIn[V, W any](m map[int]V, in map[int]W) int {
	c := 0
	for pid := range m {
		if _, ok := in[pid]; ok {
			c++
		}
	}
	return c
}

// TestChildOOMThenDockerKillIsManual: a worker is OOM-killed while the
// init keeps running; then docker kill ends the init. The SIGKILL of the
// init was docker's, so the verdict is manual, and it says the child's
// OOM kill was not the cause. The same with a docker exec'd process as
// the victim.
func TestChildOOMThenDockerKillIsManual(t *testing.T) {
	testrig.Docker(t)
	e := startVerdictExporter(t)

	t.Run("child", func(t *testing.T) {
		w := watchKmsg(t)
		since := time.Now()
		name := testrig.UniqueName(t, "child-kill")
		c := testrig.Start(t, name, limit32, "-child-alloc", "200", "-child-delay", "2s")
		waitChildOOM(t, name)
		oomKills := cgroupOOMKills(c.ID, "")
		time.Sleep(time.Second)
		testrig.Run(t, "docker", "kill", name)
		v := requireExplained(t, e, name, attribution.CauseManual, "137", "decisive", attribution.KindDockerKill)
		logSources(t, w, name, since, oomKills, v)
		summaryHas(t, v, "docker kill", "child", "oom")
		if !notTheCause.MatchString(v.Summary) {
			t.Errorf("summary %q does not say the child's OOM kill was not the cause", v.Summary)
		}
	})

	t.Run("exec", func(t *testing.T) {
		w := watchKmsg(t)
		since := time.Now()
		name := testrig.UniqueName(t, "exec-kill")
		c := testrig.Start(t, name, limit32)
		time.Sleep(500 * time.Millisecond)
		out, err := testrig.Try("docker", "exec", name, "/helper", "-alloc", "200")
		t.Logf("docker exec of a 200 MiB allocation: %v %s", err, out)
		if err == nil {
			t.Fatalf("the exec'd allocation was not OOM-killed")
		}
		oomKills := cgroupOOMKills(c.ID, "")
		time.Sleep(time.Second)
		testrig.Run(t, "docker", "kill", name)
		v := requireExplained(t, e, name, attribution.CauseManual, "137", "decisive", attribution.KindDockerKill)
		logSources(t, w, name, since, oomKills, v)
		summaryHas(t, v, "docker kill", "oom")
		if !notTheCause.MatchString(v.Summary) {
			t.Errorf("summary %q does not say the exec'd process's OOM kill was not the cause", v.Summary)
		}
	})
}

// TestChildOOMThenCleanExitIsNone: exit 0 is none, whatever died before.
func TestChildOOMThenCleanExitIsNone(t *testing.T) {
	testrig.Docker(t)
	e := startVerdictExporter(t)
	w := watchKmsg(t)
	since := time.Now()
	name := testrig.UniqueName(t, "child-clean")
	testrig.Start(t, name, limit32, "-child-alloc", "200", "-sleep", "1s", "-exit", "0")
	v := requireExplained(t, e, name, attribution.CauseNone, "0", "strong")
	logSources(t, w, name, since, "gone with the container", v)
	summaryHas(t, v, "code 0", "child", "oom")
	if !notTheCause.MatchString(v.Summary) {
		t.Errorf("summary %q does not say the OOM kill before was not the cause", v.Summary)
	}
}

// TestWrapperExits137AfterChildOOMIsOOM: a wrapper (a shell, tini, a
// supervisor) passes its child's 137 on. Nothing SIGKILLed the init, but
// the OOM killer is why it exited.
func TestWrapperExits137AfterChildOOMIsOOM(t *testing.T) {
	testrig.Docker(t)
	e := startVerdictExporter(t)
	w := watchKmsg(t)
	since := time.Now()
	name := testrig.UniqueName(t, "wrapper")
	testrig.Start(t, name, limit32, "-child-alloc", "200", "-exit", "137")
	v := requireExplained(t, e, name, attribution.CauseOOM, "137", "strong", attribution.KindKernelOOM)
	logSources(t, w, name, since, "gone with the container", v)
	summaryHas(t, v, "child")
	for _, c := range v.Evidence {
		if c.Kind == attribution.KindKernelOOM && c.Pid != 0 && c.Pid == v.Exit.Pid {
			t.Errorf("the kernel's victim is the init (%d), but the helper's child was the one OOM-killed", c.Pid)
		}
	}
}

// TestChildOOMThenExitOneIsOOMWithTheGap: a non-zero exit shortly after a
// child's OOM kill is the OOM's doing; the summary shows how long before.
func TestChildOOMThenExitOneIsOOMWithTheGap(t *testing.T) {
	testrig.Docker(t)
	e := startVerdictExporter(t)
	w := watchKmsg(t)
	since := time.Now()
	name := testrig.UniqueName(t, "child-exit1")
	testrig.Start(t, name, limit32, "-child-alloc", "200", "-sleep", "2s", "-exit", "1")
	v := requireExplained(t, e, name, attribution.CauseOOM, "1", "strong", attribution.KindKernelOOM)
	logSources(t, w, name, since, "gone with the container", v)
	summaryHas(t, v, "child")
	m := gap.FindStringSubmatch(v.Summary)
	if m == nil {
		t.Fatalf("summary %q shows no gap (\"N.Ns before\")", v.Summary)
	}
	if s, _ := strconv.ParseFloat(m[1], 64); s < 1.5 || s > 5 {
		t.Errorf("summary %q: gap %ss, want about 2s (the helper sleeps 2s after its child's death)", v.Summary, m[1])
	}
}

// TestCgroupParentMemorySeriesAndOOM: an unlimited container inside a
// parent cgroup of our own with a 32 MiB limit. Its memory is read from
// where it really lives, and the parent's limit OOM-kills it.
func TestCgroupParentMemorySeriesAndOOM(t *testing.T) {
	testrig.Docker(t)
	parent := testrig.MemoryCgroupParent(t, 32<<20) // before Start: removed after the container
	e := startVerdictExporter(t)
	w := watchKmsg(t)
	since := time.Now()
	name := testrig.UniqueName(t, "parent")
	testrig.Start(t, name, []string{"--cgroup-parent", parent}, "-alloc-when", "/go", "-alloc", "200")
	if got := testrig.Inspect(t, name, "{{.HostConfig.CgroupParent}} {{.HostConfig.Memory}}"); got != parent+" 0" {
		t.Fatalf("cgroup parent and limit %q, want %q", got, parent+" 0")
	}
	// Not fatal: the OOM verdict is worth checking without the series.
	var m testrig.Metrics
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		m = e.Scrape(t)
		if _, ok := m.Value("exit137_container_memory_usage_bytes", map[string]string{"name": name}); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no memory series for %s after 30s (cgroup %s/<id>)", name, parent)
			break
		}
	}
	t.Logf("while it runs: %v %v %v", m.Series("exit137_container_memory_usage_bytes", exitsOf(name)),
		m.Series("exit137_container_memory_working_set_bytes", exitsOf(name)),
		m.Series("exit137_container_memory_limit_bytes", exitsOf(name)))
	if _, ok := m.Value("exit137_container_memory_working_set_bytes", map[string]string{"name": name}); !ok {
		t.Errorf("no working set series for %s", name)
	}
	testrig.Exec(t, name, "-touch", "/go")
	if code := testrig.WaitExited(t, name, time.Minute); code != "137" {
		t.Fatalf("%s exited %s, want 137 (the parent's limit OOM-kills it)", name, code)
	}
	v := requireExplained(t, e, name, attribution.CauseOOM, "137", "decisive", attribution.KindKernelOOM)
	logSources(t, w, name, since, "gone with the container; parent "+cgroupOOMKills("", parent), v)
	summaryHas(t, v, "OOM")
	found := false
	for _, ev := range v.Evidence {
		found = found || ev.Kind == attribution.KindKernelOOM && ev.Pid == v.Exit.Pid && ev.Pid != 0
	}
	if !found {
		t.Errorf("no kernel OOM evidence whose victim is the init (pid %d): %+v", v.Exit.Pid, v.Evidence)
	}
}

// TestGracefulStopAfterChildOOMIsNone: docker stop after a child's OOM
// kill; the init ends on SIGTERM, with 143 or a code of its own (a Go
// init without a handler exits 2). A graceful stop is none.
func TestGracefulStopAfterChildOOMIsNone(t *testing.T) {
	testrig.Docker(t)
	e := startVerdictExporter(t)
	for _, tc := range []struct {
		base string
		args []string
		code string
	}{
		{"stop-143", []string{"-term-exit", "143"}, "143"},
		{"stop-own", nil, "2"},
	} {
		t.Run(tc.base, func(t *testing.T) {
			w := watchKmsg(t)
			since := time.Now()
			name := testrig.UniqueName(t, tc.base)
			c := testrig.Start(t, name, limit32, append([]string{"-child-alloc", "200"}, tc.args...)...)
			waitChildOOM(t, name)
			oomKills := cgroupOOMKills(c.ID, "")
			time.Sleep(2 * time.Second)
			testrig.Run(t, "docker", "stop", "-t", "10", name)
			v := requireExplained(t, e, name, attribution.CauseNone, tc.code, "strong", attribution.KindDockerStop)
			logSources(t, w, name, since, oomKills, v)
			summaryHas(t, v, "code "+tc.code, "stop", "child", "oom")
			if !notTheCause.MatchString(v.Summary) {
				t.Errorf("summary %q does not say the child's OOM kill was not the cause", v.Summary)
			}
		})
	}
}
