package sigtrace

import (
	"context"
	"errors"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// startFake runs a Source over a fake tracefs and /proc until the test
// ends; it returns once the source is up.
func startFake(t *testing.T, f *fakeTracefs, proc *fakeProc) (*Source, *source.Health, chan attribution.Evidence) {
	t.Helper()
	evidence := make(chan attribution.Evidence, 16)
	health := source.NewRegistry().Source(SourceName)
	s := New(Options{Proc: proc.root, Instance: own}, source.SinkFunc(func(e attribution.Evidence) { evidence <- e }), health, testrig.Logger(t))
	s.fs = f.tracefs
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
		if isDir(f.instanceDir(own)) {
			t.Error("the instance is left after Run returned")
		}
	})
	for deadline := time.Now().Add(5 * time.Second); !health.Up(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the source did not come up")
		}
	}
	// Cleanups run last-registered first: cancel before the fake closes
	// the trace pipe's writer (registered when Run made the instance), or
	// Run sees EOF, not its context's end.
	t.Cleanup(cancel)
	return s, health, evidence
}

func TestSourceTurnsContainerKillsIntoEvidence(t *testing.T) {
	f := newFakeTracefs(t, true)
	proc := newFakeProc(t)
	hostProcs(proc)
	s, health, evidence := startFake(t, f, proc)

	before := time.Now()
	// A kill of a host process (evidence by pid alone), a lost-events line, a
	// line longer than the buffer, an unparsable one, a SIGTERM (the
	// filter lets none through), kills that change nothing (not
	// counted), then a container kill.
	lines := "bash-812 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=sshd pid=500 grp=1 res=0\n" +
		realLost + "\n" +
		strings.Repeat("x", readBufferSize+10) + "\n" +
		"garbage\n" +
		"bash-812 [0] 1.0: signal_generate: sig=15 errno=0 code=0 comm=helper pid=710 grp=1 res=0\n" +
		realNamespaceKill + "\n" + // res=1: the target was dying already
		"bash-812 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=2\n" +
		"kill-901 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0\n"
	if _, err := f.pipe.WriteString(lines); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-evidence:
		if e.Container != "" || e.Pid != 500 || e.Comm != "sshd" {
			t.Errorf("the host kill: got %+v, want evidence with no container and pid 500", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no evidence for the host kill")
	}
	select {
	case e := <-evidence:
		want := attribution.Evidence{Container: containerID, Time: e.Time, Source: "sigtrace", Kind: attribution.KindSignal, Signal: 9, Sender: "user",
			Pid: 710, Comm: "helper", Code: 0, SenderContainer: "",
			Detail: "kill (pid 901, uid 0, login uid 1000), /usr/bin/kill, parent sudo < bash < sshd < systemd, target helper (pid 710)"}
		if e != want {
			t.Errorf("evidence\n got %+v\nwant %+v", e, want)
		}
		if e.Time.Before(before) || e.Time.After(time.Now()) {
			t.Errorf("evidence time %v not between %v and now", e.Time, before)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no evidence for the container kill")
	}
	select {
	case e := <-evidence:
		t.Errorf("unexpected evidence %+v", e)
	default:
	}
	if got := s.SIGKILLs(); got[ClassUser] != 2 || len(got) != len(Classes) {
		t.Errorf("SIGKILLs = %v, want user 2 and every class", got)
	}
	if health.Events() != 2 || health.Errors() != 3 {
		t.Errorf("events %d errors %d, want 2 and 3", health.Events(), health.Errors())
	}
}

func TestSourceDownWithoutTracefs(t *testing.T) {
	f := newFakeTracefs(t, false)
	f.mountErr = syscall.EPERM
	health := source.NewRegistry().Source(SourceName)
	s := New(Options{}, nil, health, testrig.Logger(t))
	s.fs = f.tracefs
	if err := s.Run(context.Background()); !errors.Is(err, syscall.EPERM) {
		t.Errorf("Run = %v, want EPERM at once", err)
	}
	if health.Up() {
		t.Error("source up without tracefs")
	}
	for _, class := range Classes {
		if n, ok := s.SIGKILLs()[class]; !ok || n != 0 {
			t.Errorf("class %s: %d, %v; want a 0", class, n, ok)
		}
	}
}

// TestEvidenceNamesPids checks what the attribution engine needs to tell
// the OOM killer's SIGKILL to a container's init from the others: the
// target pid and comm, the si_code and the sender's container.
func TestEvidenceNamesPids(t *testing.T) {
	fp := newFakeProc(t)
	hostProcs(fp)
	// A container whose init (720) is a zombie already (its v1 paths read
	// "/") and whose allocating thread (721) is still readable; a child
	// (730) of another container's init; an init (740) reaped already.
	const other = "aa2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7aa"
	fp.add(proc{pid: 720, ppid: 700, comm: "helper", loginuid: noLoginUID, cgroup: "/", zombie: true})
	fp.add(proc{pid: 721, tgid: 720, ppid: 700, comm: "helper", exe: "/helper", loginuid: noLoginUID, cgroup: "/docker/" + containerID})
	fp.add(proc{pid: 722, tgid: 720, ppid: 700, comm: "helper", exe: "/helper", loginuid: noLoginUID, cgroup: "/"})
	fp.add(proc{pid: 730, ppid: 700, comm: "worker", exe: "/worker", loginuid: noLoginUID, cgroup: "/docker/" + other})
	mains := map[int]string{720: containerID, 740: containerID}
	var got []attribution.Evidence
	s := New(Options{Proc: fp.root, ContainerByPID: func(pid int) (string, bool) { id, ok := mains[pid]; return id, ok }},
		source.SinkFunc(func(e attribution.Evidence) { got = append(got, e) }), nil, testrig.Logger(t))

	tests := []struct {
		name string
		line string
		want *attribution.Evidence // nil: none
	}{
		{"the OOM killer kills the init from a thread of it",
			"helper-721 [0] 1.0: signal_generate: sig=9 errno=0 code=128 comm=helper pid=720 grp=1 res=0",
			&attribution.Evidence{Container: containerID, Sender: ClassKernel, Pid: 720, Comm: "helper", Code: 128, SenderContainer: containerID}},
		{"from a thread of the init, exiting: its cgroup reads /",
			"helper-722 [0] 1.0: signal_generate: sig=9 errno=0 code=128 comm=helper pid=720 grp=1 res=0",
			&attribution.Evidence{Container: containerID, Sender: ClassKernel, Pid: 720, Comm: "helper", Code: 128, SenderContainer: containerID}},
		{"from a thread of the init, gone: the trace's tgid column",
			"<...>-723 (    720) [0] 1.0: signal_generate: sig=9 errno=0 code=128 comm=helper pid=720 grp=1 res=0",
			&attribution.Evidence{Container: containerID, Sender: ClassKernel, Pid: 720, Comm: "helper", Code: 128, SenderContainer: containerID}},
		{"a task that allocated kills itself, reaped already",
			"<...>-740 [0] 1.0: signal_generate: sig=9 errno=0 code=128 comm=helper pid=740 grp=1 res=0",
			&attribution.Evidence{Container: containerID, Sender: ClassKernel, Pid: 740, Comm: "helper", Code: 128, SenderContainer: containerID}},
		{"docker kill through runc, on the host",
			"runc-701 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=720 grp=1 res=0",
			&attribution.Evidence{Container: containerID, Sender: ClassRuntime, Pid: 720, Comm: "helper", Code: 0}},
		{"tgkill from another container",
			"worker-730 [0] 1.0: signal_generate: sig=9 errno=0 code=-6 comm=helper pid=710 grp=0 res=0",
			&attribution.Evidence{Container: containerID, Sender: ClassOther, Pid: 710, Comm: "helper", Code: -6, SenderContainer: other}},
		{"the sender is gone",
			"<...>-4444 [0] 1.0: signal_generate: sig=9 errno=0 code=128 comm=worker pid=730 grp=1 res=0",
			&attribution.Evidence{Container: other, Sender: ClassKernel, Pid: 730, Comm: "worker", Code: 128}},
		{"the idle task", "<idle>-0 [0] 1.0: signal_generate: sig=9 errno=0 code=128 comm=helper pid=710 grp=1 res=0",
			&attribution.Evidence{Container: containerID, Sender: ClassKernel, Pid: 710, Comm: "helper", Code: 128}},
		{"a host process the tracker does not know: evidence by pid alone, for the tracker to join",
			"helper-721 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=sshd pid=500 grp=1 res=0",
			&attribution.Evidence{Sender: ClassOther, Pid: 500, Comm: "sshd", SenderContainer: containerID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = got[:0]
			s.handle([]byte(tt.line), time.Unix(1, 0))
			if tt.want == nil {
				if len(got) != 0 {
					t.Errorf("evidence %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("evidence %+v, want one", got)
			}
			e := got[0]
			want := *tt.want
			want.Time, want.Source, want.Kind, want.Signal, want.Detail = time.Unix(1, 0), SourceName, attribution.KindSignal, 9, e.Detail
			if e != want {
				t.Errorf("evidence\n got %+v\nwant %+v", e, want)
			}
		})
	}
}
