// Package tracker is the exporter's memory of containers: which exist and
// what they are called (the registry), which runs ended and were counted
// exactly once (the ledger), the evidence the sources saw (the evidence
// index) and the verdicts the attribution engine gave (the verdict
// store). Sources write to it as events arrive; collectors and /explain
// read snapshots of it, so a scrape never calls Docker.
package tracker

import (
	"log/slog"
	"sync"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/internal/shrink"
)

// Meta is what the runtime tells about a container; the tracker keeps the
// last known copy of it.
type Meta struct {
	ID             string // 64 hex
	Name           string // without the leading slash
	Image          string
	ComposeProject string
	ComposeService string
	SystemdUnit    string
	// Kubernetes identity, from the CRI labels of a kubelet's container;
	// empty elsewhere. Such a container's Name is namespace/pod/container,
	// so that a pod's restarts (a new container id each) add up under it.
	Namespace, Pod, PodUID, Container string
	// Pid is the host pid of the current run's init, 0 when not running.
	Pid int
}

// Config sets the tracker's time rules.
type Config struct {
	// Settle is how long after a death the verdict waits for late evidence.
	Settle time.Duration
	// Window is how far before a death evidence may lie.
	Window time.Duration
	// Retention keeps a removed container name's exit series this long.
	Retention time.Duration
	// MaxVerdicts bounds the verdicts kept for /explain.
	MaxVerdicts int
}

// DeathProbe samples host-wide conditions at a death (disk pressure); its
// evidence joins the container's.
type DeathProbe func(at time.Time) []attribution.Evidence

// Tracker is safe for concurrent use.
type Tracker struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time
	// after schedules the verdict after the settle delay; tests replace it
	// to decide at once.
	after  func(d time.Duration, f func())
	probes []DeathProbe
	start  time.Time

	mu         sync.Mutex
	containers map[string]*container
	// containersPeak lets sweep give back the table of a wave of
	// containers that went.
	containersPeak shrink.Peak
	ledger         ledger
	exits          exitCounts
	evidence       evidenceIndex
	verdicts       verdictStore
	// pending are the exits counted but not yet decided, by their run.
	pending map[*run]*pendingExit
	// due are verdicts to schedule once mu is released.
	due []func()
	// reconciled are the runs whose exits a reconcile inferred, held
	// undecided until CaughtUp: a die event stamped before the reconcile's
	// inspect may still be on its way, with the exit's code and time.
	reconciled []*run
	// changed counts the ledger's changes; the state saver writes when it
	// moved.
	changed uint64
	// swept is when the tombstones and old evidence were last dropped.
	swept time.Time
	// saved is the changed count last written; only SaveState's caller
	// (one goroutine) touches it.
	saved uint64
	// counted is signalled when an exit was counted: the state saver
	// writes then, so that a crash right after cannot count it again.
	counted chan struct{}
	wg      sync.WaitGroup
}

// container is the registry's record of one container id.
type container struct {
	Meta
	running bool
	// lastExit is the latest exit, for the last-exit gauges.
	lastExit  *attribution.Exit
	lastCause attribution.Cause
	// oomKills is the last cgroup oom_kill count seen, at oomKillsSeen.
	oomKills     uint64
	oomKillsSeen time.Time
}

// pendingExit is an exit waiting out the settle delay.
type pendingExit struct {
	exit    attribution.Exit
	kube    Kube
	probed  []attribution.Evidence
	decided bool
}

// New returns an empty tracker; no exit before now counts as new.
func New(cfg Config, logger *slog.Logger, probes ...DeathProbe) *Tracker {
	if cfg.MaxVerdicts <= 0 {
		cfg.MaxVerdicts = 1000
	}
	t := &Tracker{
		cfg:        cfg,
		logger:     logger,
		now:        time.Now,
		after:      func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		probes:     probes,
		containers: map[string]*container{},
		ledger:     newLedger(),
		exits:      newExitCounts(),
		evidence:   newEvidenceIndex(),
		verdicts:   verdictStore{max: cfg.MaxVerdicts},
		pending:    map[*run]*pendingExit{},
		counted:    make(chan struct{}, 1),
	}
	t.start = t.now()
	t.ledger.horizon = t.start
	return t
}

// record returns the container with id, creating it. Callers hold mu.
func (t *Tracker) record(id string) *container {
	c, ok := t.containers[id]
	if !ok {
		c = &container{Meta: Meta{ID: id}}
		t.containers[id] = c
	}
	return c
}

// Upsert stores what the runtime says about a container. Empty fields
// keep what was known: an event that names only the container (a rename)
// does not wipe its pid or unit.
func (t *Tracker) Upsert(m Meta) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.upsert(m)
}

// Inspected stores an inspect made after the start event stamped at: what
// it says of the container (Upsert) and of the run (DescribeRun). An
// inspect answered before the container's destroy may be applied after
// it; it is then dropped, or it would bring the removed container back,
// named, its name's exit series held live for good.
func (t *Tracker) Inspected(m Meta, at time.Time, st RunState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ledger.removedSince(m.ID, at) {
		return
	}
	t.upsert(m)
	t.ledger.describe(m.ID, at, st)
}

// upsert is Upsert's body. Callers hold mu.
func (t *Tracker) upsert(m Meta) {
	c := t.record(m.ID)
	old := c.Meta
	keep := func(s *string, was string) {
		if *s == "" {
			*s = was
		}
	}
	keep(&m.Name, old.Name)
	keep(&m.Image, old.Image)
	keep(&m.ComposeProject, old.ComposeProject)
	keep(&m.ComposeService, old.ComposeService)
	keep(&m.SystemdUnit, old.SystemdUnit)
	keep(&m.Namespace, old.Namespace)
	keep(&m.Pod, old.Pod)
	keep(&m.PodUID, old.PodUID)
	keep(&m.Container, old.Container)
	if m.Pid == 0 && c.running {
		m.Pid = old.Pid
	}
	if old.Name != "" && old.Name != m.Name {
		t.exits.release(old.Name, t.now())
	}
	c.Meta = m
	t.exits.hold(m.Name, m.Image, kubeOf(m))
}

// Seen records that an event stamped at was handled: the next
// subscription replays from the latest such time.
func (t *Tracker) Seen(at time.Time) {
	t.mu.Lock()
	defer t.unlock()
	t.ledger.seen(at)
}

// Cursor is where the next event subscription starts: the latest event
// handled, or the horizon when none was.
func (t *Tracker) Cursor() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ledger.lastEvent.IsZero() {
		return t.ledger.horizon
	}
	return t.ledger.lastEvent
}

// Started applies a start event stamped at.
func (t *Tracker) Started(id string, at time.Time) {
	t.mu.Lock()
	defer t.unlock()
	t.record(id).running = true
	t.countAll(id, t.ledger.started(id, at))
}

// DescribeRun attaches an inspect made after the start event stamped at:
// the run's init pid and StartedAt, when the inspect is of that run.
func (t *Tracker) DescribeRun(id string, at time.Time, st RunState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ledger.describe(id, at, st)
}

// Died applies a die event stamped at with its exit code. It returns
// whether the exit is new; the inspect that follows the event
// (DescribeDeath) may still give it its exact finish time.
func (t *Tracker) Died(id string, at time.Time, exitCode int) bool {
	name, counted := t.died(id, at, exitCode)
	// Logged without mu: a log write that blocks (a disk under a burst's
	// writes) must not hold up the verdicts. When the die was applied,
	// against its stamp, tells the runtime's and the event loop's lag
	// from the settle.
	if counted {
		t.logger.Debug("die applied", "name", name, "id", cgroupfs.ShortID(id), "stamped", at)
	} else {
		t.logger.Debug("die of an exit already counted", "id", cgroupfs.ShortID(id), "stamped", at)
	}
	return counted
}

// died is Died under mu: the container's name and whether its exit is new.
func (t *Tracker) died(id string, at time.Time, exitCode int) (name string, counted bool) {
	t.mu.Lock()
	defer t.unlock()
	t.record(id).running = false
	ended, attached := t.ledger.died(id, at)
	if attached != nil {
		// A reconcile inferred this run's end; the die event knows better.
		if p := t.pending[attached]; p != nil && !p.decided {
			p.exit.ExitCode, p.exit.Time, p.exit.Inferred = exitCode, at, false
		}
		return "", false
	}
	if ended == nil {
		return "", false
	}
	p := t.count(id, ending{run: ended, exitCode: exitCode, at: at})
	t.schedule(ended, p)
	return p.exit.Name, true
}

// DescribeDeath attaches an inspect made after the die event stamped at,
// when it came too late for Died (it is made off the event loop): the
// exact finish time and the OOMKilled flag, if the inspect is of the run
// that ended and its verdict is still pending.
func (t *Tracker) DescribeDeath(id string, at time.Time, st RunState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.ledger.diedAt(id, at)
	if r == nil || st.Running || !r.isRun(st.StartedAt) {
		return
	}
	if p := t.pending[r]; p != nil && !p.decided {
		if !st.FinishedAt.IsZero() && !st.FinishedAt.After(at) {
			p.exit.Time = st.FinishedAt
		}
		p.exit.OOMKilled = st.OOMKilled
	}
}

// Observe applies a reconcile's inspect of a container the runtime lists:
// exits that happened while no event could be received are counted once,
// and exits from before the horizon set the last-exit gauges only.
func (t *Tracker) Observe(id string, st RunState) {
	t.mu.Lock()
	defer t.unlock()
	c := t.record(id)
	c.running = st.Running
	endings, baseline := t.ledger.observe(id, st, t.now())
	if baseline {
		exit := attribution.Exit{ContainerID: id, Name: c.Name, Image: c.Image, ExitCode: st.ExitCode,
			Time: st.FinishedAt, OOMKilled: st.OOMKilled, Pid: st.Pid}
		c.lastExit = &exit
	}
	for _, end := range endings {
		t.logger.Info("counted an exit found on reconcile", "name", c.Name, "id", cgroupfs.ShortID(id),
			"exit_code", end.exitCode, "at", end.at)
	}
	t.holdAll(id, endings)
}

// CaughtUp tells that every event stamped before the latest reconcile's
// inspects was applied: the exits the reconcile inferred have had their die
// events (if the daemon logged any) and are decided now, after the settle.
func (t *Tracker) CaughtUp() {
	t.mu.Lock()
	defer t.unlock()
	for _, r := range t.reconciled {
		if p := t.pending[r]; p != nil && !p.decided {
			t.schedule(r, p)
		}
	}
	t.reconciled = nil
}

// Removed applies a destroy event: the container's last-exit series go,
// its name's exit counters start their retention, and the ledger keeps a
// tombstone that recognises its replayed events.
func (t *Tracker) Removed(id string, at time.Time) {
	t.mu.Lock()
	defer t.unlock()
	t.ledger.removed(id, at)
	t.forget(id)
	t.sweep(t.now(), false)
}

// Vanished applies the end of a reconcile: containers the ledger knows
// but the runtime no longer lists were removed unseen; a run still open
// among them ended unseen and is counted.
func (t *Tracker) Vanished(present map[string]bool) {
	t.mu.Lock()
	defer t.unlock()
	now := t.now()
	for id := range t.ledger.entries {
		if present[id] {
			continue
		}
		t.holdAll(id, t.ledger.vanished(id, now))
		t.forget(id)
	}
	for id := range t.containers {
		if !present[id] {
			t.forget(id)
		}
	}
	t.sweep(now, true)
}

// A tombstone recognises the replayed events of a removed container. A
// replay starts at the cursor (less the docker source's second of
// overlap), and every event of a container is stamped at or before its
// removal, so a tombstone removed long enough before the cursor can meet
// none of them any more. An inspect owed to an event before the
// tombstones' end is refused without one (ledger.forgotten): the inspect
// queue may lag far behind the stream in a burst.
const (
	// tombstoneMargin is how long before the cursor a removal must lie for
	// its tombstone to go: five times the replay's overlap, far beyond the
	// few milliseconds by which a daemon's events may leave out of order.
	// Under churn the tombstones are this long's removals, and those of a
	// quiet host's last seconds stay (the cursor stands still): 30 s kept
	// 500 at 1,000 removals a minute, scattered among the churn's garbage,
	// each pinning a span of it; 5 s keeps about 80.
	tombstoneMargin = 5 * time.Second
	// sweepEvery is how often removals, new evidence and scrapes sweep.
	sweepEvery = 30 * time.Second
)

// sweep drops what neither a replay nor a verdict can need any more: the
// tombstones, and the evidence older than any pending verdict reads
// (evidence was pruned only in the list of the container it was about, so
// each removed container's stayed until the 50,000-item cap). Under churn
// both grew with every removed container for as long as the stream lived.
// Unless forced, it sweeps at most every sweepEvery. Callers hold mu.
func (t *Tracker) sweep(now time.Time, force bool) {
	if !force && now.Sub(t.swept) < sweepEvery {
		return
	}
	t.swept = now
	t.containers = shrink.Map(t.containers, &t.containersPeak)
	t.ledger.expire(t.replayFrom().Add(-tombstoneMargin))
	t.evidence.prune(t.oldestEvidence(now))
}

// forget drops a container from the registry. Callers hold mu.
func (t *Tracker) forget(id string) {
	if c, ok := t.containers[id]; ok {
		t.exits.release(c.Name, t.now())
		delete(t.containers, id)
	}
}

func (t *Tracker) countAll(id string, endings []ending) {
	for _, end := range endings {
		t.schedule(end.run, t.count(id, end))
	}
}

// holdAll counts a reconcile's endings, their verdicts held until CaughtUp.
func (t *Tracker) holdAll(id string, endings []ending) {
	for _, end := range endings {
		t.count(id, end)
		t.reconciled = append(t.reconciled, end.run)
	}
}

// count makes a new exit pending; it is counted when decided (Flush decides
// it even unscheduled). Callers hold mu.
func (t *Tracker) count(id string, end ending) *pendingExit {
	c := t.record(id)
	exit := attribution.Exit{ContainerID: id, Name: c.Name, Image: c.Image, ExitCode: end.exitCode,
		Time: end.at, OOMKilled: end.oomKilled, Pid: end.run.Pid, Inferred: end.inferred, Kubernetes: c.PodUID != ""}
	t.exits.hold(exit.Name, exit.Image, kubeOf(c.Meta))
	now := t.now()
	// Host conditions are sampled now; that says something about the death
	// only when it is recent and its time is known.
	var probed []attribution.Evidence
	if !end.timeUnknown && now.Sub(exit.Time) <= t.cfg.Window {
		for _, probe := range t.probes {
			probed = append(probed, probe(exit.Time)...)
		}
	}
	p := &pendingExit{exit: exit, probed: probed, kube: kubeOf(c.Meta)}
	t.pending[end.run] = p
	t.wg.Add(1)
	return p
}

// schedule decides a pending exit after the settle delay. Callers hold mu.
func (t *Tracker) schedule(r *run, p *pendingExit) {
	// Settle counts from the death, not from when we heard of it: a die
	// event that arrives late has already given late evidence its time.
	wait := max(t.cfg.Settle-t.now().Sub(p.exit.Time), 0)
	t.due = append(t.due, func() { t.after(wait, func() { t.decide(r, p) }) })
}

// unlock releases mu, then schedules the verdicts counted under it (a
// test's scheduler decides at once, which takes mu again).
func (t *Tracker) unlock() {
	t.changed++
	due := t.due
	t.due = nil
	t.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// decide gives a pending exit its verdict and counts it, once.
func (t *Tracker) decide(r *run, p *pendingExit) {
	t.mu.Lock()
	if p.decided {
		t.mu.Unlock()
		return
	}
	p.decided = true
	defer t.wg.Done()
	exit := p.exit
	if exit.Pid == 0 {
		exit.Pid = r.Pid // the start's inspect landed after the death
	}
	ev := t.evidence.around(exit.ContainerID, exit.Pid, exit.Time.Add(-t.cfg.Window), exit.Time.Add(attribution.ClockSkew))
	t.mu.Unlock()

	v := attribution.Decide(exit, append(ev, p.probed...), t.cfg.Window)

	t.mu.Lock()
	if t.pending[r] == p {
		delete(t.pending, r)
	}
	t.exits.count(exit.Name, exit.Image, p.kube, ExitKey{ExitCode: exit.ExitCode, Signal: v.Signal, Cause: v.Cause})
	if c, ok := t.containers[exit.ContainerID]; ok && (c.lastExit == nil || !exit.Time.Before(c.lastExit.Time)) {
		c.lastExit, c.lastCause = &exit, v.Cause
	}
	t.verdicts.add(&v)
	t.unlock()
	select {
	case t.counted <- struct{}{}:
	default: // a save is due already
	}
	t.logger.Info("container exit", "name", exit.Name, "id", cgroupfs.ShortID(exit.ContainerID), "exit_code", exit.ExitCode,
		"signal", v.Signal, "cause", v.Cause, "strength", v.Strength, "inferred", exit.Inferred, "summary", v.Summary)
}

// Flush decides every pending exit now, without waiting out the settle:
// for shutdown, so that no exit is marked counted and never decided.
func (t *Tracker) Flush() {
	t.mu.Lock()
	pending := make(map[*run]*pendingExit, len(t.pending))
	for r, p := range t.pending {
		pending[r] = p
	}
	t.mu.Unlock()
	for r, p := range pending {
		t.decide(r, p)
	}
}

// Counted is signalled after exits are counted (several may share one
// signal).
func (t *Tracker) Counted() <-chan struct{} { return t.counted }

// Wait blocks until every pending verdict is decided; for tests and
// shutdown.
func (t *Tracker) Wait() { t.wg.Wait() }
