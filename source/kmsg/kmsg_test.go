package kmsg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// evidenceSink collects evidence for a test.
type evidenceSink struct{ ch chan attribution.Evidence }

func newEvidenceSink() *evidenceSink { return &evidenceSink{ch: make(chan attribution.Evidence, 100)} }

func (s *evidenceSink) AddEvidence(e attribution.Evidence) { s.ch <- e }

func (s *evidenceSink) next(t *testing.T, timeout time.Duration) attribution.Evidence {
	t.Helper()
	select {
	case e := <-s.ch:
		return e
	case <-time.After(timeout):
		t.Fatalf("no evidence within %v", timeout)
		return attribution.Evidence{}
	}
}

func (s *evidenceSink) none(t *testing.T, wait time.Duration) {
	t.Helper()
	select {
	case e := <-s.ch:
		t.Fatalf("unexpected evidence %+v", e)
	case <-time.After(wait):
	}
}

// startSource runs a Source on path with short test timings and returns
// it once it is reading.
func startSource(t *testing.T, path string, sink source.Sink) (*Source, *source.Health) {
	t.Helper()
	return startSourceOpts(t, Options{Path: path}, sink, nil)
}

// startSourceOpts is startSource with Options; prepare, when not nil,
// sees the Source before it runs.
func startSourceOpts(t *testing.T, opts Options, sink source.Sink, prepare func(*Source)) (*Source, *source.Health) {
	t.Helper()
	health := source.NewRegistry().Source("kmsg")
	s := New(opts, sink, health, testrig.Logger(t))
	s.retryInterval = 50 * time.Millisecond
	s.joinWait = 200 * time.Millisecond
	s.eofPoll = 10 * time.Millisecond
	s.catchUpIdle = 20 * time.Millisecond
	if prepare != nil {
		prepare(s)
	}
	runSource(t, s)
	testrig.WaitUntil(t, 10*time.Second, "source up", health.Up)
	return s, health
}

// runSource runs s until the test ends; Cleanup cancels it and checks
// that Run returns nil.
func runSource(t *testing.T, s *Source) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func appendFile(t *testing.T, path string, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

// bootTime is what wallTime adds a record's timestamp to.
func bootTime() time.Time { return wallTime(0) }

const realContainer = "e13783efdfe74d1f7334c9daaccf63093d9bf9b0d5b336e6cb5dd8cfea5f05a8"

func TestSourceFileJoinsKilledLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	// History before Run: must not be replayed.
	if err := os.WriteFile(path, []byte(realOOMKillRecord+realKilledRecord), 0o600); err != nil {
		t.Fatal(err)
	}
	sink := newEvidenceSink()
	s, health := startSource(t, path, sink)

	appendFile(t, path, realDictRecord+realInvoked+realOOMKillRecord+realKilledRecord)
	e := sink.next(t, 5*time.Second)
	want := attribution.Evidence{
		Container:  realContainer,
		Source:     "kmsg",
		Kind:       attribution.KindKernelOOM,
		Constraint: "CONSTRAINT_MEMCG",
		Pid:        12685,
		Comm:       "python3",
		Detail: "kernel oom-kill: task python3 pid 12685 in /docker-" + realContainer + ".scope, constraint CONSTRAINT_MEMCG; " +
			"Memory cgroup out of memory: Killed process 12685 (python3) total-vm:221368kB, anon-rss:16128kB, file-rss:6500kB, " +
			"shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0",
	}
	wantTime := bootTime().Add(548363451 * time.Microsecond)
	if d := e.Time.Sub(wantTime); d < -time.Second || d > time.Second {
		t.Errorf("time %v, want about %v", e.Time, wantTime)
	}
	e.Time = time.Time{}
	if e != want {
		t.Errorf("evidence\n got %+v\nwant %+v", e, want)
	}
	sink.none(t, 100*time.Millisecond)
	if got := s.OOMKills(); len(got) != 1 || got["memcg"] != 1 {
		t.Errorf("OOMKills() = %v, want memcg:1", got)
	}
	if health.Events() != 1 || health.Errors() != 0 {
		t.Errorf("events %d errors %d, want 1 0", health.Events(), health.Errors())
	}
}

func TestSourceFileSplitWritesAndNoJoin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sink := newEvidenceSink()
	s, health := startSource(t, path, sink)

	oom := strings.ReplaceAll(realOOMKillRecord, "docker-"+realContainer+".scope", "docker/"+dockerID)
	// A record cut in the middle, across two writes.
	appendFile(t, path, oom[:40])
	time.Sleep(50 * time.Millisecond)
	// Other records, and no Killed line: the summary goes alone.
	appendFile(t, path, oom[40:]+realInvoked)
	e := sink.next(t, 5*time.Second)
	if e.Container != dockerID || e.Pid != 12685 || e.Comm != "python3" ||
		e.Detail != "kernel oom-kill: task python3 pid 12685 in /docker/"+dockerID+", constraint CONSTRAINT_MEMCG" {
		t.Errorf("evidence %+v", e)
	}

	// A Killed line for another pid is another kill: the summary goes
	// alone, the Killed line is a kill of its own, with no container.
	other := strings.ReplaceAll(realKilledRecord, "12685", "999")
	appendFile(t, path, oom+other)
	if e := sink.next(t, 5*time.Second); e.Pid != 12685 || strings.Contains(e.Detail, "Killed") {
		t.Errorf("joined a Killed line of another pid: %+v", e)
	}
	if e := sink.next(t, 5*time.Second); e.Pid != 999 || e.Container != "" || e.Constraint != "CONSTRAINT_MEMCG" ||
		!strings.HasPrefix(e.Detail, "kernel: Memory cgroup out of memory: Killed process 999 (python3)") {
		t.Errorf("lone Killed line: %+v", e)
	}
	// A kill outside any container: evidence with its pid only.
	appendFile(t, path, "6,421,324670839,-;"+realOOMKillPlain+"\n")
	if e := sink.next(t, 5*time.Second); e.Container != "" || e.Pid != 6009 {
		t.Errorf("kill outside a container: %+v", e)
	}
	// A host-wide kill of a container task.
	appendFile(t, path, "6,9,10,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/docker-"+
		dockerID+".scope,task=java,pid=77,uid=0\n3,10,11,-;Out of memory: Killed process 77 (java) total-vm:1kB\n")
	e = sink.next(t, 5*time.Second)
	if e.Constraint != "CONSTRAINT_NONE" || e.Container != dockerID || e.Pid != 77 || e.Comm != "java" ||
		e.Detail != "kernel oom-kill: task java pid 77 in /system.slice/docker-"+dockerID+".scope (host-wide OOM), constraint CONSTRAINT_NONE; Out of memory: Killed process 77 (java) total-vm:1kB" {
		t.Errorf("host-wide evidence %+v", e)
	}
	sink.none(t, 100*time.Millisecond)
	testrig.WaitUntil(t, 10*time.Second, "counts", func() bool { k := s.OOMKills(); return k["memcg"] == 4 && k["none"] == 1 })
	if health.Events() != 5 {
		t.Errorf("events = %d, want 5", health.Events())
	}
}

func TestSourceFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	sink := newEvidenceSink()
	s, health := startSource(t, path, sink)
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// Userspace cannot log as the kernel: a forged line is ignored.
	if _, err := w.WriteString("12,5,6,-;" + realOOMKillPlain + "\n"); err != nil {
		t.Fatal(err)
	}
	// The summary alone: sent after the join wait, with the writer still
	// open and nothing more to read.
	if _, err := w.WriteString(realOOMKillRecord); err != nil {
		t.Fatal(err)
	}
	e := sink.next(t, 5*time.Second)
	if e.Container != realContainer || strings.Contains(e.Detail, "Killed") {
		t.Errorf("evidence %+v", e)
	}
	if got := s.OOMKills(); got["memcg"] != 1 || len(got) != 1 {
		t.Errorf("OOMKills() = %v", got)
	}

	// A malformed record is an error, not the end.
	if _, err := w.WriteString("garbage\n" + realOOMKillRecord + realKilledRecord); err != nil {
		t.Fatal(err)
	}
	if e := sink.next(t, 5*time.Second); !strings.Contains(e.Detail, "Killed process 12685") {
		t.Errorf("evidence %+v", e)
	}
	if health.Errors() != 1 {
		t.Errorf("errors = %d, want 1", health.Errors())
	}
	// The writer goes away: the FIFO reads EOF, the source keeps going.
	w.Close()
	time.Sleep(50 * time.Millisecond)
	w2, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if _, err := w2.WriteString(realOOMKillRecord); err != nil {
		t.Fatal(err)
	}
	sink.next(t, 5*time.Second)
	if !health.Up() {
		t.Error("source down")
	}
}

func TestSourceRetriesOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	health := source.NewRegistry().Source("kmsg")
	sink := newEvidenceSink()
	s := New(Options{Path: path}, sink, health, testrig.Logger(t))
	s.retryInterval = 20 * time.Millisecond
	runSource(t, s)

	time.Sleep(100 * time.Millisecond)
	if health.Up() {
		t.Fatal("up without a file")
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testrig.WaitUntil(t, 10*time.Second, "source up", health.Up)
	appendFile(t, path, realOOMKillRecord+realKilledRecord)
	sink.next(t, 5*time.Second)
}

func TestSourceStopsWhileDown(t *testing.T) {
	s := New(Options{Path: filepath.Join(t.TempDir(), "missing")}, nil, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Run(ctx); err != nil {
		t.Errorf("Run = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("Run waited out its retry interval")
	}
}

// fakeFile replays reads.
type fakeFile struct {
	mu    sync.Mutex
	reads []fakeRead
}

type fakeRead struct {
	data string
	err  error
}

func (f *fakeFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reads) == 0 {
		return 0, errors.New("fake: done")
	}
	r := f.reads[0]
	f.reads = f.reads[1:]
	return copy(p, r.data), r.err
}

func (f *fakeFile) SetReadDeadline(time.Time) error { return nil }

func TestReadLoopOverrun(t *testing.T) {
	health := source.NewRegistry().Source("kmsg")
	sink := newEvidenceSink()
	s := New(Options{}, sink, health, testrig.Logger(t))
	f := &fakeFile{reads: []fakeRead{
		{data: realOOMKillRecord},
		{err: &os.PathError{Op: "read", Path: "/dev/kmsg", Err: syscall.EPIPE}},
		{data: realKilledRecord},
		{data: realOOMKillRecord},
		{err: os.ErrDeadlineExceeded},
		{err: &os.PathError{Op: "read", Path: "/dev/kmsg", Err: syscall.EPIPE}},
	}}
	err := s.readLoop(context.Background(), f)
	if err == nil || !strings.Contains(err.Error(), "fake: done") {
		t.Errorf("readLoop = %v", err)
	}
	for range 2 {
		if e := sink.next(t, time.Second); e.Container != realContainer {
			t.Errorf("evidence %+v", e)
		}
	}
	if got := health.Errors(); got != 3 { // two overruns, one failed read
		t.Errorf("errors = %d, want 3", got)
	}
	if got := s.OOMKills()["memcg"]; got != 2 {
		t.Errorf("memcg kills = %d, want 2", got)
	}
}

func TestFeedBoundsLongLines(t *testing.T) {
	health := source.NewRegistry().Source("kmsg")
	s := New(Options{}, nil, health, nil)
	chunk := strings.Repeat("x", readBufferSize)
	for range maxPartial/readBufferSize + 2 {
		s.feed([]byte(chunk))
	}
	if health.Errors() == 0 || len(s.partial) > maxPartial {
		t.Errorf("errors %d, partial %d bytes", health.Errors(), len(s.partial))
	}
	s.feed([]byte("\n" + realOOMKillRecord))
	s.flush()
	if s.OOMKills()["memcg"] != 1 {
		t.Error("a record after an overlong line was lost")
	}
}

func TestWallTime(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	// A record stamped "now since boot" happened now.
	got := wallTime(time.Duration(ts.Nano()))
	if d := time.Since(got); d < -time.Second || d > time.Second {
		t.Errorf("wallTime(monotonic now) = %v, %v from now", got, d)
	}
	if got.Round(0) != got {
		t.Error("wallTime carries a monotonic reading")
	}
	if d := wallTime(time.Hour).Sub(wallTime(0)); d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Errorf("an hour after boot is %v after boot", d)
	}
}
