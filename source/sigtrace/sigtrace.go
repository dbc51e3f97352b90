// Package sigtrace finds who sent each SIGKILL. In a trace instance of its
// own it enables the signal:signal_generate event with the filter
// "sig == 9", reads the events from the instance's trace_pipe as they
// come, and for each one reads the sender from /proc at once, while it
// still exists: comm, executable, uid, login uid and parent chain. It
// counts the kills by sender class and, when the target process is in a
// container, sends KindSignal evidence for that container, naming the
// target pid, the si_code and the sender's container.
package sigtrace

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// SourceName is the evidence's Source.
const SourceName = "sigtrace"

const (
	// readBufferSize bounds one read of trace_pipe and the longest line.
	readBufferSize = 16 << 10
	sigkill        = 9
	// Event.Result values (TRACE_SIGNAL_IGNORED, _ALREADY_PENDING).
	resultIgnored, resultPending = 1, 2
)

// Options configure a Source; zero values take the defaults.
type Options struct {
	Tracefs  string // DefaultTracefs
	Instance string // DefaultInstance()
	Proc     string // /proc
	// ContainerByPID maps a container's main process to the container,
	// for a target gone before its cgroup could be read (nil: none).
	ContainerByPID func(pid int) (string, bool)
}

// Source traces SIGKILLs. Its counters are safe to read while Run runs.
type Source struct {
	fs       *tracefs
	instance string
	proc     *procFS
	byPID    func(pid int) (string, bool)
	sink     source.Sink
	health   *source.Health
	logger   *slog.Logger

	// kills has one counter per class; the map itself is never written
	// after New.
	kills map[string]*atomic.Uint64
}

// New returns a Source that sends evidence to sink (nil: only count).
func New(opts Options, sink source.Sink, health *source.Health, logger *slog.Logger) *Source {
	if opts.Tracefs == "" {
		opts.Tracefs = DefaultTracefs
	}
	if opts.Instance == "" {
		opts.Instance = DefaultInstance()
	}
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	if health == nil {
		health = new(source.Health)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kills := make(map[string]*atomic.Uint64, len(Classes))
	for _, class := range Classes {
		kills[class] = new(atomic.Uint64)
	}
	return &Source{
		fs:       realTracefs(opts.Tracefs, logger),
		instance: opts.Instance,
		proc:     newProcFS(opts.Proc),
		byPID:    opts.ContainerByPID,
		sink:     sink,
		health:   health,
		logger:   logger,
		kills:    kills,
	}
}

// SIGKILLs returns the traced SIGKILLs since start, by sender class.
func (s *Source) SIGKILLs() map[string]uint64 {
	m := make(map[string]uint64, len(s.kills))
	for class, n := range s.kills {
		m[class] = n.Load()
	}
	return m
}

// Run traces until ctx is done, then removes its trace instance and
// returns nil. Where tracefs is absent or not permitted it logs why,
// leaves the source down and returns the error at once: the rest of the
// exporter works without it.
func (s *Source) Run(ctx context.Context) error {
	in, err := s.fs.open(s.instance)
	if err != nil {
		s.health.SetUp(false, s.logger, err)
		s.logger.Error("cannot trace SIGKILLs; their senders will not be known", "evidence_source", s.health.Name(),
			"tracefs", s.fs.root, "err", err)
		return err
	}
	defer in.close()
	stop := context.AfterFunc(ctx, func() { in.pipe.Close() })
	defer stop()
	s.health.SetUp(true, s.logger, nil)
	s.logger.Info("tracing SIGKILLs", "evidence_source", s.health.Name(), "instance", in.dir)

	err = s.readLoop(bufio.NewReaderSize(in.pipe, readBufferSize))
	if ctx.Err() != nil {
		return nil
	}
	s.health.Error(s.logger, "trace pipe read failed", err)
	s.health.SetUp(false, s.logger, err)
	return err
}

// readLoop handles line after line until a read fails. It allocates only
// per SIGKILL, never per read.
func (s *Source) readLoop(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		switch {
		case err == nil:
			s.handle(line[:len(line)-1], time.Now())
		case errors.Is(err, bufio.ErrBufferFull):
			s.health.Error(s.logger, "trace line too long, dropped", fmt.Errorf("more than %d bytes", readBufferSize))
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// handle reads the target's cgroup first (it is dying), then the
// sender's cgroup and the sender, then counts and sends the evidence. A
// zombie's cgroup v1 paths read "/", its v2 path stays: on v2 and hybrid
// hosts an exited target still maps until it is reaped; after that only a
// container's main process maps, through ContainerByPID. The evidence
// names the target (pid and comm as traced), the si_code and the
// sender's container, so that the attribution engine can tell the OOM
// killer's SIGKILL to the init (SI_KERNEL, sent from a task of the same
// container) from the others.
func (s *Source) handle(line []byte, at time.Time) {
	ev, ok := ParseLine(line)
	switch {
	case !ok && isLost(line):
		s.health.Error(s.logger, "trace buffer overflowed, SIGKILLs lost", errors.New(string(line)))
		return
	case !ok:
		s.health.Error(s.logger, "unparsable trace line", errors.New(string(line)))
		return
	case ev.Signal != sigkill || ev.Result == resultIgnored || ev.Result == resultPending:
		// A SIGKILL to a process that is already dying (the kernel sends
		// one to each thread of a dying PID namespace) or already has one
		// pending changes nothing: not counted.
		return
	}
	container, inContainer := s.proc.container(ev.TargetPID)
	if !inContainer && s.byPID != nil {
		container, inContainer = s.byPID(ev.TargetPID)
	}
	senderContainer := s.senderContainer(&ev, container)
	sender := s.proc.sender(ev.SenderPID)
	if senderContainer == "" && !sender.Gone && sender.PID == ev.TargetPID {
		// A thread of the target, whose cgroup read "/" as it exited.
		senderContainer = container
	}
	class := Classify(&ev, &sender)
	s.kills[class].Add(1)
	s.health.Event()
	detail := describe(&ev, &sender)
	s.logger.Debug("traced SIGKILL", "sender", class, "container", container, "detail", detail)
	if !inContainer {
		// Sent all the same, by pid alone: the target may be a container's
		// init already reaped, which the tracker joins to its exit by pid.
		container = ""
	}
	if s.sink != nil {
		s.sink.AddEvidence(attribution.Evidence{
			Container: container,
			Time:      at,
			Source:    SourceName,
			Kind:      attribution.KindSignal,
			Signal:    sigkill,
			Sender:    class,
			Pid:       ev.TargetPID,
			Comm:      string(ev.TargetComm),
			Code:      ev.Code,
			// The OOM killer sends from the allocating task, in the
			// victim's cgroup; a dying init sends to the rest of its
			// pid namespace, in its own.
			SenderContainer: senderContainer,
			Detail:          detail,
		})
	}
}

// senderContainer reads the container of the SIGKILL's sender, "" when
// it is on the host, is the idle task or was gone before it could be
// read. A sender of the target's own process (the OOM-killed process's
// allocating thread) is in the target's container, however its cgroup
// reads now: a dying task's v1 paths read "/", and an exited thread is
// gone from /proc at once. Measured on a v1 host: reading the allocating
// thread's cgroup found its container in 12 of 20 OOM kills.
func (s *Source) senderContainer(ev *Event, target string) string {
	switch {
	case ev.SenderPID <= 0:
		return ""
	case ev.SenderPID == ev.TargetPID || ev.SenderTGID == ev.TargetPID:
		return target
	}
	id, _ := s.proc.container(ev.SenderPID)
	return id
}
