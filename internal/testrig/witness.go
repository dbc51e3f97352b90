package testrig

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// Death is one end of a container run, as the witness knows it.
type Death struct {
	ID, Name string
	Time     time.Time
	// Code is the exit code; CodeKnown is false only for an inferred
	// death whose code the daemon no longer holds.
	Code      int
	CodeKnown bool
	// Inferred deaths had no die event: the daemon stopped them in its
	// own shutdown, after its API had closed the event stream, and the
	// restarted daemon's event buffer starts empty. Why says how the
	// witness knows.
	Inferred bool
	Why      string
	// Unreplayable marks a death whose die event a client that was not
	// connected can no longer have replayed: it died in a daemon's
	// shutdown (between BeginDaemonRestart and EndDaemonRestart), or
	// after the client was last known to be connected and before a daemon
	// restart, whose event buffer starts empty.
	Unreplayable bool
}

// Witness is the ground truth of the end-to-end tests: its own
// subscription to the real daemon's container events, on the real socket
// (never through a SocketProxy), counting every die. A daemon restart is
// the one thing that cuts it: it resubscribes from its last event, which
// replays everything the new daemon has logged, and it infers, from its
// own run bookkeeping and docker inspect, the deaths of the daemon's
// shutdown that no event reports. It says so in each such death's Why.
type Witness struct {
	cli    *client.Client
	cancel context.CancelFunc

	mu        sync.Mutex
	last      time.Time // time of the latest event, for since on a resubscribe
	seen      map[string]bool
	runs      map[string]*witnessRun
	deaths    []Death
	lastDie   time.Time
	log       []string
	connected bool
	breaks    int
	notes     []string
	// A daemon restart in progress: when it began, and the runs that were
	// going when the stream broke (id → start event time).
	restartBegan   time.Time
	runningAtBreak map[string]time.Time
}

// witnessRun is what the witness knows of one container id.
type witnessRun struct {
	name          string
	running       bool
	started       time.Time
	starts, dies  int
	inferredDeath int
}

// markPrefix names the containers Sync creates to mark the stream.
const markPrefix = "e137-wmark-"

// NewWitness subscribes to the real daemon's container events from now
// on, and has seen its own marker before it returns.
func NewWitness(t testing.TB) *Witness {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+DockerSocket()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Witness{cli: cli, cancel: cancel, last: time.Now(), seen: map[string]bool{}, runs: map[string]*witnessRun{}}
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
		cli.Close()
	})
	go func() {
		defer close(done)
		w.follow(ctx)
	}()
	w.Sync(t)
	return w
}

// follow keeps a subscription open until ctx ends.
func (w *Witness) follow(ctx context.Context) {
	for ctx.Err() == nil {
		w.mu.Lock()
		since := w.last
		w.mu.Unlock()
		opts := events.ListOptions{
			Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType))),
			Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		}
		sctx, scancel := context.WithCancel(ctx)
		msgs, errs := w.cli.Events(sctx, opts)
	stream:
		for {
			select {
			case m := <-msgs:
				w.handle(m)
			case err := <-errs:
				if ctx.Err() == nil {
					w.broke(err)
				}
				break stream
			}
		}
		scancel()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (w *Witness) broke(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.connected {
		w.breaks++
		w.notef("stream broke: %v", err)
	}
	w.connected = false
	if !w.restartBegan.IsZero() && w.runningAtBreak == nil {
		w.runningAtBreak = map[string]time.Time{}
		for id, r := range w.runs {
			if r.running {
				w.runningAtBreak[id] = r.started
			}
		}
		w.notef("daemon restart: %d runs were going when the stream broke", len(w.runningAtBreak))
	}
}

func (w *Witness) notef(format string, args ...any) {
	w.notes = append(w.notes, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

func (w *Witness) handle(m events.Message) {
	at := time.Unix(0, m.TimeNano)
	if m.TimeNano == 0 {
		at = time.Unix(m.Time, 0)
	}
	id := m.Actor.ID
	key := id + "/" + string(m.Action) + "/" + strconv.FormatInt(at.UnixNano(), 10)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[key] {
		return // a replay of what we already have
	}
	w.seen[key] = true
	w.connected = true // a stream that delivers is up; its break is news
	if at.After(w.last) {
		w.last = at
	}
	name := m.Actor.Attributes["name"]
	r := w.runs[id]
	if r == nil {
		r = &witnessRun{name: name}
		w.runs[id] = r
	}
	if name != "" {
		r.name = name
	}
	switch m.Action {
	case "start", "die", "destroy", "create", "kill", "stop", "restart", "oom":
		extra := ""
		if m.Action == "die" {
			extra = " exitCode=" + m.Actor.Attributes["exitCode"]
		}
		if m.Action == "kill" {
			extra = " signal=" + m.Actor.Attributes["signal"]
		}
		w.log = append(w.log, fmt.Sprintf("%s %s %s %s%s", at.Format("15:04:05.000000"), m.Action, r.name, shortID(id), extra))
	}
	switch m.Action {
	case "start":
		if started, ok := w.runningAtBreak[id]; ok {
			// The run that was going when the daemon stopped started
			// again without a die event: its shutdown death is not in any
			// event the new daemon can replay.
			delete(w.runningAtBreak, id)
			w.inferLocked(id, r, Death{Why: fmt.Sprintf("running at the daemon restart (started %s), started again with no die event", started.Format("15:04:05.000"))})
		}
		r.running = true
		r.started = at
		r.starts++
	case "die":
		delete(w.runningAtBreak, id)
		code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
		if !r.running {
			w.notef("die of %s (%s) that was not running", r.name, shortID(id))
		}
		r.running = false
		r.dies++
		w.deaths = append(w.deaths, Death{ID: id, Name: r.name, Time: at, Code: code, CodeKnown: err == nil,
			Unreplayable: !w.restartBegan.IsZero()})
		if at.After(w.lastDie) {
			w.lastDie = at
		}
	}
}

// inferLocked records a death no event reported. Callers hold mu.
func (w *Witness) inferLocked(id string, r *witnessRun, d Death) {
	d.ID, d.Name, d.Inferred = id, r.name, true
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	r.running = false
	r.dies++
	r.inferredDeath++
	w.deaths = append(w.deaths, d)
	w.notef("inferred death of %s (%s): %s", r.name, shortID(id), d.Why)
}

// Sync makes sure the witness has every event up to now: it creates a
// marker container and waits for its create event to arrive (events come
// in order), then removes it. It waits through a daemon restart.
func (w *Witness) Sync(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	name := markPrefix + randHex(4)
	var id string
	for {
		resp, err := w.cli.ContainerCreate(ctx, &container.Config{Image: HelperImage, Labels: map[string]string{TestLabel: strings.TrimPrefix(OwnLabel, TestLabel+"=")}},
			&container.HostConfig{NetworkMode: "none"}, nil, nil, name)
		if err == nil {
			id = resp.ID
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("witness: creating its marker: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer func() { _ = w.cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true}) }()
	for {
		w.mu.Lock()
		r := w.runs[id]
		w.mu.Unlock()
		if r != nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("witness: its marker's create event never arrived (notes: %v)", w.Notes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BeginDaemonRestart tells the witness that the daemon is about to be
// stopped: the next break of its stream is that, and the runs going then
// end in the daemon's shutdown. clientConnected is when the client under
// test was last known to follow the daemon: deaths since then are
// unreplayable for it.
func (w *Witness) BeginDaemonRestart(clientConnected time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.deaths {
		if w.deaths[i].Time.After(clientConnected) {
			w.deaths[i].Unreplayable = true
		}
	}
	w.restartBegan = time.Now()
	w.runningAtBreak = nil
}

// EndDaemonRestart waits until the witness has the restarted daemon's
// replay, then accounts for the runs that were going when the stream
// broke and that no event has ended since: each died in the shutdown, and
// docker inspect tells its exit code when the container still holds that
// run's end.
func (w *Witness) EndDaemonRestart(t testing.TB) {
	t.Helper()
	w.Sync(t)
	w.mu.Lock()
	began := w.restartBegan
	pending := w.runningAtBreak
	w.restartBegan, w.runningAtBreak = time.Time{}, nil
	w.mu.Unlock()
	if pending == nil {
		w.mu.Lock()
		w.notef("daemon restart: the stream never broke")
		w.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for id, started := range pending {
		info, err := w.cli.ContainerInspect(ctx, id)
		w.mu.Lock()
		r := w.runs[id]
		d := Death{}
		switch {
		case client.IsErrNotFound(err):
			d.Why = fmt.Sprintf("running at the daemon restart (started %s); gone since, no die event", started.Format("15:04:05.000"))
		case err != nil:
			d.Why = fmt.Sprintf("running at the daemon restart; inspect failed: %v", err)
		case info.State == nil:
			d.Why = "running at the daemon restart; inspect has no state"
		case info.State.Running:
			if st, _ := time.Parse(time.RFC3339Nano, info.State.StartedAt); st.After(began) {
				d.Why = "running at the daemon restart; running again since " + info.State.StartedAt + " with no start event seen"
			} else {
				w.notef("%s (%s) survived the daemon restart (live restore?): no death", r.name, shortID(id))
				w.mu.Unlock()
				continue
			}
		default:
			d.Why = fmt.Sprintf("running at the daemon restart; inspect: exited %d at %s", info.State.ExitCode, info.State.FinishedAt)
			if fin, _ := time.Parse(time.RFC3339Nano, info.State.FinishedAt); fin.After(began) {
				d.Code, d.CodeKnown, d.Time = info.State.ExitCode, true, fin
			}
		}
		w.inferLocked(id, r, d)
		w.mu.Unlock()
	}
}

// Deaths returns the deaths of containers whose name starts with prefix
// ("" for all but the witness's markers), in the order seen.
func (w *Witness) Deaths(prefix string) []Death {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Death
	for _, d := range w.deaths {
		if strings.HasPrefix(d.Name, prefix) && !strings.HasPrefix(d.Name, markPrefix) {
			out = append(out, d)
		}
	}
	return out
}

// LastDie is the time of the latest die event of any container.
func (w *Witness) LastDie() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastDie
}

// Check cross-checks the witness against the daemon for the containers
// whose name starts with prefix: a container that still runs has seen
// one start more than deaths, any other as many; and where policyOnly
// says every start of a container came from the first run and its restart
// policy, Docker's RestartCount is its starts less one (or, for a stopped
// one, its starts: a restart scheduled then cancelled by the stop). It returns what
// does not add up.
func (w *Witness) Check(prefix string, policyOnly map[string]bool) []string {
	w.mu.Lock()
	type row struct {
		id, name     string
		starts, dies int
	}
	var rows []row
	for id, r := range w.runs {
		if strings.HasPrefix(r.name, prefix) {
			rows = append(rows, row{id, r.name, r.starts, r.dies})
		}
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var bad []string
	for _, r := range rows {
		info, err := w.cli.ContainerInspect(ctx, r.id)
		running := err == nil && info.State != nil && info.State.Running
		want := r.starts
		if running {
			want--
		}
		if r.dies != want {
			bad = append(bad, fmt.Sprintf("%s (%s): %d starts, %d deaths, running=%v", r.name, shortID(r.id), r.starts, r.dies, running))
		}
		// A policy restart counts when it is scheduled: a stop during the
		// back-off leaves RestartCount one ahead of the starts.
		if err == nil && policyOnly[r.name] && info.RestartCount != r.starts-1 && (running || info.RestartCount != r.starts) {
			bad = append(bad, fmt.Sprintf("%s (%s): RestartCount %d, but %d starts seen", r.name, shortID(r.id), info.RestartCount, r.starts))
		}
	}
	sort.Strings(bad)
	return bad
}

// EventLog returns the witness's lines for containers whose name starts
// with prefix.
func (w *Witness) EventLog(prefix string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range w.log {
		if f := strings.Fields(l); len(f) >= 3 && strings.HasPrefix(f[2], prefix) {
			out = append(out, l)
		}
	}
	return out
}

// Notes are what the witness noticed about itself: breaks, inferred
// deaths, oddities.
func (w *Witness) Notes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.notes...)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
