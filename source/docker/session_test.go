package docker

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// fakeDaemon serves the part of the Docker API the source uses, with an
// event buffer that honours since and until at the nanosecond as dockerd
// does, a live stream, and a cut that drops every connection. It records
// the order of the calls, so a test can check the session's order.
type fakeDaemon struct {
	t *testing.T

	mu         sync.Mutex
	events     []Message
	containers map[string]map[string]any // id → inspect body
	live       map[chan Message]bool
	calls      []string
	cut        context.CancelFunc
	cutCtx     context.Context
	// onList runs while the daemon answers a list: what happens during a
	// reconcile.
	onList func()
	// podman makes the daemon answer as Podman 4.3 does: its version
	// answer, and an until taken as the wall time to stop reading at (an
	// until already past replays nothing).
	podman bool
}

func newFakeDaemon(t *testing.T) (*fakeDaemon, string) {
	f := &fakeDaemon{t: t, containers: map[string]map[string]any{}, live: map[chan Message]bool{}}
	f.cutCtx, f.cut = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("/", f.serve)
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { f.cutAll(); _ = srv.Close() })
	return f, "unix://" + sock
}

// cutAll drops the live streams (what a flaky socket does).
func (f *fakeDaemon) cutAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut()
	f.cutCtx, f.cut = context.WithCancel(context.Background())
}

// emit appends an event at at and sends it to the live streams.
func (f *fakeDaemon) emit(id, action string, at time.Time, attrs map[string]string) {
	m := Message{Type: ContainerEvent, Action: action, TimeNano: at.UnixNano(), Time: at.Unix(),
		Actor: Actor{ID: id, Attributes: attrs}}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, m)
	for ch := range f.live {
		ch <- m
	}
}

// set makes inspect and list answer with this state of id; nil removes it.
func (f *fakeDaemon) set(id, name string, state map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state == nil {
		delete(f.containers, id)
		return
	}
	f.containers[id] = map[string]any{"Id": id, "Name": "/" + name, "Config": map[string]any{"Image": "img"},
		"State": state, "RestartCount": 0}
}

func (f *fakeDaemon) callLog() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, " ")
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseStamp(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	sec, frac, _ := strings.Cut(s, ".")
	n, _ := strconv.ParseInt(sec, 10, 64)
	ns, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	return time.Unix(n, ns)
}

func (f *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/v"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			path = rest[i:]
		}
	}
	w.Header().Set("Api-Version", "1.41")
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	switch {
	case path == "/_ping":
		_, _ = w.Write([]byte("OK"))
	case path == "/info":
		_ = enc.Encode(map[string]string{})
	case path == "/version":
		if f.podman {
			_ = enc.Encode(podmanVersion)
		} else {
			_ = enc.Encode(debianDockerVersion)
		}
	case path == "/events":
		since, until := parseStamp(r.URL.Query().Get("since")), parseStamp(r.URL.Query().Get("until"))
		if f.podman && !until.IsZero() {
			if time.Until(until) <= 0 {
				f.mu.Lock()
				f.calls = append(f.calls, "drain")
				f.mu.Unlock()
				w.WriteHeader(http.StatusOK)
				return
			}
			time.Sleep(time.Until(until))
		}
		f.mu.Lock()
		kind := "live"
		if !until.IsZero() {
			kind = "drain"
		}
		f.calls = append(f.calls, kind)
		var buffered []Message
		for _, m := range f.events {
			at := time.Unix(0, m.TimeNano)
			if (since.IsZero() || !at.Before(since)) && (until.IsZero() || !at.After(until)) {
				buffered = append(buffered, m)
			}
		}
		ch := make(chan Message, 100)
		if until.IsZero() {
			f.live[ch] = true
		}
		cut := f.cutCtx
		f.mu.Unlock()
		defer func() { f.mu.Lock(); delete(f.live, ch); f.mu.Unlock() }()
		w.WriteHeader(http.StatusOK)
		for _, m := range buffered {
			encodeEvent(w, enc, m)
		}
		w.(http.Flusher).Flush()
		if !until.IsZero() {
			return
		}
		for {
			select {
			case m := <-ch:
				encodeEvent(w, enc, m)
				w.(http.Flusher).Flush()
			case <-cut.Done():
				return
			case <-r.Context().Done():
				return
			}
		}
	case path == "/containers/json":
		f.mu.Lock()
		f.calls = append(f.calls, "list")
		if f.onList != nil {
			f.mu.Unlock()
			f.onList()
			f.mu.Lock()
		}
		list := []map[string]any{}
		for id, c := range f.containers {
			list = append(list, map[string]any{"Id": id, "Names": []string{c["Name"].(string)}})
		}
		f.mu.Unlock()
		_ = enc.Encode(list)
	case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json")
		f.mu.Lock()
		c, ok := f.containers[id]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_ = enc.Encode(map[string]string{"message": "No such container: " + id})
			return
		}
		_ = enc.Encode(c)
	default:
		w.WriteHeader(http.StatusNotFound)
		_ = enc.Encode(map[string]string{"message": "not faked"})
	}
}

// garbageEvent is an event the fake sends as a line that is no event.
const garbageEvent = "garbage"

func encodeEvent(w http.ResponseWriter, enc *json.Encoder, m Message) {
	if m.Type == garbageEvent {
		_, _ = w.Write([]byte(`{"Type":"container","Action":"die","Actor":{"ID":` + "\n"))
		return
	}
	_ = enc.Encode(m)
}

func runningState(started time.Time, pid int) map[string]any {
	return map[string]any{"Running": true, "Pid": pid, "StartedAt": stamp(started), "FinishedAt": "0001-01-01T00:00:00Z"}
}

func exitedState(started, finished time.Time, code int) map[string]any {
	return map[string]any{"Running": false, "StartedAt": stamp(started), "FinishedAt": stamp(finished), "ExitCode": code}
}

// harness runs sessions of a Source against the fake daemon by hand, so a
// test decides when a connection is cut and when it heals.
type harness struct {
	t       *testing.T
	daemon  *fakeDaemon
	tracker *tracker.Tracker
	src     *Source
	done    chan error
}

func newHarness(t *testing.T) *harness {
	d, host := newFakeDaemon(t)
	tr := tracker.New(tracker.Config{Window: 30 * time.Second, Retention: time.Hour}, slog.New(slog.DiscardHandler))
	src, err := New(Options{Host: host}, tr, source.NewRegistry().Source("docker"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, daemon: d, tracker: tr, src: src}
}

// connect starts a session and waits until it follows the live stream.
func (h *harness) connect() {
	h.t.Helper()
	h.done = make(chan error, 1)
	before := strings.Count(h.daemon.callLog(), "live")
	go func() {
		_, err := h.src.session(context.Background())
		h.done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(h.daemon.callLog(), "live") == before {
		if time.Now().After(deadline) {
			h.t.Fatalf("no live subscription; calls: %s", h.daemon.callLog())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the stream's buffered replay is handled
}

// cut drops the connection and waits for the session to end.
func (h *harness) cut() {
	h.t.Helper()
	h.daemon.cutAll()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		h.t.Fatal("the session did not end at the cut")
	}
}

// exits waits for the verdicts and returns the counted exits by name.
func (h *harness) exits() map[string]uint64 {
	time.Sleep(20 * time.Millisecond)
	h.tracker.Wait()
	byName, _ := h.tracker.ExitSeries()
	out := map[string]uint64{}
	for _, s := range byName {
		out[s.Name] += s.Count
	}
	return out
}

const cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func die(code int) map[string]string {
	return map[string]string{"name": "web", "image": "img", "exitCode": strconv.Itoa(code)}
}

// The scenarios, at the source: each lost or doubled an exit
// before the replay was drained ahead of the reconcile from the cursor.
func TestSessionReplaysBeforeReconcileAndCountsOnce(t *testing.T) {
	t.Run("quiet host: killed and restarted during a cut with no event seen before", func(t *testing.T) {
		h := newHarness(t)
		h.daemon.set(cid, "web", runningState(time.Now().Add(-time.Hour), 100))
		h.connect()
		h.cut()
		now := time.Now()
		h.daemon.emit(cid, "die", now, die(137))
		h.daemon.emit(cid, "start", now.Add(time.Millisecond), map[string]string{"name": "web"})
		h.daemon.set(cid, "web", runningState(now.Add(time.Millisecond/2), 101))
		h.connect()
		if got := h.exits()["web"]; got != 1 {
			t.Fatalf("counted %d, want 1", got)
		}
		if calls := h.daemon.callLog(); !strings.HasPrefix(calls, "drain list drain live drain list drain live") {
			t.Fatalf("want every session to drain, list, drain what happened meanwhile, then follow: %s", calls)
		}
	})
	t.Run("a die stamped during the reconcile gives the exit it inferred its code", func(t *testing.T) {
		h := newHarness(t)
		start := time.Now()
		h.daemon.set(cid, "web", runningState(start, 100))
		h.daemon.emit(cid, "start", start.Add(time.Millisecond), map[string]string{"name": "web"})
		h.connect()
		h.cut()
		h.daemon.onList = func() {
			now := time.Now()
			h.daemon.emit(cid, "die", now, die(3))
			h.daemon.emit(cid, "start", now.Add(time.Millisecond), map[string]string{"name": "web"})
			h.daemon.set(cid, "web", runningState(now.Add(time.Millisecond/2), 101))
		}
		h.connect()
		h.tracker.Wait()
		byName, _ := h.tracker.ExitSeries()
		for _, s := range byName {
			if s.Count > 0 && s.ExitCode != 3 {
				t.Fatalf("the reconcile's unknown exit was decided before its die arrived: %+v", byName)
			}
		}
		if got := h.exits()["web"]; got != 1 {
			t.Fatalf("counted %d, want 1", got)
		}
	})
	t.Run("counted death, removed during a cut", func(t *testing.T) {
		h := newHarness(t)
		start := time.Now()
		h.daemon.set(cid, "web", runningState(start, 100))
		h.daemon.emit(cid, "start", start.Add(time.Millisecond), map[string]string{"name": "web"})
		h.connect()
		h.daemon.emit(cid, "die", start.Add(10*time.Millisecond), die(137))
		h.daemon.set(cid, "web", exitedState(start, start.Add(9*time.Millisecond), 137))
		time.Sleep(50 * time.Millisecond)
		h.cut()
		h.daemon.emit(cid, "destroy", start.Add(20*time.Millisecond), map[string]string{"name": "web"})
		h.daemon.set(cid, "", nil)
		h.connect()
		h.cut()
		h.connect() // a second heal replays the same second again
		if got := h.exits()["web"]; got != 1 {
			t.Fatalf("counted %d, want 1", got)
		}
	})
	t.Run("killed and restarted during a cut, then killed live", func(t *testing.T) {
		h := newHarness(t)
		start := time.Now()
		h.daemon.set(cid, "web", runningState(start, 100))
		h.daemon.emit(cid, "start", start.Add(time.Millisecond), map[string]string{"name": "web"})
		h.connect()
		h.cut()
		h.daemon.emit(cid, "die", start.Add(10*time.Millisecond), die(137))
		h.daemon.emit(cid, "start", start.Add(12*time.Millisecond), map[string]string{"name": "web"})
		h.daemon.set(cid, "web", runningState(start.Add(11*time.Millisecond), 101))
		h.connect()
		h.daemon.emit(cid, "die", start.Add(50*time.Millisecond), die(137))
		h.daemon.set(cid, "web", exitedState(start.Add(11*time.Millisecond), start.Add(49*time.Millisecond), 137))
		if got := h.exits()["web"]; got != 2 {
			t.Fatalf("counted %d, want 2", got)
		}
	})
	t.Run("an exit while the exporter was down, found from saved state", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "state.json")
		h := newHarness(t)
		start := time.Now()
		h.daemon.set(cid, "web", runningState(start, 100))
		h.daemon.emit(cid, "start", start.Add(time.Millisecond), map[string]string{"name": "web"})
		h.connect()
		h.cut()
		if err := h.tracker.SaveState(state); err != nil {
			t.Fatal(err)
		}
		// The exporter is down: web dies; then a new exporter starts.
		h.daemon.emit(cid, "die", start.Add(10*time.Millisecond), die(3))
		h.daemon.set(cid, "web", exitedState(start, start.Add(9*time.Millisecond), 3))
		next := newHarness(t)
		next.daemon = h.daemon
		next.src.client = h.src.client
		if err := next.tracker.LoadState(state); err != nil {
			t.Fatal(err)
		}
		next.connect()
		if got := next.exits()["web"]; got != 1 {
			t.Fatalf("the exit while down counted %d times, want 1", got)
		}
	})
}

// podmanDie is a die event as Podman's compatible API sends it.
func podmanDie(code int) map[string]string {
	return map[string]string{"name": "web", "image": "localhost/img", "podId": "", "exitCode": strconv.Itoa(code),
		"containerExitCode": strconv.Itoa(code)}
}

func podmanAttrs() map[string]string {
	return map[string]string{"name": "web", "image": "localhost/img", "podId": "", "containerExitCode": "0"}
}

// On Podman the drain must replay what happened during a cut although
// Podman stops reading at an until already past: a container killed and
// removed during the cut is known only from the replay.
func TestPodmanSessionReplaysTheCut(t *testing.T) {
	h := newHarness(t)
	h.daemon.podman = true
	start := time.Now()
	h.daemon.set(cid, "web", runningState(start, 100))
	for i, action := range []string{"create", "init", "start"} {
		h.daemon.emit(cid, action, start.Add(time.Duration(i+1)*time.Millisecond), podmanAttrs())
	}
	h.connect()
	if rt, ok := h.src.Runtime(); !ok || rt.Name != RuntimePodman || rt.Version != "4.3.1" {
		t.Fatalf("runtime %+v %v, want podman 4.3.1", rt, ok)
	}
	h.cut()
	h.daemon.emit(cid, "kill", start.Add(10*time.Millisecond), podmanAttrs())
	h.daemon.emit(cid, "die", start.Add(11*time.Millisecond), podmanDie(137))
	h.daemon.emit(cid, "cleanup", start.Add(12*time.Millisecond), podmanAttrs())
	h.daemon.emit(cid, "remove", start.Add(13*time.Millisecond), podmanAttrs())
	h.daemon.set(cid, "", nil)
	h.connect()
	if got := h.exits()["web"]; got != 1 {
		t.Fatalf("the exit in the cut counted %d times, want 1 (calls: %s)", got, h.daemon.callLog())
	}
	// Only the replayed die knows the code; a reconcile alone would have
	// inferred an exit of unknown code from the vanished container.
	byName, _ := h.tracker.ExitSeries()
	for _, s := range byName {
		if s.Name == "web" && s.Count > 0 && s.ExitCode != 137 {
			t.Fatalf("the exit in the cut counted as %+v, want code 137 from the replayed die", s.ExitKey)
		}
	}
	// Live from where the drain ended: a later run's exit counts once too.
	h.daemon.emit(cid, "start", time.Now(), podmanAttrs())
	h.daemon.emit(cid, "die", time.Now().Add(time.Millisecond), podmanDie(3))
	if got := h.exits()["web"]; got != 2 {
		t.Fatalf("counted %d, want 2", got)
	}
}

// Podman's remove is Docker's destroy: the container is gone.
func TestPodmanRemoveIsDestroy(t *testing.T) {
	h := newHarness(t)
	h.daemon.podman = true
	start := time.Now()
	h.daemon.set(cid, "web", runningState(start, 100))
	h.daemon.emit(cid, "start", start.Add(time.Millisecond), podmanAttrs())
	h.connect()
	h.daemon.emit(cid, "die", start.Add(10*time.Millisecond), podmanDie(0))
	h.daemon.set(cid, "web", exitedState(start, start.Add(9*time.Millisecond), 0))
	if got := h.exits()["web"]; got != 1 {
		t.Fatalf("counted %d, want 1", got)
	}
	if _, ok := h.tracker.IDByName("web"); !ok {
		t.Fatal("web unknown before its removal")
	}
	h.daemon.emit(cid, "remove", start.Add(20*time.Millisecond), podmanAttrs())
	h.daemon.set(cid, "", nil)
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, ok := h.tracker.IDByName("web"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("web still known after podman's remove event")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A line of the stream that is no event is counted as an error and
// skipped: the events after it, live or replayed, are handled.
func TestMalformedEventKeepsTheSessionsPlace(t *testing.T) {
	h := newHarness(t)
	start := time.Now()
	h.daemon.set(cid, "web", runningState(start, 100))
	h.daemon.emit(cid, "start", start.Add(time.Millisecond), map[string]string{"name": "web"})
	h.connect()
	garbage := func(at time.Time) {
		h.daemon.mu.Lock()
		defer h.daemon.mu.Unlock()
		m := Message{Type: garbageEvent, TimeNano: at.UnixNano()}
		h.daemon.events = append(h.daemon.events, m)
		for ch := range h.daemon.live {
			ch <- m
		}
	}
	garbage(start.Add(5 * time.Millisecond))
	h.daemon.emit(cid, "die", start.Add(10*time.Millisecond), die(137))
	h.daemon.set(cid, "web", exitedState(start, start.Add(9*time.Millisecond), 137))
	if got := h.exits()["web"]; got != 1 {
		t.Fatalf("live: counted %d, want 1", got)
	}
	if errs := h.src.health.Errors(); errs != 1 {
		t.Fatalf("live: %d errors counted, want 1", errs)
	}
	select {
	case err := <-h.done:
		t.Fatalf("the session ended at the malformed line: %v", err)
	default:
	}
	// During a cut: replayed from the cursor, past the same line again.
	h.cut()
	h.daemon.emit(cid, "start", start.Add(20*time.Millisecond), map[string]string{"name": "web"})
	garbage(start.Add(25 * time.Millisecond))
	h.daemon.emit(cid, "die", start.Add(30*time.Millisecond), die(3))
	h.daemon.set(cid, "web", exitedState(start.Add(19*time.Millisecond), start.Add(29*time.Millisecond), 3))
	h.connect()
	if got := h.exits()["web"]; got != 2 {
		t.Fatalf("after the cut: counted %d, want 2 (calls: %s)", got, h.daemon.callLog())
	}
}
