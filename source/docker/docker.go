// Package docker is the Docker evidence source. It lists containers once
// per connection, then follows the event stream; every API call it makes
// is driven by an event or a (re)connect, never by a scrape. It feeds the
// tracker with container metadata, starts and exits, and the evidence the
// events carry (oom, kill with its signal, stop).
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

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
	// is seen before the cgroup is removed; nil turns that off.
	OOMKills func(id string) (uint64, bool)
	// OnDataRoot is told Docker's data root (for the disk source).
	OnDataRoot func(path string)
	// MaxBackoff caps the wait between reconnects.
	MaxBackoff time.Duration
}

// Source follows one Docker daemon.
type Source struct {
	opts    Options
	client  *client.Client
	tracker *tracker.Tracker
	health  *source.Health
	logger  *slog.Logger
	// lastEvent is the time of the last event handled; a reconnect asks
	// the daemon to replay from there, so a dropped stream loses nothing
	// the daemon still remembers.
	lastEvent time.Time
	started   time.Time
}

// New makes the client; it does not connect.
func New(opts Options, t *tracker.Tracker, health *source.Health, logger *slog.Logger) (*Source, error) {
	clientOpts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opts.Host != "" {
		clientOpts = append(clientOpts, client.WithHost(opts.Host))
	}
	c, err := client.NewClientWithOpts(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", opts.Host, err)
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	return &Source{opts: opts, client: c, tracker: t, health: health, logger: logger, started: time.Now()}, nil
}

// Run follows the daemon until ctx ends, reconnecting with backoff.
func (s *Source) Run(ctx context.Context) {
	source.Reconnect(ctx, s.health, s.logger, s.opts.MaxBackoff, s.session)
}

// session is one connection: subscribe first, then reconcile from the
// list, then handle events. Subscribing first means an exit between the
// list and the stream is seen by both, and the tracker counts it once.
func (s *Source) session(ctx context.Context) (streamed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := s.client.Ping(ctx); err != nil {
		return false, err
	}
	s.client.NegotiateAPIVersion(ctx)
	if info, err := s.client.Info(ctx); err == nil && s.opts.OnDataRoot != nil && info.DockerRootDir != "" {
		s.opts.OnDataRoot(info.DockerRootDir)
	}
	opts := events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))}
	if !s.lastEvent.IsZero() {
		opts.Since = strconv.FormatInt(s.lastEvent.Unix(), 10)
	}
	msgs, errs := s.client.Events(ctx, opts)
	if err := s.reconcile(ctx); err != nil {
		return false, err
	}
	s.health.SetUp(true, s.logger, nil)
	for {
		select {
		case m := <-msgs:
			s.handle(ctx, m)
		case err := <-errs:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return true, err
		}
	}
}

// reconcile brings the tracker in line with the daemon's list: metadata
// for all, starts for the running, and exits that happened while we were
// not listening (those before the exporter started are only a baseline).
func (s *Source) reconcile(ctx context.Context) error {
	list, err := s.client.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	present := make(map[string]bool, len(list))
	for _, c := range list {
		present[c.ID] = true
		info, err := s.client.ContainerInspect(ctx, c.ID)
		if client.IsErrNotFound(err) {
			delete(present, c.ID)
			continue
		}
		if err != nil {
			return fmt.Errorf("inspect %s: %w", c.ID[:12], err)
		}
		s.tracker.Upsert(metaFromInspect(info))
		st := info.State
		if st == nil {
			continue
		}
		startedAt := parseTime(st.StartedAt)
		switch {
		case st.Running:
			s.tracker.Started(c.ID, startedAt)
			s.observeOOMKills(c.ID, time.Now())
		case !parseTime(st.FinishedAt).IsZero() && !startedAt.IsZero():
			exit := exitFromInspect(info)
			if exit.Time.Before(s.started) {
				s.tracker.Baseline(exit, startedAt)
			} else if s.tracker.Exited(exit, startedAt) {
				s.logger.Info("counted an exit seen on reconnect", "name", exit.Name, "exit_code", exit.ExitCode)
			}
		}
	}
	s.tracker.Forget(present)
	return nil
}

func (s *Source) handle(ctx context.Context, m events.Message) {
	at := eventTime(m)
	if at.After(s.lastEvent) {
		s.lastEvent = at
	}
	id := m.Actor.ID
	attrs := m.Actor.Attributes
	s.health.Event()
	switch action := string(m.Action); action {
	case "create", "rename":
		s.tracker.Upsert(metaFromAttributes(id, attrs))
	case "start":
		s.tracker.Upsert(metaFromAttributes(id, attrs))
		startedAt := at
		if info, err := s.client.ContainerInspect(ctx, id); err == nil {
			s.tracker.Upsert(metaFromInspect(info))
			if info.State != nil {
				startedAt = parseTime(info.State.StartedAt)
			}
		}
		s.tracker.Started(id, startedAt)
		s.observeOOMKills(id, at)
	case "oom", "kill", "stop":
		if m.Action == "oom" {
			s.observeOOMKills(id, at)
		}
		if e, ok := Evidence(m); ok {
			s.tracker.AddEvidence(e)
		}
	case "die":
		s.observeOOMKills(id, at)
		s.tracker.Exited(s.exitFromDie(ctx, id, attrs, at), time.Time{})
	case "destroy":
		s.tracker.Removed(id)
	}
}

// Evidence turns the events that say something about a coming death (oom,
// kill with its signal, stop) into evidence.
func Evidence(m events.Message) (attribution.Evidence, bool) {
	e := attribution.Evidence{Container: m.Actor.ID, Time: eventTime(m), Source: "docker"}
	switch m.Action {
	case "oom":
		e.Kind, e.Detail = attribution.KindDockerOOM, "docker event: oom (the container's memory cgroup hit an OOM)"
	case "kill":
		e.Kind, e.Detail = attribution.KindDockerKill, "docker event: kill, signal "+m.Actor.Attributes["signal"]
		e.Signal, _ = strconv.Atoi(m.Actor.Attributes["signal"])
	case "stop":
		e.Kind, e.Detail = attribution.KindDockerStop, "docker event: stop"
	default:
		return e, false
	}
	return e, true
}

func eventTime(m events.Message) time.Time {
	if m.TimeNano == 0 {
		return time.Unix(m.Time, 0)
	}
	return time.Unix(0, m.TimeNano)
}

// exitFromDie prefers inspect's exact finish time and OOMKilled flag; a
// container run with --rm may already be gone, and then the event's own
// exit code and time stand.
func (s *Source) exitFromDie(ctx context.Context, id string, attrs map[string]string, at time.Time) attribution.Exit {
	code, _ := strconv.Atoi(attrs["exitCode"])
	exit := attribution.Exit{ContainerID: id, Name: attrs["name"], Image: attrs["image"], ExitCode: code, Time: at}
	info, err := s.client.ContainerInspect(ctx, id)
	if err != nil || info.State == nil {
		return exit
	}
	if finished := parseTime(info.State.FinishedAt); !finished.IsZero() && !finished.After(at) {
		exit.Time = finished
	}
	exit.OOMKilled = info.State.OOMKilled
	return exit
}

func (s *Source) observeOOMKills(id string, at time.Time) {
	if s.opts.OOMKills == nil {
		return
	}
	if n, ok := s.opts.OOMKills(id); ok {
		s.tracker.ObserveOOMKills(id, n, at)
	}
}

func metaFromAttributes(id string, attrs map[string]string) tracker.Meta {
	return tracker.Meta{
		ID: id, Name: attrs["name"], Image: attrs["image"],
		ComposeProject: attrs[labelComposeProject], ComposeService: attrs[labelComposeService],
	}
}

func metaFromInspect(info container.InspectResponse) tracker.Meta {
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

func exitFromInspect(info container.InspectResponse) attribution.Exit {
	m := metaFromInspect(info)
	return attribution.Exit{
		ContainerID: info.ID, Name: m.Name, Image: m.Image,
		ExitCode: info.State.ExitCode, Time: parseTime(info.State.FinishedAt), OOMKilled: info.State.OOMKilled,
	}
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
