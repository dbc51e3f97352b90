// Package docker is the container runtime's evidence source, over the
// Docker Engine API: dockerd's, or Podman's Docker-compatible service
// (podman system service), told apart by the API's version answer. It
// lists containers once per connection, then follows the event stream;
// every API call it makes is driven by an event or a (re)connect, never by
// a scrape. It feeds the tracker with container metadata, starts and
// exits, and the evidence the events carry (oom, kill with its signal,
// stop).
package docker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// Compose labels copied into container_info.
const (
	labelComposeProject = "com.docker.compose.project"
	labelComposeService = "com.docker.compose.service"
)

// Options configure the source.
type Options struct {
	// Host is the daemon address; empty means DOCKER_HOST or the local
	// socket.
	Host string
	// OOMKills reads a container's cgroup oom_kill counter, so that a rise
	// is seen before the cgroup is removed; pid is the init's when known
	// (its cgroup is the container's wherever that lives). nil turns it off.
	OOMKills func(id string, pid int) (uint64, bool)
	// OnDataRoot is told Docker's data root (for the disk source).
	OnDataRoot func(path string)
	// MaxBackoff caps the wait between reconnects.
	MaxBackoff time.Duration
}

// Source follows one Docker daemon.
type Source struct {
	opts    Options
	client  *Client
	tracker *tracker.Tracker
	health  *source.Health
	logger  *slog.Logger
	// runtime is what answers on the socket, from the latest session.
	runtime atomic.Pointer[Runtime]
	// inspects feed the workers that make the inspect after a start or a
	// die off the event loop, one queue per worker; a container always
	// goes to the same one, so its inspects stay in order. nil: inline.
	inspects []chan inspectJob
}

// inspectJob is an inspect owed to the start or die event stamped at.
type inspectJob struct {
	id  string
	at  time.Time
	die bool
}

const (
	inspectWorkers = 4
	inspectQueue   = 1024
)

// New makes the client; it does not connect.
func New(opts Options, t *tracker.Tracker, health *source.Health, logger *slog.Logger) (*Source, error) {
	c, err := NewClient(opts.Host)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", opts.Host, err)
	}
	if opts.MaxBackoff <= 0 {
		// A local socket is cheap to ping, and every second away from the
		// stream is a second whose events a daemon restart would lose.
		opts.MaxBackoff = 2 * time.Second
	}
	return &Source{opts: opts, client: c, tracker: t, health: health, logger: logger}, nil
}

// Run follows the daemon until ctx ends, reconnecting with backoff.
func (s *Source) Run(ctx context.Context) {
	s.inspects = make([]chan inspectJob, inspectWorkers)
	for i := range s.inspects {
		s.inspects[i] = make(chan inspectJob, inspectQueue)
		go func(jobs <-chan inspectJob) {
			for {
				select {
				case job := <-jobs:
					s.inspect(ctx, job)
				case <-ctx.Done():
					return
				}
			}
		}(s.inspects[i])
	}
	source.Reconnect(ctx, s.health, s.logger, s.opts.MaxBackoff, s.session)
}

// queueInspect hands the inspect a start or die event owes to its
// container's worker: under a burst of deaths the event loop goes on
// counting while dockerd answers. A full queue makes it inline.
func (s *Source) queueInspect(ctx context.Context, job inspectJob) {
	if len(s.inspects) > 0 {
		h := fnv.New32a()
		_, _ = h.Write([]byte(job.id))
		select {
		case s.inspects[h.Sum32()%uint32(len(s.inspects))] <- job:
			return
		default:
		}
	}
	s.inspect(ctx, job)
}

// inspect completes what a start or die event said: after a start the
// run's init pid (and the oom_kill baseline of its cgroup), after a die
// the exact finish time and the OOMKilled flag, each only if the inspect
// is of that run. A --rm container may be gone already: the event stands.
func (s *Source) inspect(ctx context.Context, job inspectJob) {
	info, err := s.client.ContainerInspect(ctx, job.id)
	if err != nil {
		return
	}
	st, ok := runState(info)
	if !ok {
		return
	}
	if job.die {
		s.tracker.DescribeDeath(job.id, job.at, st)
		return
	}
	s.tracker.Inspected(metaFromInspect(info), job.at, st)
	s.observeOOMKills(job.id, st.Pid, job.at)
}

// replayOverlap is how far before the cursor a replay starts: the daemon
// stamps events before it publishes them, so two may arrive slightly out
// of order. The ledger recognises what it already applied.
const replayOverlap = time.Second

// session is one connection, in an order that loses nothing and counts
// nothing twice:
//  1. drain the daemon's replay of every event since the cursor (the
//     latest event handled, or the exporter's start), up to now;
//  2. reconcile against the container list, for what the daemon could
//     not replay (its buffer is bounded and does not survive a restart);
//  3. drain again, from the end of the first drain to the end of the
//     reconcile: the events stamped while it inspected, which the ledger
//     matches to the runs it saw. A die among them gives an exit the
//     reconcile inferred its code, so those exits are decided only now
//     (CaughtUp), however late the stream delivers;
//  4. follow the stream live from the end of the second drain.
func (s *Source) session(ctx context.Context) (streamed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.client.Ping(ctx); err != nil { // and negotiates the API version
		return false, err
	}
	rt := s.detectRuntime(ctx)
	if info, err := s.client.Info(ctx); err == nil && s.opts.OnDataRoot != nil && info.DockerRootDir != "" {
		s.opts.OnDataRoot(info.DockerRootDir)
	}
	drained := drainEnd(rt, time.Now())
	if err := s.drain(ctx, s.tracker.Cursor().Add(-replayOverlap), drained); err != nil {
		return false, fmt.Errorf("replay events: %w", err)
	}
	if err := s.reconcile(ctx); err != nil {
		return false, err
	}
	reconciled := drainEnd(rt, time.Now())
	if err := s.drain(ctx, drained, reconciled); err != nil {
		return false, fmt.Errorf("replay events during the reconcile: %w", err)
	}
	s.tracker.CaughtUp()
	stream, err := s.client.Events(ctx, eventOptions(reconciled, time.Time{}))
	if err != nil {
		return false, fmt.Errorf("follow events: %w", err)
	}
	defer stream.Close()
	s.health.SetUp(true, s.logger, nil)
	for {
		m, err := stream.Next()
		if err != nil && !s.malformed(err) {
			if errors.Is(err, io.EOF) {
				err = errors.New("event stream closed")
			}
			return true, err
		}
		if err == nil {
			s.handle(ctx, m)
		}
	}
}

// malformed counts and logs a line of the stream that is no event, and
// reports whether err was one: the stream goes on past it.
func (s *Source) malformed(err error) bool {
	var bad *MalformedEventError
	if !errors.As(err, &bad) {
		return false
	}
	s.health.Error(s.logger, "a line of the event stream that is no event skipped", err)
	return true
}

// drain handles the daemon's buffered events in [since, until]; the
// daemon ends the stream after them.
func (s *Source) drain(ctx context.Context, since, until time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.client.Events(ctx, eventOptions(since, until))
	if err != nil {
		return err
	}
	defer stream.Close()
	n := 0
	for {
		m, err := stream.Next()
		switch {
		case err == nil:
			s.handle(ctx, m)
			n++
		case errors.Is(err, io.EOF):
			s.logger.Debug("replayed events", "evidence_source", s.health.Name(), "since", since, "events", n)
			return nil
		case !s.malformed(err):
			return err
		}
	}
}

// eventOptions asks for container events from since (and up to until when
// not zero), at the nanosecond: Docker takes "seconds.nanoseconds".
func eventOptions(since, until time.Time) EventOptions {
	opts := EventOptions{Filters: map[string][]string{"type": {ContainerEvent}}}
	if !since.IsZero() {
		opts.Since = Stamp(since)
	}
	if !until.IsZero() {
		opts.Until = Stamp(until)
	}
	return opts
}

// reconcile brings the tracker in line with the daemon's list: metadata
// for all, and every run's state, from which the ledger infers exits the
// events could not tell (and ignores what it already counted).
func (s *Source) reconcile(ctx context.Context) error {
	list, err := s.client.ContainerList(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	present := make(map[string]bool, len(list))
	for _, c := range list {
		present[c.ID] = true
		info, err := s.client.ContainerInspect(ctx, c.ID)
		if IsNotFound(err) {
			delete(present, c.ID)
			continue
		}
		if err != nil {
			return fmt.Errorf("inspect %s: %w", shortID(c.ID), err)
		}
		s.tracker.Upsert(metaFromInspect(info))
		if st, ok := runState(info); ok {
			s.tracker.Observe(c.ID, st)
			if st.Running {
				s.observeOOMKills(c.ID, st.Pid, time.Now())
			}
		}
	}
	s.tracker.Vanished(present)
	return nil
}

func (s *Source) handle(ctx context.Context, m Message) {
	at := eventTime(m)
	id := m.Actor.ID
	attrs := m.Actor.Attributes
	s.health.Event()
	s.tracker.Seen(at)
	switch m.Action {
	case "create", "rename":
		s.tracker.Upsert(metaFromAttributes(id, attrs))
	case "start":
		s.tracker.Upsert(metaFromAttributes(id, attrs))
		s.tracker.Started(id, at)
		s.queueInspect(ctx, inspectJob{id: id, at: at})
	case "oom", "kill", "stop":
		if m.Action == "oom" {
			s.observeOOMKills(id, 0, at)
		}
		if e, ok := Evidence(m); ok {
			s.tracker.AddEvidence(e)
		}
	case "die":
		s.observeOOMKills(id, 0, at)
		s.tracker.Upsert(metaFromAttributes(id, attrs))
		code, _ := strconv.Atoi(attrs["exitCode"])
		if s.tracker.Died(id, at, code) {
			s.queueInspect(ctx, inspectJob{id: id, at: at, die: true})
		}
	case "destroy", "remove": // Podman says remove
		s.tracker.Removed(id, at)
	}
	// Podman's init (the runtime made the container), cleanup (conmon
	// tidied up after the exit) and sync (podman ps refreshed its state)
	// say nothing about a death.
}

// Evidence turns the events that say something about a coming death (oom,
// kill with its signal, stop) into evidence. Podman's kill event names no
// signal: its evidence has Signal 0, which no rule reads as a SIGKILL
// (podman kill -s TERM makes the same event); a traced SIGKILL or the
// kernel's word decides instead.
func Evidence(m Message) (attribution.Evidence, bool) {
	e := attribution.Evidence{Container: m.Actor.ID, Time: eventTime(m), Source: "docker"}
	who := "docker"
	if podmanEvent(m) {
		who = "podman"
	}
	switch m.Action {
	case "oom":
		e.Kind, e.Detail = attribution.KindDockerOOM, who+" event: oom (the container's memory cgroup hit an OOM)"
	case "kill":
		sig, named := m.Actor.Attributes["signal"]
		e.Kind, e.Detail = attribution.KindDockerKill, who+" event: kill, signal "+sig
		if !named {
			e.Detail = who + " event: kill (the runtime does not say which signal)"
		}
		e.Signal, _ = strconv.Atoi(sig)
	case "stop":
		e.Kind, e.Detail = attribution.KindDockerStop, who+" event: stop"
	default:
		return e, false
	}
	return e, true
}

func eventTime(m Message) time.Time {
	if m.TimeNano == 0 {
		return time.Unix(m.Time, 0)
	}
	return time.Unix(0, m.TimeNano)
}

func (s *Source) observeOOMKills(id string, pid int, at time.Time) {
	if s.opts.OOMKills == nil {
		return
	}
	if n, ok := s.opts.OOMKills(id, pid); ok {
		s.tracker.ObserveOOMKills(id, n, at)
	}
}

func metaFromAttributes(id string, attrs map[string]string) tracker.Meta {
	return tracker.Meta{
		ID: id, Name: attrs["name"], Image: attrs["image"],
		ComposeProject: attrs[labelComposeProject], ComposeService: attrs[labelComposeService],
	}
}

func metaFromInspect(info Container) tracker.Meta {
	m := tracker.Meta{ID: info.ID, Name: strings.TrimPrefix(info.Name, "/")}
	if info.Config != nil {
		m.Image = info.Config.Image
		m.ComposeProject = info.Config.Labels[labelComposeProject]
		m.ComposeService = info.Config.Labels[labelComposeService]
	}
	if info.State != nil {
		m.Pid = info.State.Pid
	}
	return m
}

// runState is inspect's account of the latest run; ok is false when
// inspect carried no state.
func runState(info Container) (tracker.RunState, bool) {
	st := info.State
	if st == nil {
		return tracker.RunState{}, false
	}
	return tracker.RunState{
		Running:      st.Running,
		StartedAt:    parseTime(st.StartedAt),
		FinishedAt:   parseTime(st.FinishedAt),
		ExitCode:     st.ExitCode,
		Pid:          st.Pid,
		RestartCount: info.RestartCount,
		OOMKilled:    st.OOMKilled,
	}, true
}

// parseTime reads Docker's RFC 3339 times; Docker's "never" is the zero
// time 0001-01-01T00:00:00Z, which stays zero.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// shortID is an id as docker ps shows it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
