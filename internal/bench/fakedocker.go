package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeImage is the image of every fake container.
const fakeImage = "registry.example/bench:1.0"

// FakeDocker serves the part of the Docker API the exporter's Docker
// source uses (ping, version, info, events, list, inspect) for generated
// running containers, so that the real exporter binary can know thousands of
// containers by name without starting them. A replay (events with an
// until) is empty; the live event stream stays open and silent. It returns the --docker.host value and stops with the test.
func FakeDocker(tb testing.TB, ids []string) string {
	tb.Helper()
	d := newFakeDaemon(tb)
	d.addRunning(ids)
	return d.host
}

// Dockerd 20.10's event bus (daemon/events): the latest eventsLimit
// events are kept for a replay (since/until), and a subscriber whose
// buffer of eventsBuffer is full has eventsTimeout to take an event or
// misses it.
const (
	eventsLimit   = 256
	eventsBuffer  = 1024
	eventsTimeout = 100 * time.Millisecond
)

// fakeDaemon answers as dockerd 20.10 does, on a unix socket, for the
// containers it holds: list and inspect of those that exist at that
// moment, the event stream live and replayed from a buffer of the recent
// events.
type fakeDaemon struct {
	host string
	root string // DockerRootDir

	mu         sync.Mutex
	containers map[string]*fakeContainer
	events     []fakeEvent // oldest first, at most eventsLimit
	live       map[chan fakeEvent]struct{}
	dropped    atomic.Int64
}

type fakeContainer struct {
	id, name  string
	labels    map[string]string
	created   time.Time
	startedAt time.Time // zero until started
	finished  time.Time // zero until exited
	running   bool
	pid       int
	exitCode  int
}

// fakeEvent is one message of the stream, encoded once.
type fakeEvent struct {
	timeNano int64
	line     []byte // JSON and a newline
}

func newFakeDaemon(tb testing.TB) *fakeDaemon {
	tb.Helper()
	d := &fakeDaemon{root: tb.TempDir(), containers: map[string]*fakeContainer{}, live: map[chan fakeEvent]struct{}{}}
	sock := filepath.Join(tb.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(d.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { _ = srv.Close() })
	d.host = "unix://" + sock
	return d
}

// addRunning adds containers that have run for a minute, container i
// named ContainerName(i) with compose labels.
func (d *fakeDaemon) addRunning(ids []string) {
	started := time.Now().Add(-time.Minute).UTC()
	labels := map[string]string{"com.docker.compose.project": "bench", "com.docker.compose.service": "svc"}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, id := range ids {
		d.containers[id] = &fakeContainer{id: id, name: ContainerName(i), labels: labels,
			created: started.Add(-time.Second), startedAt: started, running: true, pid: 1000 + i}
	}
}

// emit stamps an event of c now, as dockerd's events.Log does, keeps it
// for replays and sends it to the live streams. d.mu is held.
func (d *fakeDaemon) emit(c *fakeContainer, action string, extra map[string]string) {
	attrs := make(map[string]string, len(c.labels)+2+len(extra))
	for k, v := range c.labels {
		attrs[k] = v
	}
	attrs["image"], attrs["name"] = fakeImage, c.name
	for k, v := range extra {
		attrs[k] = v
	}
	now := time.Now().UTC()
	line, err := json.Marshal(eventMessage{
		Status: action, ID: c.id, From: fakeImage, Type: "container", Action: action,
		Actor: eventActor{ID: c.id, Attributes: attrs}, Scope: "local",
		Time: now.Unix(), TimeNano: now.UnixNano(),
	})
	if err != nil {
		panic(err) // strings only
	}
	ev := fakeEvent{timeNano: now.UnixNano(), line: append(line, '\n')}
	if len(d.events) == eventsLimit {
		copy(d.events, d.events[1:])
		d.events = d.events[:eventsLimit-1]
	}
	d.events = append(d.events, ev)
	for ch := range d.live {
		select {
		case ch <- ev:
			continue
		default:
		}
		t := time.NewTimer(eventsTimeout)
		select {
		case ch <- ev:
		case <-t.C:
			d.dropped.Add(1)
		}
		t.Stop()
	}
}

// eventMessage is dockerd's events.Message, with the deprecated status,
// id and from it still fills for a container's events.
type eventMessage struct {
	Status   string     `json:"status,omitempty"`
	ID       string     `json:"id,omitempty"`
	From     string     `json:"from,omitempty"`
	Type     string     `json:"Type"`
	Action   string     `json:"Action"`
	Actor    eventActor `json:"Actor"`
	Scope    string     `json:"scope"`
	Time     int64      `json:"time"`
	TimeNano int64      `json:"timeNano"`
}

type eventActor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// dockerTime is a time as dockerd's inspect writes it; the zero time is
// 0001-01-01T00:00:00Z.
func dockerTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (c *fakeContainer) status() string {
	switch {
	case c.running:
		return "running"
	case c.startedAt.IsZero():
		return "created"
	default:
		return "exited"
	}
}

func (c *fakeContainer) summary() map[string]any {
	return map[string]any{"Id": c.id, "Names": []string{"/" + c.name}, "Image": fakeImage,
		"Created": c.created.Unix(), "State": c.status(), "Labels": c.labels}
}

func (c *fakeContainer) inspect() map[string]any {
	return map[string]any{
		"Id": c.id, "Created": dockerTime(c.created), "Name": "/" + c.name, "RestartCount": 0,
		"Config": map[string]any{"Image": fakeImage, "Labels": c.labels},
		"State": map[string]any{
			"Status": c.status(), "Running": c.running, "Paused": false, "Restarting": false,
			"OOMKilled": false, "Dead": false, "Pid": c.pid, "ExitCode": c.exitCode, "Error": "",
			"StartedAt": dockerTime(c.startedAt), "FinishedAt": dockerTime(c.finished),
		},
	}
}

func (d *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	// Strip the API version the client negotiated: /v1.41/info → /info.
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/v"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			path = rest[i:]
		}
	}
	w.Header().Set("Api-Version", "1.41")
	w.Header().Set("Ostype", "linux")
	w.Header().Set("Server", "Docker/20.10.24+dfsg1 (linux)")
	if path == "/_ping" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("OK"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case path == "/info":
		_ = json.NewEncoder(w).Encode(map[string]string{"DockerRootDir": d.root})
	case path == "/version":
		_ = json.NewEncoder(w).Encode(map[string]any{"Version": "20.10.24", "ApiVersion": "1.41",
			"Components": []map[string]string{{"Name": "Engine", "Version": "20.10.24"}}})
	case path == "/events":
		d.serveEvents(w, r)
	case path == "/containers/json":
		d.mu.Lock()
		list := make([]map[string]any, 0, len(d.containers))
		for _, c := range d.containers {
			if c.running || r.URL.Query().Get("all") == "1" || r.URL.Query().Get("all") == "true" {
				list = append(list, c.summary())
			}
		}
		d.mu.Unlock()
		_ = json.NewEncoder(w).Encode(list)
	case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json")
		d.mu.Lock()
		var body map[string]any
		if c, ok := d.containers[id]; ok {
			body = c.inspect()
		}
		d.mu.Unlock()
		if body == nil {
			apiError(w, http.StatusNotFound, "No such container: "+id)
			return
		}
		_ = json.NewEncoder(w).Encode(body)
	default:
		apiError(w, http.StatusNotFound, "page not found")
	}
}

func apiError(w http.ResponseWriter, status int, msg string) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// serveEvents is dockerd's GET /events: the buffered events from since up
// to until (none when neither is given), then, unless until has passed,
// the live ones until it does or the client leaves. Only the type filter
// is read: every event here is a container's.
func (d *fakeDaemon) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := parseEventTime(q.Get("since"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	until, err := parseEventTime(q.Get("until"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	var timeout <-chan time.Time
	onlyPast := false
	if !until.IsZero() {
		if until.Before(since) {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("`since` time (%s) cannot be after `until` time (%s)", q.Get("since"), q.Get("until")))
			return
		}
		if onlyPast = until.Before(time.Now()); !onlyPast {
			timer := time.NewTimer(time.Until(until))
			defer timer.Stop()
			timeout = timer.C
		}
	}
	containers := true
	if f := q.Get("filters"); f != "" {
		var filters map[string]map[string]bool
		if err := json.Unmarshal([]byte(f), &filters); err != nil {
			apiError(w, http.StatusBadRequest, "invalid filter: "+err.Error())
			return
		}
		if types, ok := filters["type"]; ok && !types["container"] {
			containers = false
		}
	}

	// The replay and the subscription under one lock, as dockerd takes
	// them: no event falls between the two, none is in both.
	var buffered []fakeEvent
	ch := make(chan fakeEvent, eventsBuffer)
	d.mu.Lock()
	if containers && (!since.IsZero() || !until.IsZero()) {
		for _, ev := range d.events {
			if ev.timeNano >= since.UnixNano() && (until.IsZero() || ev.timeNano <= until.UnixNano()) {
				buffered = append(buffered, ev)
			}
		}
	}
	if containers {
		d.live[ch] = struct{}{}
	}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.live, ch)
		d.mu.Unlock()
	}()

	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	flusher.Flush()
	for _, ev := range buffered {
		if _, err := w.Write(ev.line); err != nil {
			return
		}
	}
	flusher.Flush()
	if onlyPast {
		return
	}
	for {
		select {
		case ev := <-ch:
			if _, err := w.Write(ev.line); err != nil {
				return
			}
			flusher.Flush()
		case <-timeout:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// parseEventTime reads since and until as the Docker client sends them:
// "seconds" or "seconds.nanoseconds"; "" is the zero time.
func parseEventTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid timestamp %q", s)
	}
	var ns int64
	if frac != "" {
		if ns, err = strconv.ParseInt((frac + "000000000")[:9], 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("invalid timestamp %q", s)
		}
	}
	return time.Unix(n, ns), nil
}

// Churn is a fake Docker daemon whose containers come and go, as one-off
// jobs and --rm containers make them, at rates no dockerd on a test host
// reaches. It also serves a tree's containers as running throughout.
type Churn struct {
	d    *fakeDaemon
	tree *Tree
	// templates are the memory cgroups of a small generated tree (see
	// NewTree), copied under a new id for each container made.
	templates []cgroupTemplate
}

type cgroupTemplate struct {
	id, path string // path relative to the memory root, with id in it
	files    map[string][]byte
}

// churnTemplates is how many generated containers the churned ones take
// their memory files from, in turn.
const churnTemplates = 8

// FakeChurn starts a fake daemon that serves tree's containers as running
// (container i named ContainerName(i)); Run makes the churn. It stops
// with the test.
func FakeChurn(tb testing.TB, tree *Tree) *Churn {
	tb.Helper()
	tmpl, err := NewTree(tb.TempDir(), tree.FS.Mode(), churnTemplates)
	if err != nil {
		tb.Fatal(err)
	}
	c := &Churn{d: newFakeDaemon(tb), tree: tree}
	for _, ct := range tmpl.Containers {
		dir := filepath.Join(tmpl.FS.MemoryRoot(), ct.Path)
		entries, err := os.ReadDir(dir)
		if err != nil {
			tb.Fatal(err)
		}
		t := cgroupTemplate{id: ct.ID, path: ct.Path, files: map[string][]byte{}}
		for _, e := range entries {
			if t.files[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
				tb.Fatal(err)
			}
		}
		c.templates = append(c.templates, t)
	}
	c.d.addRunning(tree.IDs)
	return c
}

// Host is the --docker.host value.
func (c *Churn) Host() string { return c.d.host }

// Dropped is how many events a live stream missed, being eventsTimeout
// behind with its buffer full (dockerd drops them so too).
func (c *Churn) Dropped() int64 { return c.d.dropped.Load() }

// Lifecycle is one container the churn made and how it ended.
type Lifecycle struct {
	Name, ID string
	ExitCode int
	// Killed: a kill event with signal 9 came before the die.
	Killed bool
	// Err is a failure to write or remove the container's cgroup.
	Err error
}

// How long the phases of a lifecycle take: dockerd starts a created
// container some tens of ms later; the job runs 200 ms (as
// BenchmarkDockerChurn's helper does) or is killed at 100 ms; the
// kernel's exit reaches dockerd's die a few ms after a kill; --rm removes
// it some tens of ms after the die.
const (
	churnStartAfter   = 30 * time.Millisecond
	churnRun          = 200 * time.Millisecond
	churnKillAfter    = 100 * time.Millisecond
	churnDieAfterKill = 5 * time.Millisecond
	churnRemoveAfter  = 20 * time.Millisecond
)

// Run makes lifecycles at rate a minute for d (or until ctx ends), each
// a new container named prefix-c<i> with a new id: create; its memory
// cgroup appears; start; after the run, every fifth a kill (signal 9)
// and a die with exit code 137, the others a die with 0 or 1 by turns
// (the cgroup gone before the die, as runc removes it before dockerd
// says so); destroy. List and inspect answer as the events say, and an
// inspect of a destroyed container is a 404. progress, if not nil, is
// called after each lifecycle with how many are done. It returns the
// lifecycles in the order they began.
func (c *Churn) Run(ctx context.Context, prefix string, rate int, d time.Duration, progress func(done int)) []Lifecycle {
	var (
		mu   sync.Mutex
		made []Lifecycle
		wg   sync.WaitGroup
		done atomic.Int64
	)
	tick := time.NewTicker(time.Minute / time.Duration(rate))
	defer tick.Stop()
	begin := time.Now()
	for i := 0; time.Since(begin) < d; i++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		l := Lifecycle{Name: fmt.Sprintf("%s-c%06d", prefix, i), Killed: i%5 == 4}
		mu.Lock()
		made = append(made, l)
		mu.Unlock()
		wg.Add(1)
		go func(i int, l Lifecycle) {
			defer wg.Done()
			c.lifecycle(ctx, &l, i)
			mu.Lock()
			made[i] = l
			mu.Unlock()
			if progress != nil {
				progress(int(done.Add(1)))
			}
		}(i, l)
	}
	wg.Wait()
	return made
}

func (c *Churn) lifecycle(ctx context.Context, l *Lifecycle, i int) {
	l.ID = newContainerID()
	l.ExitCode = i % 2
	if l.Killed {
		l.ExitCode = 137
	}
	ct := &fakeContainer{id: l.ID, name: l.Name, labels: map[string]string{Label: "churn"}, created: time.Now().UTC()}
	c.d.mu.Lock()
	c.d.containers[l.ID] = ct
	c.d.emit(ct, "create", nil)
	c.d.mu.Unlock()

	pause(ctx, churnStartAfter)
	l.Err = c.addCgroup(l.ID, i)
	c.d.mu.Lock()
	ct.startedAt, ct.running, ct.pid = time.Now().UTC(), true, 200000+i%100000
	c.d.emit(ct, "start", nil)
	c.d.mu.Unlock()

	if l.Killed {
		pause(ctx, churnKillAfter)
		c.d.mu.Lock()
		c.d.emit(ct, "kill", map[string]string{"signal": "9"})
		c.d.mu.Unlock()
		pause(ctx, churnDieAfterKill)
	} else {
		pause(ctx, churnRun)
	}
	exited := time.Now().UTC()
	if err := c.removeCgroup(l.ID, i); err != nil && l.Err == nil {
		l.Err = err
	}
	c.d.mu.Lock()
	ct.running, ct.pid, ct.finished, ct.exitCode = false, 0, exited, l.ExitCode
	c.d.emit(ct, "die", map[string]string{"exitCode": strconv.Itoa(l.ExitCode)})
	c.d.mu.Unlock()

	pause(ctx, churnRemoveAfter)
	c.d.mu.Lock()
	delete(c.d.containers, l.ID)
	c.d.emit(ct, "destroy", nil)
	c.d.mu.Unlock()
}

// cgroupDir is where container id's memory cgroup is, in the layout of
// the tree's mode, and the template it is made from.
func (c *Churn) cgroupDir(id string, i int) (string, cgroupTemplate) {
	t := c.templates[i%len(c.templates)]
	return filepath.Join(c.tree.FS.MemoryRoot(), strings.Replace(t.path, t.id, id, 1)), t
}

// addCgroup makes the container's memory cgroup appear whole, as mkdir
// makes a cgroup's files appear: written beside it under a name that is
// no container's, then renamed.
func (c *Churn) addCgroup(id string, i int) error {
	dir, t := c.cgroupDir(id, i)
	tmp := filepath.Join(filepath.Dir(dir), ".new-"+id)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for name, content := range t.files {
		if err := os.WriteFile(filepath.Join(tmp, name), content, 0o644); err != nil {
			return err
		}
	}
	return os.Rename(tmp, dir)
}

// removeCgroup makes it disappear at once, as rmdir does.
func (c *Churn) removeCgroup(id string, i int) error {
	dir, _ := c.cgroupDir(id, i)
	gone := filepath.Join(filepath.Dir(dir), ".gone-"+id)
	if err := os.Rename(dir, gone); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}

// newContainerID is a random 64-hex id, as dockerd makes them.
func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pause sleeps for d, or until ctx ends: a lifecycle cut short still
// goes through every step, so that the daemon's state stays whole.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
