// Package systemd is the systemd evidence source. It follows one systemd
// manager over D-Bus (the system bus, or a user manager's session bus),
// keeps the PartOf=/BindsTo= graph of its units current across
// daemon-reload, and sees every unit state change from the manager's
// change signals, without polling. When a unit stops within moments of a
// unit it is PartOf= or BindsTo= stopping, restarting or (BindsTo= only)
// failing, the stop was propagated: it is counted, and each container the
// unit owns gets KindSystemdPartOf evidence stamped at the stop.
//
// A unit owns a container when
//   - its ExecStart runs `docker run|create … --name X` or `docker start X`,
//   - its ExecStop runs `docker stop|kill|rm X`
//     (also as `docker container …`, behind `sh -c`, `exec` or `env`;
//     a name with an unexpanded $VAR is skipped), or
//   - the container's init process (its PID as Docker reported it) runs
//     inside the unit's ControlGroup: --cgroup-parent set to the unit's
//     cgroup or, for a slice unit, the slice.
package systemd

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// SourceName is the evidence's Source.
const SourceName = "systemd"

// Bus names accepted by Options.Bus.
const (
	SystemBus = "system"
	UserBus   = "user"
)

// Options configure the source.
type Options struct {
	// Bus is SystemBus or UserBus (DBUS_SESSION_BUS_ADDRESS, else
	// $XDG_RUNTIME_DIR/bus).
	Bus string
	// ProcRoot is where the host's /proc is mounted; "/proc" when empty.
	ProcRoot string
	// MaxBackoff caps the wait between reconnects.
	MaxBackoff time.Duration
	// Retention keeps the stop series of a unit systemd no longer has this
	// long after its last stop (an hour when zero).
	Retention time.Duration
}

// Containers is what the source needs to know of Docker's containers; the
// tracker provides it.
type Containers interface {
	IDByName(name string) (string, bool)
	Views() map[string]tracker.View
	// SetSystemdUnit names the unit that runs a container.
	SetSystemdUnit(id, unit string)
}

// StopKey labels a propagated stop: the unit stopped and the unit it
// followed.
type StopKey struct{ Unit, PartOf string }

// Source follows one systemd manager.
type Source struct {
	opts       Options
	sink       source.Sink
	containers Containers
	health     *source.Health
	logger     *slog.Logger
	// now and after are the clock; tests replace them.
	now   func() time.Time
	after func(d time.Duration, f func())

	mu    sync.Mutex
	graph *Graph
	stops map[StopKey]uint64
	// stopAt is each stop series' last stop, for its retention.
	stopAt map[StopKey]time.Time
	// owners are the services that can own containers, for the live
	// unit ↔ container association.
	owners map[string]owner
	// initCgroups caches each running container's init cgroups; only the
	// association (one goroutine) touches it.
	initCgroups map[string]initCgroups
}

// New returns a source that sends evidence to sink; it does not connect.
func New(opts Options, sink source.Sink, containers Containers, health *source.Health, logger *slog.Logger) *Source {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Retention <= 0 {
		opts.Retention = time.Hour
	}
	if health == nil {
		health = new(source.Health)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		opts: opts, sink: sink, containers: containers, health: health, logger: logger,
		now:         time.Now,
		after:       func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		graph:       NewGraph(),
		stops:       map[StopKey]uint64{},
		stopAt:      map[StopKey]time.Time{},
		owners:      map[string]owner{},
		initCgroups: map[string]initCgroups{},
	}
}

// PartOfStops returns the propagated stops counted since start, but for
// those of units gone for longer than the retention.
func (s *Source) PartOfStops() map[StopKey]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.stops)
}

// Run follows the manager until ctx ends, reconnecting with backoff when
// the bus or the manager goes away; it never gives up.
func (s *Source) Run(ctx context.Context) {
	source.Reconnect(ctx, s.health, s.logger, s.opts.MaxBackoff, s.session)
}

// stop is a unit's fall from up to down, waiting for its parents'
// signals to settle.
type stop struct {
	unit       string
	at         time.Time
	containers []string          // ids, resolved at the stop
	restart    map[string]string // parent → its Restart= setting
}

// decide finds the parent whose change the stop followed, if any, and
// counts and reports the propagated stop.
func (s *Source) decide(st stop) {
	s.mu.Lock()
	var (
		edge   Edge
		action Action
		lag    time.Duration
	)
	for _, e := range s.graph.Parents(st.unit) {
		if a, l := ParentAction(s.graph.History(e.Parent), e.Relation, st.at); a != NoAction {
			edge, action, lag = e, a, l
			break
		}
	}
	if action != NoAction {
		k := StopKey{Unit: st.unit, PartOf: edge.Parent}
		s.stops[k]++
		s.stopAt[k] = st.at
	}
	s.mu.Unlock()
	if action == NoAction {
		s.logger.Debug("unit stop not propagated by PartOf=/BindsTo=", "evidence_source", SourceName, "unit", st.unit)
		return
	}
	s.health.Event()
	detail := Detail(action, edge.Parent, st.restart[edge.Parent], st.unit, edge.Relation)
	s.logger.Info("propagated unit stop", "evidence_source", SourceName, "unit", st.unit, "partof", edge.Parent,
		"detail", detail, "parent_change_offset", lag, "containers", len(st.containers))
	for _, id := range st.containers {
		s.sink.AddEvidence(attribution.Evidence{
			Container: id, Time: st.at, Source: SourceName, Kind: attribution.KindSystemdPartOf,
			Unit: st.unit, PartOf: edge.Parent, Detail: detail,
		})
	}
}

// owned returns the ids of the containers the unit owns: by the names its
// commands use, and by their init process being in its cgroup.
func (s *Source) owned(names []string, cgroup string) []string {
	var ids []string
	for _, n := range names {
		if id, ok := s.containers.IDByName(n); ok {
			ids = append(ids, id)
		}
	}
	if cgroup == "" {
		return ids
	}
	for id, v := range s.containers.Views() {
		if v.Running && !slices.Contains(ids, id) && InCgroup(s.opts.ProcRoot, v.Pid, cgroup) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
