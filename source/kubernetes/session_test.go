package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// fakeAPI serves the pods and events lists and watches the source reads,
// or 403 for everything while forbidden.
type fakeAPI struct {
	mu        sync.Mutex
	forbidden bool
	endAtOnce bool // every watch ends as soon as it opens
	pods      []apiPod
	events    []apiEvent
	lists     map[string]int         // resource → list calls
	watchRVs  map[string][]string    // resource → resourceVersion of each watch
	watches   map[string]chan string // resource → the open watch's lines
	opened    chan string            // resource of each watch opened
	queries   map[string][]string    // resource → every query
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{lists: map[string]int{}, watchRVs: map[string][]string{}, watches: map[string]chan string{},
		opened: make(chan string, 16), queries: map[string][]string{}}
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resource := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	f.mu.Lock()
	f.queries[resource] = append(f.queries[resource], r.URL.RawQuery)
	if f.forbidden {
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,`+
			`"message":"%s is forbidden: User \"system:serviceaccount:monitoring:exit137\" cannot list resource \"%s\""}`, resource, resource)
		return
	}
	if r.URL.Query().Get("watch") != "true" {
		f.lists[resource]++
		var list any
		switch resource {
		case "pods":
			list = podList{Metadata: listMeta{ResourceVersion: "100"}, Items: f.pods}
		case "events":
			list = eventList{Metadata: listMeta{ResourceVersion: "200"}, Items: f.events}
		default:
			f.mu.Unlock()
			http.NotFound(w, r)
			return
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
		return
	}
	lines := make(chan string, 16)
	f.watches[resource] = lines
	f.watchRVs[resource] = append(f.watchRVs[resource], r.URL.Query().Get("resourceVersion"))
	endAtOnce := f.endAtOnce
	f.mu.Unlock()
	if endAtOnce {
		return
	}
	f.opened <- resource
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return // the server ends the watch
			}
			io.WriteString(w, line+"\n")
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// send writes one watch event to the open watch of resource.
func (f *fakeAPI) send(t *testing.T, resource, typ string, obj any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": typ, "object": obj})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	lines := f.watches[resource]
	f.mu.Unlock()
	lines <- string(b)
}

// end ends the open watch of resource, as the server does at its timeout.
func (f *fakeAPI) end(resource string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.watches[resource])
}

func (f *fakeAPI) count(resource string) (lists int, watchRVs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists[resource], append([]string(nil), f.watchRVs[resource]...)
}

func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q}}]
users: [{name: test, user: {token: secret}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
`, server)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitOpened waits until both watches are open (again).
func waitOpened(t *testing.T, f *fakeAPI, n int) {
	t.Helper()
	for range n {
		select {
		case <-f.opened:
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for a watch")
		}
	}
}

// The session against an API server: forbidden (down, said at a death),
// then allowed (up); evidence from the watches; a watch the server ends is
// reopened where it was, an expired one relisted, and neither takes the
// source down.
func TestSession(t *testing.T) {
	f := newFakeAPI()
	f.forbidden = true
	f.pods = []apiPod{*restarted()}
	srv := httptest.NewServer(f)
	defer srv.Close()

	var mu sync.Mutex
	var got []attribution.Evidence
	sink := source.SinkFunc(func(e attribution.Evidence) { mu.Lock(); got = append(got, e); mu.Unlock() })
	evidence := func() []told { mu.Lock(); defer mu.Unlock(); return tolds(got) }
	health := source.NewRegistry().Source("kubernetes")
	s := New(Options{Node: "node-1", Kubeconfig: writeKubeconfig(t, srv.URL), MaxBackoff: time.Second},
		sink, nil, health, slog.New(slog.NewTextHandler(t.Output(), nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	testrig.WaitUntil(t, 10*time.Second, "the 403 counted", func() bool { return health.Errors() > 0 })
	if health.Up() {
		t.Fatal("up while forbidden")
	}
	down := s.Probe(t0)
	if len(down) != 1 || down[0].Kind != attribution.KindKubeAPIUnavailable || down[0].Container != "" ||
		!down[0].Time.Equal(t0) || !strings.Contains(down[0].Detail, "pods is forbidden") {
		t.Fatalf("probe while forbidden: %+v", down)
	}
	if q := f.queries["pods"][0]; !strings.Contains(q, "fieldSelector=spec.nodeName%3Dnode-1") {
		t.Errorf("pods listed with %q, want this node's", q)
	}

	f.mu.Lock()
	f.forbidden = false
	f.mu.Unlock()
	waitOpened(t, f, 2)
	testrig.WaitUntil(t, 10*time.Second, "up", health.Up)
	if p := s.Probe(t0); p != nil {
		t.Errorf("probe while up: %+v", p)
	}
	if q := f.queries["events"][len(f.queries["events"])-1]; !strings.Contains(q, "fieldSelector=involvedObject.kind%3DPod%2Csource%3Dkubelet") {
		t.Errorf("events watched with %q", q)
	}
	errors := health.Errors()

	// A probe kill, and its repeat for the run after the restart.
	probeKill := kubeletEvent("Killing", "Container app failed liveness probe, will be restarted", "app", t0)
	probeKill.ResourceVersion = "201"
	f.send(t, "events", "ADDED", probeKill)
	again := repeated(probeKill, 2, t0.Add(90*time.Second))
	again.ResourceVersion = "202"
	// An event about a pod of another node, ignored.
	stranger := kubeletEvent("Killing", "Container x failed liveness probe, will be restarted", "x", t0)
	stranger.InvolvedObject.UID, stranger.UID, stranger.ResourceVersion = "other-pod", "ev-other", "203"
	f.send(t, "events", "MODIFIED", again)
	f.send(t, "events", "ADDED", stranger)
	testrig.WaitUntil(t, 10*time.Second, "the probe kills", func() bool { return len(evidence()) >= 2 })
	// Then the pod evicted through the Eviction API.
	evicted := deleting(disrupted("EvictionByEvictionAPI", "", t0.Add(100*time.Second)))
	evicted.Status.ContainerStatuses = restarted().Status.ContainerStatuses
	evicted.ResourceVersion = "101"
	f.send(t, "pods", "MODIFIED", evicted)
	want := []told{{attribution.KindKubeProbe, run1, 0}, {attribution.KindKubeProbe, run2, 90 * time.Second},
		{attribution.KindKubeEviction, side1, 100 * time.Second}, {attribution.KindKubeEviction, run2, 100 * time.Second}}
	testrig.WaitUntil(t, 10*time.Second, "the eviction", func() bool { return len(evidence()) >= 4 })

	// The server ends the event watch: reopened from the last version.
	f.end("events")
	waitOpened(t, f, 1)
	if _, rvs := f.count("events"); rvs[len(rvs)-1] != "203" {
		t.Errorf("event watch reopened from %q, want 203 (all: %v)", rvs[len(rvs)-1], rvs)
	}
	// A bookmark moves the version on.
	f.send(t, "pods", "BOOKMARK", map[string]any{"kind": "Pod", "apiVersion": "v1", "metadata": map[string]string{"resourceVersion": "150"}})
	f.end("pods")
	waitOpened(t, f, 1)
	if _, rvs := f.count("pods"); rvs[len(rvs)-1] != "150" {
		t.Errorf("pod watch reopened from %q, want the bookmark's 150", rvs[len(rvs)-1])
	}

	// Too old to resume: relisted, not down.
	listsBefore, _ := f.count("pods")
	f.send(t, "events", "ERROR", map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure",
		"reason": "Expired", "code": 410, "message": "too old resource version: 200 (300)"})
	waitOpened(t, f, 2)
	if lists, _ := f.count("pods"); lists != listsBefore+1 {
		t.Errorf("pods listed %d times after the 410, want %d", lists, listsBefore+1)
	}
	if !health.Up() || health.Errors() != errors {
		t.Errorf("after the 410: up %v, errors %d (were %d)", health.Up(), health.Errors(), errors)
	}

	// The API forbids again: down at the next failure.
	f.mu.Lock()
	f.forbidden = true
	f.mu.Unlock()
	f.end("pods")
	testrig.WaitUntil(t, 10*time.Second, "down", func() bool { return !health.Up() })
	if p := s.Probe(t0); len(p) != 1 {
		t.Errorf("probe after the API forbade again: %+v", p)
	}

	if g := evidence(); !slices.Equal(g, want) {
		t.Errorf("evidence %v, want %v", g, want)
	}
	if n := health.Events(); n != uint64(len(want)) {
		t.Errorf("events counted %d, want %d", n, len(want))
	}
}

// A server that ends every watch at once is not asked again in a busy
// loop: the session fails and backs off.
func TestSessionWatchEndsAtOnce(t *testing.T) {
	f := newFakeAPI()
	f.endAtOnce = true
	srv := httptest.NewServer(f)
	defer srv.Close()
	health := source.NewRegistry().Source("kubernetes")
	s := New(Options{Node: "node-1", Kubeconfig: writeKubeconfig(t, srv.URL), MaxBackoff: time.Second},
		source.SinkFunc(func(attribution.Evidence) {}), nil, health, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	testrig.WaitUntil(t, 10*time.Second, "the watch's end counted", func() bool { return health.Errors() > 0 })
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done
	if lists, rvs := f.count("pods"); lists > 2 || len(rvs) > 2 {
		t.Errorf("pods listed %d times and watched %d times in about a second", lists, len(rvs))
	}
}
