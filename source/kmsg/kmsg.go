// Package kmsg reads kernel OOM kills from /dev/kmsg.
//
// For every kill the kernel prints
//
//	Memory cgroup out of memory: Killed process 12345 (alloc) total-vm:...   (a memory cgroup's limit)
//	Out of memory: Killed process 12345 (alloc) total-vm:...                 (the host, a cpuset or a mempolicy)
//
// and, before it, a one-line summary that names the victim's cgroup
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/docker/<id>,task_memcg=/docker/<id>,task=alloc,pid=12345,uid=0
//
// but the summary is part of the OOM report the kernel rate-limits (10
// per 5s, then "callbacks suppressed"): in a storm most kills have only
// their "Killed process" line. The Source counts every kill once (a
// summary and its Killed line are one kill, joined by pid), and turns each
// into attribution evidence with the victim's pid, and its container when
// the summary's cgroup or a pid lookup names one. The parsers are pure
// and usable on their own.
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
	"strings"
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
	defaultCatchUpIdle   = 50 * time.Millisecond

	// sameKillWindow is how close (in kernel time) a Killed line must
	// follow a summary already sent alone to be taken as its kill.
	sameKillWindow = 5 * time.Second
)

// Options configure a Source.
type Options struct {
	// Path is the kernel log; DefaultPath when empty.
	Path string
	// ContainerByPID maps an OOM victim's pid to its container id, for
	// kills whose summary (and its task_memcg) the kernel did not print,
	// or whose cgroup names no container. It is called from the reading
	// goroutine as soon as the kill is read, while the victim (or its
	// zombie) is most likely still there, and only for kills read live,
	// never for records replayed from before the Source started: their
	// pids may belong to other processes by now. It may be nil.
	ContainerByPID func(pid int) (string, bool)
	// Since, when non-zero, makes the Source read the log from its oldest
	// record instead of its end, and take the records stamped at or after
	// Since: the kills that happened while the exporter was down (the
	// ring buffer is small: a busy host may have dropped them). Those
	// kills are counted in OOMKills too: the counter counts the kills the
	// kernel log showed this process, and a restart resets it anyway.
	// A record's time is derived from its time since boot, so it can be
	// off by the drift between the kernel's log clock and
	// CLOCK_MONOTONIC (seconds on a host up for weeks).
	Since time.Time
}

// Source tails /dev/kmsg and turns OOM-kill lines into evidence.
type Source struct {
	opts   Options
	sink   source.Sink
	health *source.Health
	logger *slog.Logger

	// retryInterval is the wait before re-opening after a failure;
	// joinWait how long an oom-kill summary waits for its "Killed
	// process" line; eofPoll how often a plain file is re-read at its end;
	// catchUpIdle how long a read may wait before a replay counts as
	// caught up.
	retryInterval, joinWait, eofPoll, catchUpIdle time.Duration

	mu    sync.Mutex
	kills map[string]uint64

	// Owned by the Run goroutine.
	partial []byte
	pending *pendingKill
	// chosen is the victim an old kernel's "Kill process" line named, for
	// the "Killed process" line that follows.
	chosen *Victim
	// lastAlone is the last summary sent without its Killed line: a late
	// Killed line of the same pid is that kill, not another.
	lastAlone struct {
		pid int
		at  time.Duration
	}
	// catchingUp is set while records already in the log when it was
	// opened are read (Since, or a re-open); replayed kills get no
	// ContainerByPID lookup.
	catchingUp bool
	// lastSeq is the sequence number of the last record read (seenSeq
	// once there was one); a re-open skips what was read before.
	lastSeq   uint64
	seenSeq   bool
	skipSeq   bool
	skipUntil uint64
}

// pendingKill is one OOM kill being assembled from its lines.
type pendingKill struct {
	// at is the first line's time since boot.
	at time.Duration
	// summary is the oom-kill: line, when there was one.
	summary    OOMKill
	hasSummary bool
	// killed is the "Killed process" line, when there was one.
	killed    Killed
	killedMsg string
	hasKilled bool
	// container is the victim's container, from the summary's task_memcg
	// or from Options.ContainerByPID (byPID).
	container string
	byPID     bool
	// live is set when the kill was read live, not replayed.
	live bool
}

// pid is the victim's pid: the Killed line's (an old kernel may kill a
// child of the task the summary names), else the summary's.
func (p *pendingKill) pid() int {
	if p.hasKilled {
		return p.killed.PID
	}
	return p.summary.PID
}

// constraint is the summary's constraint, else the one the Killed line's
// reason implies ("" when neither tells).
func (p *pendingKill) constraint() string {
	if p.hasSummary && p.summary.Constraint != "" {
		return p.summary.Constraint
	}
	if p.hasKilled {
		return p.killed.Constraint()
	}
	return ""
}

// New returns a Source reading opts.Path that sends evidence to sink
// (which may be nil: the Source then only counts).
func New(opts Options, sink source.Sink, health *source.Health, logger *slog.Logger) *Source {
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if health == nil {
		health = new(source.Health)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		opts:          opts,
		sink:          sink,
		health:        health,
		logger:        logger,
		retryInterval: defaultRetryInterval,
		joinWait:      defaultJoinWait,
		eofPoll:       defaultEOFPoll,
		catchUpIdle:   defaultCatchUpIdle,
		kills:         map[string]uint64{},
	}
}

// Path is the file the Source reads.
func (s *Source) Path() string { return s.opts.Path }

// OOMKills returns the OOM kills seen since start, by constraint label
// (see Constraints). It is safe to call while Run runs.
func (s *Source) OOMKills() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.kills)
}

// Run reads the log until ctx is done, then returns nil. It starts at the
// end of the log (records from before Run are not replayed as new events)
// unless Options.Since is set. A failure to open or read marks the source
// down and is retried every 30s; it never ends Run. A re-open after a
// failure reads on from the last record read, so kills logged while the
// log could not be read are not lost (unless the ring buffer dropped
// them).
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
				"evidence_source", s.health.Name(), "path", s.opts.Path, "err", err, "retry_in", s.retryInterval)
			lastErr = msg
		} else {
			s.logger.Debug("kernel log still unreadable", "evidence_source", s.health.Name(), "path", s.opts.Path, "err", err)
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
	f, err := os.OpenFile(s.opts.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// A fresh start reads from the end, a replay (Since, or a re-open)
	// from the oldest record; a FIFO cannot seek, and needs not.
	s.catchingUp = !s.opts.Since.IsZero() || s.seenSeq
	s.skipSeq, s.skipUntil = s.seenSeq, s.lastSeq
	if !s.catchingUp {
		if _, err := f.Seek(0, io.SeekEnd); err != nil && !errors.Is(err, syscall.ESPIPE) {
			s.logger.Debug("cannot seek to the end of the kernel log", "path", s.opts.Path, "err", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	s.health.SetUp(true, s.logger, nil)
	s.logger.Info("reading kernel log", "evidence_source", s.health.Name(), "path", s.opts.Path,
		"replay", s.catchingUp, "since", s.opts.Since)
	err = s.readLoop(ctx, f)
	s.flush()
	s.partial = s.partial[:0]
	return err
}

// readLoop reads until ctx is done or a read fails for good.
func (s *Source) readLoop(ctx context.Context, f file) error {
	buf := make([]byte, readBufferSize)
	for {
		switch {
		case s.catchingUp:
			// A replay is over when the log has nothing more at once.
			_ = f.SetReadDeadline(time.Now().Add(s.catchUpIdle))
		case s.pending != nil:
			_ = f.SetReadDeadline(time.Now().Add(s.joinWait))
		default:
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
			s.caughtUp()
			s.flush()
		case errors.Is(err, io.EOF):
			// A plain file at its end, or a FIFO without a writer.
			s.caughtUp()
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
			return fmt.Errorf("read %s: %w", s.opts.Path, err)
		}
	}
}

func (s *Source) caughtUp() {
	if s.catchingUp {
		s.catchingUp = false
		s.logger.Debug("kernel log replay done", "evidence_source", s.health.Name(), "last_seq", s.lastSeq)
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

// handle takes one record. The OOM killer runs under a lock, so one
// kill's lines are never interleaved with another kill's; other
// subsystems' records may come between them.
func (s *Source) handle(line []byte) {
	rec, err := ParseRecord(line)
	if err != nil {
		s.health.Error(s.logger, "malformed kernel log record", err)
		return
	}
	if s.skipSeq {
		// A re-open: skip what the last open read.
		if rec.Seq <= s.skipUntil {
			return
		}
		s.skipSeq = false
	}
	s.lastSeq, s.seenSeq = rec.Seq, true
	// Only the kernel itself logs with facility 0: userspace cannot forge
	// an OOM kill by writing to /dev/kmsg.
	if rec.Facility != 0 {
		return
	}
	if s.catchingUp && !s.opts.Since.IsZero() && wallTime(rec.Monotonic).Before(s.opts.Since) {
		return
	}
	msg := rec.Message
	switch {
	case strings.HasPrefix(msg, oomKillPrefix):
		if k, ok := ParseOOMKill(msg); ok {
			s.summary(rec, k)
		}
	case strings.Contains(msg, killedProcess):
		if k, ok := ParseKilledProcess(msg); ok {
			s.killedLine(rec, k)
		}
	case strings.Contains(msg, killProcess):
		if v, ok := ParseKillProcess(msg); ok {
			s.chosen = &v
		}
	case strings.HasSuffix(msg, skippedSuffix):
		if v, ok := ParseSkippedVictim(msg); ok {
			s.skipped(v)
		}
	}
}

// summary starts a kill from an oom-kill: line; its Killed line should
// follow.
func (s *Source) summary(rec Record, k OOMKill) {
	// A summary still waiting lost its Killed line.
	s.flush()
	s.chosen = nil
	p := &pendingKill{at: rec.Monotonic, summary: k, hasSummary: true, live: !s.catchingUp}
	p.container, _ = ContainerIDFromCgroup(k.TaskMemcg)
	if p.container == "" {
		// The victim is alive still: the SIGKILL comes after the summary.
		s.lookup(p, k.PID)
	}
	s.pending = p
}

// killedLine takes a "Killed process" line: the kill the pending summary
// announced, or a kill of its own (its summary rate-limited away).
func (s *Source) killedLine(rec Record, k Killed) {
	chosen := s.chosen
	s.chosen = nil
	if k.Reason == "" && chosen != nil {
		// Linux < 5.1: the reason was on the "Kill process" line.
		k.Reason = chosen.Reason
	}
	if p := s.pending; p != nil {
		sp := p.summary.PID
		if k.PID == sp || sp == 0 || (chosen != nil && chosen.PID == sp) {
			// The summary's kill (on Linux < 5.1 perhaps of a child of
			// the task it named).
			s.pending = nil
			p.killed, p.killedMsg, p.hasKilled = k, rec.Message, true
			if p.container == "" && k.PID != sp {
				s.lookup(p, k.PID)
			}
			s.emit(p)
			return
		}
		s.flush()
	}
	if k.PID == s.lastAlone.pid && k.PID != 0 && rec.Monotonic-s.lastAlone.at < sameKillWindow {
		// The summary went out alone (its join wait ran out); this is
		// its kill, already counted.
		s.logger.Debug("kernel Killed process line after its summary was sent", "pid", k.PID)
		return
	}
	p := &pendingKill{at: rec.Monotonic, killed: k, killedMsg: rec.Message, hasKilled: true, live: !s.catchingUp}
	s.lookup(p, k.PID)
	s.emit(p)
}

// skipped takes "OOM victim PID (comm) is already exiting": the pending
// summary's kill did not happen.
func (s *Source) skipped(v Victim) {
	if p := s.pending; p != nil && p.summary.PID == v.PID {
		s.pending = nil
		s.logger.Debug("kernel OOM victim was already exiting; not a kill", "pid", v.PID, "comm", v.Comm)
	}
}

// lookup asks Options.ContainerByPID for a live kill's victim.
func (s *Source) lookup(p *pendingKill, pid int) {
	if !p.live || pid <= 0 || s.opts.ContainerByPID == nil {
		return
	}
	if id, ok := s.opts.ContainerByPID(pid); ok && id != "" {
		p.container, p.byPID = id, true
	}
}

// flush sends the pending summary without its "Killed process" line.
func (s *Source) flush() {
	if p := s.pending; p != nil {
		s.pending = nil
		s.lastAlone.pid, s.lastAlone.at = p.summary.PID, p.at
		s.emit(p)
	}
}

// emit counts one kill and sends its evidence. Evidence that names
// neither a container nor a pid could not be joined to any exit, and is
// not sent.
func (s *Source) emit(p *pendingKill) {
	constraint := p.constraint()
	s.mu.Lock()
	s.kills[ConstraintLabel(constraint)]++
	s.mu.Unlock()
	s.health.Event()
	e := attribution.Evidence{
		Container:  p.container,
		Time:       wallTime(p.at),
		Source:     SourceName,
		Kind:       attribution.KindKernelOOM,
		Constraint: constraint,
		Pid:        p.pid(),
		Comm:       p.summary.Task,
		Detail:     detail(p),
	}
	if p.hasKilled {
		e.Comm = p.killed.Comm
	}
	s.logger.Debug("kernel oom kill", "constraint", constraint, "pid", e.Pid, "comm", e.Comm,
		"task_memcg", p.summary.TaskMemcg, "container", e.Container, "by_pid", p.byPID, "summary", p.hasSummary)
	if s.sink != nil && (e.Container != "" || e.Pid != 0) {
		s.sink.AddEvidence(e)
	}
}

// detail is the evidence's sentence: the summary in short, the Killed
// line as the kernel wrote it, and how the container was found when the
// summary did not name it.
func detail(p *pendingKill) string {
	var b strings.Builder
	if p.hasSummary {
		k := p.summary
		b.WriteString("kernel oom-kill: task " + k.Task + " pid " + strconv.Itoa(k.PID) + " in " + k.TaskMemcg)
		if k.OOMMemcg != "" && k.OOMMemcg != k.TaskMemcg {
			b.WriteString(" (limit of " + k.OOMMemcg + ")")
		}
		if k.GlobalOOM {
			b.WriteString(" (host-wide OOM)")
		}
		b.WriteString(", constraint " + k.Constraint)
		if p.hasKilled {
			b.WriteString("; " + p.killedMsg)
		}
	} else {
		b.WriteString("kernel: " + p.killedMsg + " (no oom-kill summary: the kernel rate-limits it)")
	}
	if p.byPID {
		b.WriteString("; container found by the victim's pid")
	}
	return b.String()
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
