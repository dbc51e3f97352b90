package tracker

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// sec is a time s seconds after t0 (fractions allowed).
func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func running(started float64, pid int) RunState {
	return RunState{Running: true, StartedAt: sec(started), Pid: pid}
}

func exited(started, finished float64, code int) RunState {
	return RunState{StartedAt: sec(started), FinishedAt: sec(finished), ExitCode: code}
}

// countsByCode returns the host's counted exits by exit code.
func countsByCode(tr *Tracker) map[int]uint64 {
	_, host := tr.ExitSeries()
	out := map[int]uint64{}
	for _, s := range host {
		if s.Count > 0 {
			out[s.ExitCode] += s.Count
		}
	}
	return out
}

// Every scenario of issue 10, each as the tracker sees it from the Docker
// source: events in stream order (a replay repeats some), reconciles
// (Observe, Vanished) where a session makes them. Each fails on the
// tracker before the ledger.
func TestLedgerCountsEveryRunOnce(t *testing.T) {
	const unknown = attribution.ExitCodeUnknown
	all := map[string]bool{id: true}
	tests := []struct {
		name  string
		steps func(tr *Tracker)
		want  map[int]uint64
	}{
		{"die once", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.Died(id, sec(2), 1)
		}, map[int]uint64{1: 1}},
		{"a replayed start and die change nothing", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.Died(id, sec(2), 1)
			tr.Started(id, sec(1))
			tr.Died(id, sec(2), 1)
		}, map[int]uint64{1: 1}},
		{"quiet host: running before the start, killed and restarted in a cut, replayed from the horizon", func(tr *Tracker) {
			tr.Observe(id, running(-60, 100)) // the first reconcile
			if !tr.Cursor().Equal(t0) {
				t.Errorf("with no event seen the cursor must be the start, got %v", tr.Cursor())
			}
			tr.Died(id, sec(5), 137) // the replay after the cut
			tr.Started(id, sec(6))
			tr.Observe(id, running(5.9, 101)) // the reconcile after the replay
		}, map[int]uint64{137: 1}},
		{"counted death, removed during a cut, replayed after the heal", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.Died(id, sec(2), 137)
			tr.Died(id, sec(2), 137) // the replay repeats the die …
			tr.Removed(id, sec(3))   // … and the destroy
			tr.Vanished(map[string]bool{})
			tr.Died(id, sec(2), 137) // a second overlap after another cut
		}, map[int]uint64{137: 1}},
		{"counted death, removed during a cut, reconciled before the replay", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.Died(id, sec(2), 137)
			tr.Vanished(map[string]bool{})
			tr.Died(id, sec(2), 137)
			tr.Removed(id, sec(3))
		}, map[int]uint64{137: 1}},
		{"killed and restarted during a cut, then killed live", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.DescribeRun(id, sec(1), running(0.99, 100))
			tr.Died(id, sec(5), 137) // replayed
			tr.Started(id, sec(6))
			tr.Observe(id, running(5.99, 101))
			tr.Died(id, sec(9), 137) // live
		}, map[int]uint64{137: 2}},
		{"killed and restarted during the reconcile: the late die amends the inferred exit", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.DescribeRun(id, sec(1), running(0.99, 100))
			tr.Observe(id, running(5.99, 101)) // inspect already shows the next run
			tr.Died(id, sec(5), 137)           // then the stream delivers the death …
			tr.Started(id, sec(6))             // … and the start of the run inspect saw
			tr.Died(id, sec(9), 2)
		}, map[int]uint64{137: 1, 2: 1}},
		{"crash loop with event lag: each start's inspect shows a later run", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.DescribeRun(id, sec(1), running(3, 103)) // lagging: inspect shows run 3
			tr.Died(id, sec(1.5), 1)
			tr.DescribeDeath(id, sec(1.5), RunState{Running: true, StartedAt: sec(3)}) // of a later run: ignored
			tr.Started(id, sec(2))
			tr.DescribeRun(id, sec(2), running(3, 103))
			tr.Died(id, sec(2.5), 1)
			tr.Started(id, sec(3.001))
			tr.DescribeRun(id, sec(3.001), running(3, 103))
			tr.Died(id, sec(3.5), 1)
			tr.DescribeDeath(id, sec(3.5), RunState{StartedAt: sec(3), FinishedAt: sec(3.49), ExitCode: 1})
		}, map[int]uint64{1: 3}},
		{"a run found by reconcile, then its start replayed, then its die", func(tr *Tracker) {
			tr.Observe(id, running(1, 100))
			tr.Started(id, sec(1.001))
			tr.Died(id, sec(2), 3)
		}, map[int]uint64{3: 1}},
		{"created, started and dead during a reconcile: counted there, the replay is recognised", func(tr *Tracker) {
			tr.Observe(id, exited(1, 1.5, 4))
			tr.Started(id, sec(1.001))
			tr.Died(id, sec(1.6), 4)
		}, map[int]uint64{4: 1}},
		{"an ended run a reconcile found, then a later run's start and die", func(tr *Tracker) {
			tr.Observe(id, exited(1, 2, 2)) // found at +30s, counted
			tr.Started(id, sec(31))         // after that inspect: another run
			tr.Died(id, sec(32), 2)
		}, map[int]uint64{2: 2}},
		{"replayed events from before the start, of containers never known, are history", func(tr *Tracker) {
			tr.Started(id, sec(-0.5))
			tr.Died(id, sec(-0.2), 137)
			tr.Removed(id, sec(-0.1))
			tr.Vanished(map[string]bool{})
		}, map[int]uint64{}},
		{"a crash loop whose events lag behind a reconcile: the late dies of the runs it skipped count", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.Died(id, sec(1.2), 2)
			tr.Started(id, sec(2))
			tr.Died(id, sec(2.2), 2)
			tr.Observe(id, exited(3.99, 4.2, 2)) // inspect is at run 4; the events at run 2
			tr.Started(id, sec(3))               // run 3, late
			tr.Died(id, sec(3.2), 2)
			tr.Died(id, sec(3.2), 2) // and replayed after a cut
			tr.Started(id, sec(4))   // run 4, which the reconcile counted
			tr.Died(id, sec(4.3), 2)
		}, map[int]uint64{2: 4}},
		{"runs a restart policy made unseen, then their late dies: counted once, with their codes", func(tr *Tracker) {
			tr.Observe(id, RunState{Running: true, StartedAt: sec(1), RestartCount: 2})
			tr.Observe(id, RunState{Running: true, StartedAt: sec(9), RestartCount: 4}) // runs 1 and 2.. ended unseen
			tr.Died(id, sec(5), 3)                                                      // the late die of the one between
		}, map[int]uint64{unknown: 1, 3: 1}},
		{"an instant exit whose StartedAt lies after its FinishedAt", func(tr *Tracker) {
			tr.Started(id, sec(2.002))
			tr.DescribeRun(id, sec(2.002), exited(2.001, 2, 4))
			tr.Died(id, sec(2.01), 4)
			tr.DescribeDeath(id, sec(2.01), RunState{StartedAt: sec(2.001), FinishedAt: sec(2), ExitCode: 4})
			tr.Observe(id, exited(2.001, 2, 4))
			tr.Started(id, sec(2.002))
		}, map[int]uint64{4: 1}},
		{"an exit before the start of a container never seen is history", func(tr *Tracker) {
			tr.Observe(id, exited(-120, -60, 1))
			tr.Vanished(all)
		}, map[int]uint64{}},
		{"an exit after the start of a container never seen counts", func(tr *Tracker) {
			tr.Observe(id, exited(1, 3, 1))
		}, map[int]uint64{1: 1}},
		{"a die of a container never seen counts", func(tr *Tracker) {
			tr.Died(id, sec(3), 1)
			tr.Died(id, sec(3), 1)
		}, map[int]uint64{1: 1}},
		{"an open run removed unseen ended unseen", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.Vanished(map[string]bool{})
		}, map[int]uint64{unknown: 1}},
		{"a dockerd restart: the shutdown's death found by reconcile with its code", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.DescribeRun(id, sec(1), running(0.99, 100))
			tr.Observe(id, exited(0.99, 8, 137))
			tr.Vanished(all)
		}, map[int]uint64{137: 1}},
		{"a restart policy restarted it three times unseen", func(tr *Tracker) {
			tr.Observe(id, RunState{Running: true, StartedAt: sec(1), RestartCount: 2})
			tr.Observe(id, RunState{Running: true, StartedAt: sec(9), RestartCount: 5})
		}, map[int]uint64{unknown: 3}},
		{"a start while the latest run is open: its die was lost", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.Started(id, sec(5))
			tr.Died(id, sec(6), 0)
		}, map[int]uint64{unknown: 1, 0: 1}},
		{"a second die without a start is not a second exit", func(tr *Tracker) {
			tr.Started(id, sec(1))
			tr.Died(id, sec(2), 1)
			tr.Died(id, sec(3), 1)
		}, map[int]uint64{1: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, now := newTestTracker()
			*now = sec(30)
			// Verdicts settle after the steps, as a die arriving within
			// the settle delay would see them.
			var settling []func()
			tr.after = func(_ time.Duration, f func()) { settling = append(settling, f) }
			tr.Upsert(Meta{ID: id, Name: "web", Image: "nginx"})
			tc.steps(tr)
			tr.CaughtUp()
			for _, f := range settling {
				f()
			}
			got := countsByCode(tr)
			if len(got) != len(tc.want) {
				t.Fatalf("counted %v, want %v", got, tc.want)
			}
			for code, n := range tc.want {
				if got[code] != n {
					t.Fatalf("counted %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// The exporter restarts: what was counted stays counted, what died while
// it was down is counted once, and an exit still settling when it stopped
// is counted by the next start.
func TestStateSurvivesTheExporter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	other := "f" + id[1:]
	before, now := newTestTracker()
	*now = sec(30)
	before.after = func(time.Duration, func()) {} // nothing decides: verdicts pending at the stop
	before.Upsert(Meta{ID: id, Name: "web"})
	before.Upsert(Meta{ID: other, Name: "db"})
	before.Started(id, sec(1))
	before.Started(other, sec(1))
	before.Died(other, sec(20), 9) // counted, verdict pending at the crash
	if err := before.SaveState(path); err != nil {
		t.Fatal(err)
	}

	after, now2 := newTestTracker()
	*now2 = sec(60)
	if err := after.LoadState(path); err != nil {
		t.Fatal(err)
	}
	if c := after.Cursor(); c.After(sec(20)) {
		t.Fatalf("cursor %v is after the pending death at +20s: its die would not be replayed", c)
	}
	after.Upsert(Meta{ID: id, Name: "web"})
	after.Upsert(Meta{ID: other, Name: "db"})
	// The replay from the cursor: the pending death again, and a death of
	// web while the exporter was down.
	after.Died(other, sec(20), 9)
	after.Died(id, sec(40), 1)
	after.Observe(id, exited(0.99, 39.9, 1))
	after.Observe(other, exited(0.99, 19.9, 9))
	after.Vanished(map[string]bool{id: true, other: true})
	if got := countsByCode(after); got[1] != 1 || got[9] != 1 || len(got) != 2 {
		t.Fatalf("after the restart counted %v, want one exit 1 (web, while down) and one 9 (db, pending at the stop)", got)
	}

	// A third start after a clean stop counts nothing again.
	after.Flush()
	if err := after.SaveState(path); err != nil {
		t.Fatal(err)
	}
	third, now3 := newTestTracker()
	*now3 = sec(90).Add(2 * time.Hour) // past the retention since the sets were last seen live
	if err := third.LoadState(path); err != nil {
		t.Fatal(err)
	}
	third.Died(other, sec(20), 9)
	third.Died(id, sec(40), 1)
	third.Observe(id, exited(0.99, 39.9, 1))
	// The counters go on from where they stood, and nothing is recounted.
	if got := countsByCode(third); got[1] != 1 || got[9] != 1 || len(got) != 2 {
		t.Fatalf("after a clean restart the counters are %v, want the same one exit 1 and one 9", got)
	}
	// Per name too, before any reconcile says the containers still exist.
	byName, _ := third.ExitSeries()
	perName := map[string]uint64{}
	for _, s := range byName {
		perName[s.Name] += s.Count
	}
	if perName["web"] != 1 || perName["db"] != 1 {
		t.Fatalf("per-name counters after the restart: %v, want web 1 and db 1", perName)
	}
}

func TestCorruptOrMissingStateIsAFreshStart(t *testing.T) {
	dir := t.TempDir()
	tr, _ := newTestTracker()
	if err := tr.LoadState(filepath.Join(dir, "none")); err != ErrNoState {
		t.Fatalf("missing file: %v, want ErrNoState", err)
	}
	for name, body := range map[string]string{
		"garbage":   "{not json",
		"version":   `{"version": 99, "cursor": "2026-11-24T12:00:00Z"}`,
		"no-cursor": `{"version": 1}`,
		"bad-id":    `{"version": 1, "cursor": "2026-11-24T11:00:00Z", "entries": {"x": {}}}`,
	} {
		path := filepath.Join(dir, name)
		writeFile(t, path, body)
		if err := tr.LoadState(path); err == nil {
			t.Errorf("%s: loaded without error", name)
		}
		if !tr.Cursor().Equal(t0) || len(tr.ledger.entries) != 0 {
			t.Errorf("%s: a failed load changed the tracker", name)
		}
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Under churn the stream stays up for days and no reconcile runs: the
// removals themselves expire the tombstones that no replay can need (all
// of a container's events are stamped before its removal, and a replay
// starts at the cursor), and keep those a replay from the cursor could
// still meet; and the evidence of removed containers goes once no verdict
// can read it.
func TestTombstonesExpireWhileTheStreamStaysUp(t *testing.T) {
	tr, now := newTestTracker()
	ids := make([]string, 0, 200)
	for i := range 200 { // one lifecycle a second for 200 s
		cid := fmt.Sprintf("%064x", i)
		ids = append(ids, cid)
		at := sec(float64(i))
		*now = at
		tr.Upsert(Meta{ID: cid, Name: fmt.Sprintf("job-%d", i), Image: "busybox"})
		tr.Started(cid, at)
		tr.AddEvidence(attribution.Evidence{Container: cid, Time: at.Add(100 * time.Millisecond), Source: "docker",
			Kind: attribution.KindDockerKill, Signal: 9})
		tr.Died(cid, at.Add(200*time.Millisecond), 0)
		tr.Removed(cid, at.Add(300*time.Millisecond))
	}
	if n := tr.evidence.n; n > 70 {
		t.Fatalf("%d pieces of evidence kept of 200 removed containers; no verdict reads past %v", n, 30*time.Second)
	}
	cursor := tr.Cursor()
	for i, cid := range ids {
		_, kept := tr.ledger.entries[cid]
		removed := sec(float64(i)).Add(300 * time.Millisecond)
		if needed := !removed.Before(cursor.Add(-tombstoneMargin)); needed && !kept {
			t.Fatalf("the tombstone of container %d (removed %v before the cursor) expired: a replay may still meet it", i, cursor.Sub(removed))
		}
		if old := removed.Before(cursor.Add(-tombstoneMargin - sweepEvery)); old && kept {
			t.Fatalf("the tombstone of container %d, removed %v before the cursor, is kept", i, cursor.Sub(removed))
		}
	}
	// A replay from the cursor, less the source's overlap, of the last
	// containers' events counts nothing again.
	before := countsByCode(tr)[0]
	for i := 190; i < 200; i++ {
		at := sec(float64(i))
		tr.Started(ids[i], at)
		tr.Died(ids[i], at.Add(200*time.Millisecond), 0)
		tr.Removed(ids[i], at.Add(300*time.Millisecond))
	}
	if after := countsByCode(tr)[0]; after != before || before != 200 {
		t.Fatalf("counted %d, then %d after the replay; want 200 both times", before, after)
	}
}

// The docker source inspects after a start on a worker: the answer,
// given while the container still ran, may be applied after its die and
// destroy. It must not bring the removed container back.
// removedJob is a tracker that saw a container start at 1 s, die at 1.2 s
// and be removed at 1.3 s.
func removedJob() (*Tracker, Meta) {
	tr, _ := newTestTracker()
	meta := Meta{ID: id, Name: "job", Image: "busybox"}
	tr.Upsert(meta)
	tr.Started(id, sec(1))
	tr.Died(id, sec(1.2), 0)
	tr.Removed(id, sec(1.3))
	return tr, meta
}

func TestLateInspectDoesNotReviveARemovedContainer(t *testing.T) {
	tr, meta := removedJob()
	meta.Pid = 100
	tr.Inspected(meta, sec(1), running(0.99, 100))
	if _, ok := tr.Views()[id]; ok {
		t.Fatalf("the removed container is back in the registry")
	}
	// Once its name's retention passed, its series go: nothing holds it.
	tr.now = func() time.Time { return sec(1.3).Add(2 * time.Hour) }
	if byName, _ := tr.ExitSeries(); len(byName) != 0 {
		t.Fatalf("the removed container's name is still held live: %+v", byName)
	}
	// A container id used again (containerd's ctr names them) is
	// described by the inspect of its new run.
	meta.Pid = 101
	tr.Upsert(meta)
	tr.Started(id, sec(9000))
	tr.Inspected(meta, sec(9000), running(8999.9, 101))
	if v, ok := tr.Views()[id]; !ok || v.Pid != 101 {
		t.Fatalf("the inspect of a new run of a reused id was dropped: %+v", v)
	}
}

// An inspect may lag the stream by more than the tombstones last (a burst
// of deaths queues them): once its container's tombstone has expired, the
// inspect is still refused, by the ledger's forgotten horizon.
func TestLateInspectAfterTheTombstoneExpired(t *testing.T) {
	tr, meta := removedJob()
	// Other containers' events move the cursor on; a removal sweeps.
	const other = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	tr.now = func() time.Time { return sec(300) }
	tr.Started(other, sec(299))
	tr.Removed(other, sec(300))
	if _, ok := tr.ledger.entries[id]; ok {
		t.Fatalf("the tombstone removed at 1.3 s is still kept at a cursor of 300 s")
	}
	meta.Pid = 100
	tr.Inspected(meta, sec(1), running(0.99, 100))
	if _, ok := tr.Views()[id]; ok {
		t.Fatalf("an inspect of a forgotten container brought it back")
	}
}
