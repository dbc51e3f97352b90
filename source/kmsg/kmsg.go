// Package kmsg reads kernel OOM kills from /dev/kmsg.
//
// The kernel prints, for every OOM kill, a one-line summary
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/docker/<id>,task_memcg=/docker/<id>,task=alloc,pid=12345,uid=0
//
// followed by
//
//	Memory cgroup out of memory: Killed process 12345 (alloc) total-vm:...
//
// The Source counts the summaries by constraint and, when the victim's
// cgroup is a container's, turns them into attribution evidence. The
// parsers are pure and usable on their own.
package kmsg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// DefaultPath is the kernel's log device.
const DefaultPath = "/dev/kmsg"

// SourceName is the evidence's Source.
const SourceName = "kmsg"

const (
	// readBufferSize is the read(2) size; /dev/kmsg returns one record
	// per read and fails with EINVAL when the buffer is too small for it.
	readBufferSize = 8 << 10
	// maxPartial bounds an unterminated line (from a file or FIFO).
	maxPartial = 64 << 10

	defaultRetryInterval = 30 * time.Second
	defaultJoinWait      = 500 * time.Millisecond
	defaultEOFPoll       = 100 * time.Millisecond
)

// Source tails /dev/kmsg and turns OOM-kill lines into evidence.
type Source struct {
	path   string
	sink   source.Sink
	health *source.Health
	logger *slog.Logger

	// retryInterval is the wait before re-opening after a failure;
	// joinWait how long an oom-kill summary waits for its "Killed
	// process" line; eofPoll how often a plain file is re-read at its end.
	retryInterval, joinWait, eofPoll time.Duration

	mu    sync.Mutex
	kills map[string]uint64

	// Owned by the Run goroutine.
	partial []byte
	pending *pendingKill
}

// pendingKill is an oom-kill summary waiting for its "Killed process" line.
type pendingKill struct {
	kill     OOMKill
	evidence attribution.Evidence
	hasID    bool
}

// New returns a Source reading path (DefaultPath when empty) that sends
// evidence to sink (which may be nil: the Source then only counts).
func New(path string, sink source.Sink, health *source.Health, logger *slog.Logger) *Source {
	if path == "" {
		path = DefaultPath
	}
	if health == nil {
		health = new(source.Health)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		path:          path,
		sink:          sink,
		health:        health,
		logger:        logger,
		retryInterval: defaultRetryInterval,
		joinWait:      defaultJoinWait,
		eofPoll:       defaultEOFPoll,
		kills:         map[string]uint64{},
	}
}

// Path is the file the Source reads.
func (s *Source) Path() string { return s.path }

// OOMKills returns the OOM kills seen since start, by constraint label
// (see Constraints). It is safe to call while Run runs.
func (s *Source) OOMKills() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.kills)
}

// Run reads the log until ctx is done, then returns nil. It starts at the
// end of the log: records from before Run are not replayed as new events.
// A failure to open or read marks the source down and is retried every
// 30s; it never ends Run.
func (s *Source) Run(ctx context.Context) error {
	var lastErr string
	for {
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("kernel log reader stopped")
		}
		s.health.SetUp(false, s.logger, err)
		if msg := err.Error(); msg != lastErr {
			s.logger.Error("cannot read the kernel log; kernel OOM kills will not be seen until it works",
				"evidence_source", s.health.Name(), "path", s.path, "err", err, "retry_in", s.retryInterval)
			lastErr = msg
		} else {
			s.logger.Debug("kernel log still unreadable", "evidence_source", s.health.Name(), "path", s.path, "err", err)
		}
		t := time.NewTimer(s.retryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// file is what the read loop needs of an *os.File.
type file interface {
	io.Reader
	SetReadDeadline(time.Time) error
}

func (s *Source) runOnce(ctx context.Context) error {
	// O_NONBLOCK: the runtime poller waits for records, so Close (on ctx
	// done) ends a blocked read, read deadlines work, and opening a FIFO
	// does not wait for a writer.
	f, err := os.OpenFile(s.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// Start at the end; a FIFO cannot seek, and needs not.
	if _, err := f.Seek(0, io.SeekEnd); err != nil && !errors.Is(err, syscall.ESPIPE) {
		s.logger.Debug("cannot seek to the end of the kernel log", "path", s.path, "err", err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	s.health.SetUp(true, s.logger, nil)
	s.logger.Info("reading kernel log", "evidence_source", s.health.Name(), "path", s.path)
	err = s.readLoop(ctx, f)
	s.flush()
	s.partial = s.partial[:0]
	return err
}

// readLoop reads until ctx is done or a read fails for good.
func (s *Source) readLoop(ctx context.Context, f file) error {
	buf := make([]byte, readBufferSize)
	for {
		if s.pending != nil {
			_ = f.SetReadDeadline(time.Now().Add(s.joinWait))
		} else {
			_ = f.SetReadDeadline(time.Time{})
		}
		n, err := f.Read(buf)
		if n > 0 {
			s.feed(buf[:n])
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, syscall.EPIPE):
			// The ring buffer wrapped past our position: records were
			// lost, the next read resumes at the oldest one kept.
			s.health.Error(s.logger, "kernel log overrun, records lost", err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.flush()
		case errors.Is(err, io.EOF):
			// A plain file at its end, or a FIFO without a writer.
			s.flush()
			t := time.NewTimer(s.eofPoll)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		default:
			s.health.Error(s.logger, "kernel log read failed", err)
			return fmt.Errorf("read %s: %w", s.path, err)
		}
	}
}

// feed splits data into lines and handles each record header line.
// /dev/kmsg gives one whole record per read; a file or FIFO may give
// several, or a part of one.
func (s *Source) feed(data []byte) {
	if len(s.partial) > 0 {
		s.partial = append(s.partial, data...)
		data = s.partial
	}
	for {
		line, rest, ok := bytes.Cut(data, []byte{'\n'})
		if !ok {
			break
		}
		data = rest
		// Continuation lines (" SUBSYSTEM=...") and blank lines carry
		// nothing we need.
		if len(line) == 0 || line[0] == ' ' {
			continue
		}
		s.handle(line)
	}
	switch {
	case len(data) > maxPartial:
		s.health.Error(s.logger, "kernel log line too long, dropped", fmt.Errorf("%d bytes without a newline", len(data)))
		s.partial = s.partial[:0]
	case len(data) > 0:
		s.partial = append(s.partial[:0], data...)
	default:
		s.partial = s.partial[:0]
	}
}

func (s *Source) handle(line []byte) {
	rec, err := ParseRecord(line)
	if err != nil {
		s.health.Error(s.logger, "malformed kernel log record", err)
		return
	}
	// Only the kernel itself logs with facility 0: userspace cannot forge
	// an OOM kill by writing to /dev/kmsg.
	if rec.Facility != 0 {
		return
	}
	if p := s.pending; p != nil {
		s.pending = nil
		if k, ok := ParseKilledProcess(rec.Message); ok && (k.PID == p.kill.PID || p.kill.PID == 0) {
			p.evidence.Detail += "; " + rec.Message
		}
		s.emit(p)
	}
	kill, ok := ParseOOMKill(rec.Message)
	if !ok {
		return
	}
	constraint := ConstraintLabel(kill.Constraint)
	s.mu.Lock()
	s.kills[constraint]++
	s.mu.Unlock()
	s.health.Event()
	id, hasID := ContainerIDFromCgroup(kill.TaskMemcg)
	s.logger.Debug("kernel oom kill", "constraint", kill.Constraint, "task", kill.Task, "pid", kill.PID,
		"task_memcg", kill.TaskMemcg, "container", id)
	s.pending = &pendingKill{
		kill:  kill,
		hasID: hasID,
		evidence: attribution.Evidence{
			Container:  id,
			Time:       wallTime(rec.Monotonic),
			Source:     SourceName,
			Kind:       attribution.KindKernelOOM,
			Constraint: kill.Constraint,
			Detail:     detail(kill),
		},
	}
}

// flush sends the pending summary without its "Killed process" line.
func (s *Source) flush() {
	if p := s.pending; p != nil {
		s.pending = nil
		s.emit(p)
	}
}

func (s *Source) emit(p *pendingKill) {
	if p.hasID && s.sink != nil {
		s.sink.AddEvidence(p.evidence)
	}
}

func detail(k OOMKill) string {
	d := "kernel oom-kill: task " + k.Task + " pid " + strconv.Itoa(k.PID) + " in " + k.TaskMemcg
	if k.OOMMemcg != "" && k.OOMMemcg != k.TaskMemcg {
		d += " (limit of " + k.OOMMemcg + ")"
	}
	if k.GlobalOOM {
		d += " (host-wide OOM)"
	}
	return d + ", constraint " + k.Constraint
}

// wallTime converts a time since boot into wall-clock time: boot time is
// now minus CLOCK_MONOTONIC now.
func wallTime(sinceBoot time.Duration) time.Time {
	now := time.Now()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return now.Round(0)
	}
	return now.Add(-time.Duration(ts.Nano())).Add(sinceBoot).Round(0)
}
