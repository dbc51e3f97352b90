package containerd

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// harness runs sessions of a Source against the fake by hand, so that a
// test decides when a connection is cut and when it heals.
type harness struct {
	t       *testing.T
	fake    *fakeContainerd
	tracker *tracker.Tracker
	src     *Source
	done    chan error
	// leave ends the session from the source's side.
	leave context.CancelFunc
}

func newHarness(t *testing.T) *harness {
	f, sock := newFakeContainerd(t)
	h := newHarnessAt(t, Options{Address: sock})
	h.fake = f
	return h
}

func newHarnessAt(t *testing.T, opts Options) *harness {
	tr := tracker.New(tracker.Config{Window: 30 * time.Second, Retention: time.Hour}, slog.New(slog.DiscardHandler))
	src, err := New(opts, tr, source.NewRegistry().Source("containerd"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, tracker: tr, src: src}
	t.Cleanup(func() {
		if h.leave != nil {
			h.leave()
		}
	})
	return h
}

// connect starts a session and waits until it follows the stream live.
func (h *harness) connect() {
	h.t.Helper()
	h.start()
	deadline := time.Now().Add(5 * time.Second)
	for !h.src.health.Up() {
		select {
		case err := <-h.done:
			h.t.Fatalf("the session ended before it went live: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the session never went live")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// start starts a session, and returns.
func (h *harness) start() {
	h.done = make(chan error, 1)
	ctx, leave := context.WithCancel(context.Background())
	h.leave = leave
	go func() {
		_, err := h.src.session(ctx)
		h.src.health.SetUp(false, h.src.logger, err)
		h.done <- err
	}()
}

// cut drops the subscription and waits for the session to end.
func (h *harness) cut() {
	h.t.Helper()
	h.fake.cut()
	h.ended()
}

// disconnect ends the session from the source's side: the connection
// closes, and what happens until the next connect is unseen.
func (h *harness) disconnect() {
	h.t.Helper()
	h.leave()
	h.ended()
}

func (h *harness) ended() {
	h.t.Helper()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		h.t.Fatal("the session did not end at the cut")
	}
}

// countsBy returns the counted exits by name, code and cause.
func (h *harness) countsBy() map[string]uint64 {
	h.tracker.Wait()
	byName, _ := h.tracker.ExitSeries()
	out := map[string]uint64{}
	for _, s := range byName {
		if s.Count > 0 {
			out[s.Name+" "+strconv.Itoa(s.ExitCode)+" "+string(s.Cause)] += s.Count
		}
	}
	return out
}

// awaitExits waits until the counted exits are want, and fails with what
// was counted when they do not become so.
func (h *harness) awaitExits(want map[string]uint64) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := h.countsBy()
		if equalCounts(got, want) {
			// Nothing more may come: wait a little and look again.
			time.Sleep(300 * time.Millisecond)
			if got = h.countsBy(); equalCounts(got, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("counted %v\n want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func equalCounts(got, want map[string]uint64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, n := range want {
		if got[k] != n {
			return false
		}
	}
	return true
}

// podLabels are a kubelet container's CRI labels.
func podLabels(container string) map[string]string {
	return map[string]string{labelCRIKind: criKindContainer, labelPodNamespace: "shop", labelPodName: "web-0",
		labelPodUID: "uid-1", labelContainerName: container}
}

var sandboxLabels = map[string]string{labelCRIKind: criKindSandbox, labelPodNamespace: "shop", labelPodName: "web-0"}

const (
	idSandbox = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
	id1       = "1111111111111111111111111111111111111111111111111111111111111111"
	id2       = "2222222222222222222222222222222222222222222222222222222222222222"
	id3       = "3333333333333333333333333333333333333333333333333333333333333333"
	webName   = "shop/web-0/app"
)

// step returns a clock that moves 1 ms a call from now: event times in
// the order the runtime makes them.
// step stamps events as containerd does, by the wall clock (an event is
// never stamped after a reconcile that follows it: one that was took a
// run the reconcile had found ended for a later run), and strictly in
// order.
func step() func() time.Time {
	var last time.Time
	return func() time.Time {
		at := time.Now()
		if !at.After(last) {
			at = last.Add(time.Nanosecond)
		}
		last = at
		return at
	}
}

func TestSessionCountsEachDeathOnce(t *testing.T) {
	t.Run("a crash loop live: each restart a new id of one name; sandbox and exec exits never count", func(t *testing.T) {
		h := newHarness(t)
		h.connect()
		now := step()
		h.fake.run(idSandbox, sandboxLabels, 50, now)
		for i, id := range []string{id1, id2, id3} {
			h.fake.create(id, podLabels("app"), now())
			h.fake.start(id, 100+i, now())
			h.fake.execExit(id, "probe-"+strconv.Itoa(i), 1, now())
			h.fake.exit(id, 137, now(), now())
		}
		h.fake.exit(idSandbox, 137, now(), now())
		h.awaitExits(map[string]uint64{webName + " 137 unknown": 3})
	})
	t.Run("an event between the subscribe call and its registration is not lost", func(t *testing.T) {
		h := newHarness(t)
		now := step()
		h.fake.run(id1, podLabels("app"), 100, now)
		h.fake.lateSubscribe = 100 * time.Millisecond
		go func() {
			// Dies after the source asked to subscribe and before the
			// subscription is registered; the reconcile must still see it.
			time.Sleep(50 * time.Millisecond)
			h.fake.exit(id1, 137, now(), now())
		}()
		h.connect()
		h.awaitExits(map[string]uint64{webName + " 137 unknown": 1})
	})
	t.Run("died and replaced during a cut: counted once, from the CRI's status", func(t *testing.T) {
		h := newHarness(t)
		now := step()
		h.fake.run(id1, podLabels("app"), 100, now)
		h.connect()
		h.cut()
		h.fake.exit(id1, 137, now(), now())
		h.fake.run(id2, podLabels("app"), 101, now)
		h.connect()
		h.awaitExits(map[string]uint64{webName + " 137 unknown": 1})
		h.cut()
		h.connect() // a second heal sees the same exited container again
		h.fake.exit(id2, 2, now(), now())
		h.awaitExits(map[string]uint64{webName + " 137 unknown": 1, webName + " 2 none": 1})
	})
	t.Run("dies during the reconcile: the reconcile and the buffered exit are one death, with its code", func(t *testing.T) {
		h := newHarness(t)
		now := step()
		h.fake.create(id1, podLabels("app"), now())
		h.fake.onList = func() {
			h.fake.start(id1, 100, now())
			h.fake.exit(id1, 3, now(), now())
			h.fake.onList = nil
		}
		h.connect()
		h.awaitExits(map[string]uint64{webName + " 3 none": 1})
	})
	t.Run("started during the reconcile, dies live", func(t *testing.T) {
		h := newHarness(t)
		now := step()
		h.fake.create(id1, podLabels("app"), now())
		h.fake.onList = func() {
			h.fake.start(id1, 100, now())
			h.fake.onList = nil
		}
		h.connect()
		h.fake.exit(id1, 137, now(), now())
		h.awaitExits(map[string]uint64{webName + " 137 unknown": 1})
	})
	t.Run("counted death, removed during a cut", func(t *testing.T) {
		h := newHarness(t)
		now := step()
		h.connect()
		h.fake.run(id1, podLabels("app"), 100, now)
		h.fake.exit(id1, 137, now(), now())
		h.awaitExits(map[string]uint64{webName + " 137 unknown": 1})
		h.cut()
		h.fake.remove(id1, now())
		h.connect()
		h.awaitExits(map[string]uint64{webName + " 137 unknown": 1})
	})
	t.Run("running when removed during a cut: an exit of unknown code", func(t *testing.T) {
		h := newHarness(t)
		now := step()
		h.fake.run(id1, podLabels("app"), 100, now)
		h.connect()
		h.cut()
		h.fake.exit(id1, 137, now(), now())
		h.fake.remove(id1, now())
		h.connect()
		h.awaitExits(map[string]uint64{webName + " -1 unknown": 1})
	})
	t.Run("an exit while the exporter was down, found from saved state", func(t *testing.T) {
		h := newHarness(t)
		now := step()
		h.connect()
		h.fake.run(id1, podLabels("app"), 100, now)
		h.fake.run(id2, nil, 200, now)
		h.awaitExits(map[string]uint64{})
		h.cut()
		state := filepath.Join(t.TempDir(), "state.json")
		if err := h.tracker.SaveState(state); err != nil {
			t.Fatal(err)
		}
		// The exporter is down: both die; then a new exporter starts.
		h.fake.exit(id1, 137, now(), now())
		h.fake.exit(id2, 3, now(), now())
		next := newHarness(t)
		next.fake = h.fake
		next.src.opts.Address, next.src.target = h.src.opts.Address, h.src.target
		if err := next.tracker.LoadState(state); err != nil {
			t.Fatal(err)
		}
		next.connect()
		next.awaitExits(map[string]uint64{webName + " 137 unknown": 1, id2 + " 3 none": 1})
	})
	t.Run("a ctr container's task deleted and started again during a cut: two runs, two exits", func(t *testing.T) {
		h := newHarness(t)
		now := step()
		h.fake.run(id1, nil, 100, now)
		h.connect()
		h.cut()
		h.fake.exit(id1, 137, now(), now())
		h.fake.start(id1, 101, now()) // ctr task delete, ctr task start
		h.connect()
		h.fake.exit(id1, 0, now(), now())
		h.awaitExits(map[string]uint64{id1 + " -1 unknown": 1, id1 + " 0 none": 1})
	})
}
