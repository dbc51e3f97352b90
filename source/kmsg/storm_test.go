package kmsg

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// kernelLog builds /dev/kmsg records with increasing sequence numbers.
type kernelLog struct {
	seq  uint64
	mono time.Duration
	b    strings.Builder
}

// add appends a record of priority prio (facility 0, the kernel's).
func (l *kernelLog) add(prio int, msg string) *kernelLog {
	l.seq++
	l.mono += 20 * time.Microsecond
	fmt.Fprintf(&l.b, "%d,%d,%d,-;%s\n", prio, l.seq, l.mono.Microseconds(), msg)
	return l
}

func (l *kernelLog) String() string { return l.b.String() }

// pidLookup is a ContainerByPID that answers from a map and records its
// calls.
type pidLookup struct {
	mu    sync.Mutex
	ids   map[int]string
	calls []int
}

func (p *pidLookup) lookup(pid int) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, pid)
	id, ok := p.ids[pid]
	return id, ok
}

func (p *pidLookup) called() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.calls...)
}

func stormID(i int) string { return fmt.Sprintf("e137%056x%04x", 0, i) }

func summaryLine(constraint, memcg, task string, pid int) string {
	return fmt.Sprintf("oom-kill:constraint=%s,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=%s,pid=%d,uid=0",
		constraint, memcg, memcg, task, pid)
}

func killedLine(reason string, pid int, comm string) string {
	if reason != "" {
		reason += ": "
	}
	return fmt.Sprintf("%sKilled process %d (%s) total-vm:210000kB, anon-rss:24000kB, file-rss:1200kB, shmem-rss:0kB, UID:0 pgtables:500kB oom_score_adj:0",
		reason, pid, comm)
}

// feedSource runs lines through a Source that reads live, as Run would
// once at the end of the log.
func feedSource(t *testing.T, opts Options, log string) (*Source, *source.Health, []attribution.Evidence) {
	t.Helper()
	health := source.NewRegistry().Source("kmsg")
	var got []attribution.Evidence
	s := New(opts, source.SinkFunc(func(e attribution.Evidence) { got = append(got, e) }), health, testrig.Logger(t))
	s.feed([]byte(log))
	s.flush()
	return s, health, got
}

// TestSourceStorm is what the kernel logs when 40 containers are
// OOM-killed within seconds: the OOM report, summary included, for the
// first 10 kills (the rate limit is 10 per 5s), then "callbacks
// suppressed", and a "Killed process" line for every kill; other
// subsystems log between the lines.
func TestSourceStorm(t *testing.T) {
	const kills, summaries = 40, 10
	lookup := &pidLookup{ids: map[int]string{}}
	var log kernelLog
	for i := range kills {
		pid := 20000 + i
		id := stormID(i)
		if i >= summaries && i%2 == 0 {
			lookup.ids[pid] = id // ContainerByPID knows the even ones
		}
		if i < summaries {
			log.add(4, "alloc invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0")
			log.add(6, "memory: usage 24576kB, limit 24576kB, failcnt 312")
			log.add(6, "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name")
			log.add(6, fmt.Sprintf("[%7d]     0 %5d    52500     6000   491520        0             0 alloc", pid, pid))
			log.add(6, summaryLine("CONSTRAINT_MEMCG", "/docker/"+id, "alloc", pid))
		}
		if i == summaries || i == 30 {
			log.add(4, "oom_kill_process: 12 callbacks suppressed")
		}
		if i%3 == 0 {
			// Another subsystem between a summary and its Killed line.
			log.add(6, fmt.Sprintf("docker0: port %d(veth%04x) entered disabled state", i+1, i))
		}
		log.add(3, killedLine("Memory cgroup out of memory", pid, "alloc"))
		log.add(6, fmt.Sprintf("oom_reaper: reaped process %d (alloc), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", pid))
	}
	s, health, got := feedSource(t, Options{ContainerByPID: lookup.lookup}, log.String())

	if k := s.OOMKills(); k["memcg"] != kills || len(k) != 1 {
		t.Errorf("OOMKills() = %v, want memcg:%d", k, kills)
	}
	if health.Events() != kills || health.Errors() != 0 {
		t.Errorf("events %d errors %d, want %d 0", health.Events(), health.Errors(), kills)
	}
	if len(got) != kills {
		t.Fatalf("%d evidence, want %d", len(got), kills)
	}
	for i, e := range got {
		pid := 20000 + i
		want := ""
		if i < summaries || i%2 == 0 {
			want = stormID(i)
		}
		if e.Pid != pid || e.Comm != "alloc" || e.Container != want || e.Constraint != "CONSTRAINT_MEMCG" ||
			e.Kind != attribution.KindKernelOOM || e.Source != SourceName {
			t.Errorf("kill %d: evidence %+v, want pid %d container %q", i, e, pid, want)
		}
		if i < summaries != strings.HasPrefix(e.Detail, "kernel oom-kill: task alloc pid ") {
			t.Errorf("kill %d: detail %q", i, e.Detail)
		}
		if !strings.Contains(e.Detail, fmt.Sprintf("Killed process %d (alloc)", pid)) {
			t.Errorf("kill %d: detail %q lacks its Killed line", i, e.Detail)
		}
	}
	// A summary that names the container needs no lookup.
	if calls := lookup.called(); len(calls) != kills-summaries || calls[0] != 20000+summaries {
		t.Errorf("ContainerByPID called for %v, want the %d pids without a summary", calls, kills-summaries)
	}
}

// TestSourceKillKinds covers each way a kill can be logged.
func TestSourceKillKinds(t *testing.T) {
	const id = dockerID
	lookup := &pidLookup{ids: map[int]string{300: id, 700: id, 901: id}}
	tests := []struct {
		name           string
		log            *kernelLog
		lookup         bool
		want           []attribution.Evidence // Time and Detail not compared
		wantDetail     []string               // prefixes
		counts         map[string]uint64
		wantCalls      int
		wantDedupeNote bool
	}{
		{
			name: "summary then Killed: one kill",
			log: new(kernelLog).add(6, summaryLine("CONSTRAINT_MEMCG", "/docker/"+id, "alloc", 100)).
				add(3, killedLine("Memory cgroup out of memory", 100, "alloc")),
			want:       []attribution.Evidence{{Container: id, Constraint: "CONSTRAINT_MEMCG", Pid: 100, Comm: "alloc"}},
			wantDetail: []string{"kernel oom-kill: task alloc pid 100 in /docker/" + id + ", constraint CONSTRAINT_MEMCG; Memory cgroup out of memory: Killed process 100 (alloc)"},
			counts:     map[string]uint64{"memcg": 1},
		},
		{
			name:       "Killed without summary, no container known",
			log:        new(kernelLog).add(3, killedLine("Memory cgroup out of memory", 200, "alloc")),
			lookup:     true,
			want:       []attribution.Evidence{{Constraint: "CONSTRAINT_MEMCG", Pid: 200, Comm: "alloc"}},
			wantDetail: []string{"kernel: Memory cgroup out of memory: Killed process 200 (alloc) total-vm:210000kB"},
			counts:     map[string]uint64{"memcg": 1},
			wantCalls:  1,
		},
		{
			name:       "Killed without summary, container by pid",
			log:        new(kernelLog).add(3, killedLine("Memory cgroup out of memory", 300, "alloc")),
			lookup:     true,
			want:       []attribution.Evidence{{Container: id, Constraint: "CONSTRAINT_MEMCG", Pid: 300, Comm: "alloc"}},
			wantDetail: []string{"kernel: Memory cgroup out of memory: Killed process 300 (alloc)"},
			counts:     map[string]uint64{"memcg": 1},
			wantCalls:  1,
		},
		{
			name:       "summary without Killed: counted once",
			log:        new(kernelLog).add(6, summaryLine("CONSTRAINT_MEMCG", "/docker/"+id, "alloc", 400)).add(6, "unrelated"),
			want:       []attribution.Evidence{{Container: id, Constraint: "CONSTRAINT_MEMCG", Pid: 400, Comm: "alloc"}},
			wantDetail: []string{"kernel oom-kill: task alloc pid 400 in /docker/" + id + ", constraint CONSTRAINT_MEMCG"},
			counts:     map[string]uint64{"memcg": 1},
		},
		{
			name: "summary without Killed, then another kill",
			log: new(kernelLog).add(6, summaryLine("CONSTRAINT_MEMCG", "/docker/"+id, "alloc", 401)).
				add(6, summaryLine("CONSTRAINT_MEMCG", "/docker/"+id, "alloc", 402)).
				add(3, killedLine("Memory cgroup out of memory", 402, "alloc")),
			want: []attribution.Evidence{{Container: id, Constraint: "CONSTRAINT_MEMCG", Pid: 401, Comm: "alloc"},
				{Container: id, Constraint: "CONSTRAINT_MEMCG", Pid: 402, Comm: "alloc"}},
			counts: map[string]uint64{"memcg": 2},
		},
		{
			name: "host-wide with summary",
			log: new(kernelLog).add(6, "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/docker/"+id+",task=java,pid=500,uid=0").
				add(3, killedLine("Out of memory", 500, "java")),
			want:   []attribution.Evidence{{Container: id, Constraint: "CONSTRAINT_NONE", Pid: 500, Comm: "java"}},
			counts: map[string]uint64{"none": 1},
		},
		{
			name: "cpuset-constrained with summary",
			log: new(kernelLog).add(6, "oom-kill:constraint=CONSTRAINT_CPUSET,nodemask=(null),cpuset=/docker/"+id+",mems_allowed=0,global_oom,task_memcg=/docker/"+id+",task=java,pid=501,uid=0").
				add(3, killedLine("Out of memory", 501, "java")),
			want:   []attribution.Evidence{{Container: id, Constraint: "CONSTRAINT_CPUSET", Pid: 501, Comm: "java"}},
			counts: map[string]uint64{"cpuset": 1},
		},
		{
			name:       "host-wide without summary",
			log:        new(kernelLog).add(3, killedLine("Out of memory", 700, "java")),
			lookup:     true,
			want:       []attribution.Evidence{{Container: id, Constraint: "CONSTRAINT_NONE", Pid: 700, Comm: "java"}},
			wantDetail: []string{"kernel: Out of memory: Killed process 700 (java)"},
			counts:     map[string]uint64{"none": 1},
			wantCalls:  1,
		},
		{
			name:   "allocating task, host-wide",
			log:    new(kernelLog).add(3, killedLine("Out of memory (oom_kill_allocating_task)", 701, "java")),
			want:   []attribution.Evidence{{Constraint: "CONSTRAINT_NONE", Pid: 701, Comm: "java"}},
			counts: map[string]uint64{"none": 1},
		},
		{
			name: "Linux 4.19: summary, Kill process, a child killed",
			log: new(kernelLog).add(6, summaryLine("CONSTRAINT_MEMCG", "/docker/"+id, "sh", 900)).
				add(3, "Memory cgroup out of memory: Kill process 900 (sh) score 1000 or sacrifice child").
				add(3, "Killed process 901 (java) total-vm:5000kB, anon-rss:4000kB, file-rss:12kB, shmem-rss:0kB"),
			want: []attribution.Evidence{{Container: id, Constraint: "CONSTRAINT_MEMCG", Pid: 901, Comm: "java"}},
			wantDetail: []string{"kernel oom-kill: task sh pid 900 in /docker/" + id + ", constraint CONSTRAINT_MEMCG; " +
				"Killed process 901 (java) total-vm:5000kB, anon-rss:4000kB, file-rss:12kB, shmem-rss:0kB"},
			counts: map[string]uint64{"memcg": 1},
		},
		{
			name: "Linux 4.19 without summary: the reason from Kill process",
			log: new(kernelLog).add(3, "Memory cgroup out of memory: Kill process 910 (java) score 900 or sacrifice child").
				add(3, "Killed process 910 (java) total-vm:5000kB, anon-rss:4000kB, file-rss:12kB, shmem-rss:0kB").
				add(3, "Out of memory: Kill process 911 (x) score 900 or sacrifice child").
				add(3, "Killed process 911 (x) total-vm:5000kB, anon-rss:4000kB, file-rss:12kB, shmem-rss:0kB").
				add(3, "Killed process 912 (y) total-vm:1kB"),
			want: []attribution.Evidence{{Constraint: "CONSTRAINT_MEMCG", Pid: 910, Comm: "java"},
				{Constraint: "CONSTRAINT_NONE", Pid: 911, Comm: "x"}, {Pid: 912, Comm: "y"}},
			counts: map[string]uint64{"memcg": 1, "none": 1, "other": 1},
		},
		{
			name: "victim already exiting: no kill",
			log: new(kernelLog).add(6, summaryLine("CONSTRAINT_MEMCG", "/docker/"+id, "alloc", 600)).
				add(6, "Memory cgroup out of memory: OOM victim 600 (alloc) is already exiting. Skip killing the task"),
			counts: map[string]uint64{},
		},
		{
			name: "oom.group: the victim, then the other tasks",
			log: new(kernelLog).add(6, summaryLine("CONSTRAINT_MEMCG", "/docker/"+id, "alloc", 610)).
				add(3, killedLine("Memory cgroup out of memory", 610, "alloc")).
				add(6, "Tasks in /docker/"+id+" are going to be killed due to memory.oom.group set").
				add(3, killedLine("Memory cgroup out of memory", 611, "worker")).
				add(6, "Memory cgroup out of memory: OOM victim 612 (worker) is already exiting. Skip killing the task"),
			want: []attribution.Evidence{{Container: id, Constraint: "CONSTRAINT_MEMCG", Pid: 610, Comm: "alloc"},
				{Constraint: "CONSTRAINT_MEMCG", Pid: 611, Comm: "worker"}},
			counts: map[string]uint64{"memcg": 2},
		},
		{
			name: "a summary with no container and no pid lookup",
			log: new(kernelLog).add(6, summaryLine("CONSTRAINT_MEMCG", "/e137test4910", "python3", 620)).
				add(3, killedLine("Memory cgroup out of memory", 620, "python3")),
			lookup:    true,
			want:      []attribution.Evidence{{Constraint: "CONSTRAINT_MEMCG", Pid: 620, Comm: "python3"}},
			counts:    map[string]uint64{"memcg": 1},
			wantCalls: 1, // at the summary, while the victim lives; not again at the Killed line
		},
		{
			name: "userspace cannot forge a kill",
			log:  new(kernelLog).add(12|3, killedLine("Memory cgroup out of memory", 630, "x")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup.mu.Lock()
			lookup.calls = nil
			lookup.mu.Unlock()
			var opts Options
			if tt.lookup {
				opts.ContainerByPID = lookup.lookup
			}
			s, health, got := feedSource(t, opts, tt.log.String())
			if len(got) != len(tt.want) {
				t.Fatalf("evidence %+v, want %d", got, len(tt.want))
			}
			for i, e := range got {
				if i < len(tt.wantDetail) && !strings.HasPrefix(e.Detail, tt.wantDetail[i]) {
					t.Errorf("detail %q, want it to start %q", e.Detail, tt.wantDetail[i])
				}
				if e.Time.IsZero() || e.Kind != attribution.KindKernelOOM || e.Source != SourceName {
					t.Errorf("evidence %+v", e)
				}
				e.Time, e.Detail, e.Kind, e.Source = time.Time{}, "", "", ""
				if e != tt.want[i] {
					t.Errorf("evidence %d\n got %+v\nwant %+v", i, e, tt.want[i])
				}
			}
			k := s.OOMKills()
			if tt.counts == nil {
				tt.counts = map[string]uint64{}
			}
			if len(k) != len(tt.counts) {
				t.Errorf("OOMKills() = %v, want %v", k, tt.counts)
			}
			var total uint64
			for c, n := range tt.counts {
				total += n
				if k[c] != n {
					t.Errorf("OOMKills() = %v, want %v", k, tt.counts)
				}
			}
			if health.Events() != total || health.Errors() != 0 {
				t.Errorf("events %d errors %d, want %d 0", health.Events(), health.Errors(), total)
			}
			if calls := lookup.called(); len(calls) != tt.wantCalls {
				t.Errorf("ContainerByPID called for %v, want %d calls", calls, tt.wantCalls)
			}
		})
	}
}

// TestSourceLateKilledLine: a summary whose join wait ran out was sent
// alone; its Killed line, late, is not another kill.
func TestSourceLateKilledLine(t *testing.T) {
	health := source.NewRegistry().Source("kmsg")
	sink := newEvidenceSink()
	s := New(Options{}, sink, health, testrig.Logger(t))
	s.feed([]byte("6,1,1000000,-;" + summaryLine("CONSTRAINT_MEMCG", "/docker/"+dockerID, "alloc", 100) + "\n"))
	s.flush() // as a read deadline would
	s.feed([]byte("3,2,1000100,-;" + killedLine("Memory cgroup out of memory", 100, "alloc") + "\n"))
	// Much later, the same pid again (reused): a new kill.
	s.feed([]byte("3,3,9000000,-;" + killedLine("Memory cgroup out of memory", 100, "alloc") + "\n"))
	if got := s.OOMKills()["memcg"]; got != 2 {
		t.Errorf("memcg kills = %d, want 2", got)
	}
	if e := sink.next(t, time.Second); e.Container != dockerID || e.Pid != 100 {
		t.Errorf("evidence %+v", e)
	}
	if e := sink.next(t, time.Second); e.Container != "" || e.Pid != 100 {
		t.Errorf("evidence %+v", e)
	}
	sink.none(t, 10*time.Millisecond)
}

// monoNow is the kernel log clock now (CLOCK_MONOTONIC).
func monoNow(t *testing.T) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

func record(prio int, seq uint64, mono time.Duration, msg string) string {
	return fmt.Sprintf("%d,%d,%d,-;%s\n", prio, seq, mono.Microseconds(), msg)
}

// TestSourceSince: with Since, the kills logged since then (while the
// exporter was down) are read, counted and sent; older ones are not; no
// replayed pid is looked up; live kills after the replay are.
func TestSourceSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	now := monoNow(t)
	log := record(3, 10, now-10*time.Minute, killedLine("Memory cgroup out of memory", 100, "old")) +
		record(6, 11, now-10*time.Second, summaryLine("CONSTRAINT_MEMCG", "/docker/"+dockerID, "alloc", 200)) +
		record(3, 12, now-10*time.Second+time.Millisecond, killedLine("Memory cgroup out of memory", 200, "alloc")) +
		record(3, 13, now-5*time.Second, killedLine("Out of memory", 300, "java"))
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup := &pidLookup{ids: map[int]string{300: realContainer, 400: realContainer}}
	sink := newEvidenceSink()
	s, _ := startSourceOpts(t, Options{Path: path, Since: time.Now().Add(-time.Minute), ContainerByPID: lookup.lookup}, sink, nil)

	if e := sink.next(t, 5*time.Second); e.Pid != 200 || e.Container != dockerID {
		t.Errorf("replayed kill with a summary: %+v", e)
	}
	if e := sink.next(t, 5*time.Second); e.Pid != 300 || e.Container != "" || e.Constraint != "CONSTRAINT_NONE" {
		t.Errorf("replayed kill without a summary: %+v (a replayed pid must not be looked up)", e)
	}
	testrig.WaitUntil(t, 10*time.Second, "replay done", func() bool {
		// The file's end ends the replay; the Run goroutine owns the
		// flag, so wait on its effect instead: a live kill is looked up.
		appendFile(t, path, record(3, 14, monoNow(t), killedLine("Memory cgroup out of memory", 400, "alloc")))
		e := sink.next(t, 5*time.Second)
		return e.Pid == 400 && e.Container == realContainer
	})
	k := s.OOMKills()
	if k["memcg"] < 2 || k["none"] != 1 {
		t.Errorf("OOMKills() = %v", k)
	}
	for _, pid := range lookup.called() {
		if pid != 400 {
			t.Errorf("ContainerByPID(%d) for a replayed kill", pid)
		}
	}
}

// TestSourceZeroSinceStartsAtEnd: the zero Options read only what comes
// after the start.
func TestSourceZeroSinceStartsAtEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	now := monoNow(t)
	if err := os.WriteFile(path, []byte(record(3, 1, now-time.Second, killedLine("Memory cgroup out of memory", 100, "alloc"))), 0o600); err != nil {
		t.Fatal(err)
	}
	sink := newEvidenceSink()
	s, _ := startSource(t, path, sink)
	appendFile(t, path, record(3, 2, now, killedLine("Memory cgroup out of memory", 200, "alloc")))
	if e := sink.next(t, 5*time.Second); e.Pid != 200 {
		t.Errorf("evidence %+v", e)
	}
	sink.none(t, 50*time.Millisecond)
	if got := s.OOMKills()["memcg"]; got != 1 {
		t.Errorf("memcg kills = %d, want 1", got)
	}
}

// TestSourceReopenResumes: after a failure, the re-open reads on from
// the last record read, not from the end (kills during the gap) nor from
// the start (no double count).
func TestSourceReopenResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	now := monoNow(t)
	log := record(3, 1, now-time.Second, killedLine("Memory cgroup out of memory", 100, "alloc")) +
		record(3, 2, now-time.Second, killedLine("Memory cgroup out of memory", 200, "alloc"))
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	sink := newEvidenceSink()
	// As if the first open had read record 1 before failing.
	s, _ := startSourceOpts(t, Options{Path: path}, sink, func(s *Source) { s.seenSeq, s.lastSeq = true, 1 })
	if e := sink.next(t, 5*time.Second); e.Pid != 200 {
		t.Errorf("evidence %+v", e)
	}
	sink.none(t, 50*time.Millisecond)
	if got := s.OOMKills()["memcg"]; got != 1 {
		t.Errorf("memcg kills = %d, want 1", got)
	}
}

// BenchmarkSourceFeed is the read path for one OOM kill with its full
// report (as /dev/kmsg gives it, a record per read).
func BenchmarkSourceFeed(b *testing.B) {
	var log kernelLog
	log.add(4, "alloc invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0")
	for i := range 20 {
		log.add(6, fmt.Sprintf("[%7d]     0 %5d    52500     6000   491520        0             0 alloc", 1000+i, 1000+i))
	}
	log.add(6, summaryLine("CONSTRAINT_MEMCG", "/docker/"+dockerID, "alloc", 100))
	log.add(3, killedLine("Memory cgroup out of memory", 100, "alloc"))
	var records [][]byte
	for r := range strings.SplitAfterSeq(log.String(), "\n") {
		if r != "" {
			records = append(records, []byte(r))
		}
	}
	s := New(Options{}, source.SinkFunc(func(attribution.Evidence) {}), nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range records {
			s.feed(r)
		}
	}
}
