package tracker

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// newTestTracker decides at once and runs on a clock the test moves.
func newTestTracker(probes ...DeathProbe) (*Tracker, *time.Time) {
	tr := New(Config{Window: 30 * time.Second, Retention: time.Hour, MaxVerdicts: 3}, slog.New(slog.DiscardHandler), probes...)
	now := t0
	tr.now = func() time.Time { return now }
	tr.start, tr.ledger.horizon = t0, t0
	tr.after = func(_ time.Duration, f func()) { f() }
	return tr, &now
}

const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func hostCount(tr *Tracker, code int) uint64 {
	_, host := tr.ExitSeries()
	var n uint64
	for _, s := range host {
		if s.ExitCode == code {
			n += s.Count
		}
	}
	return n
}

func TestNameSeriesRetention(t *testing.T) {
	tr, now := newTestTracker()
	tr.Upsert(Meta{ID: id, Name: "web", Image: "nginx"})
	tr.Started(id, t0)
	tr.Died(id, t0.Add(time.Second), 0)
	byName, _ := tr.ExitSeries()
	if len(byName) != 6 { // five pre-initialised 137 causes + the exit
		t.Fatalf("want 6 series for a live name, got %d: %+v", len(byName), byName)
	}
	tr.Removed(id, *now)
	*now = now.Add(59 * time.Minute)
	if byName, _ = tr.ExitSeries(); len(byName) != 6 {
		t.Fatalf("series dropped before the retention ran out")
	}
	*now = now.Add(2 * time.Minute)
	byName, host := tr.ExitSeries()
	if len(byName) != 0 {
		t.Fatalf("series of a name removed over an hour ago kept: %+v", byName)
	}
	if hostCount(tr, 0) != 1 || len(host) != 6 {
		t.Fatalf("host totals must never drop: %+v", host)
	}
}

func TestRecreatedNameKeepsItsSeries(t *testing.T) {
	tr, now := newTestTracker()
	tr.Upsert(Meta{ID: id, Name: "web", Image: "nginx"})
	tr.Started(id, t0)
	tr.Died(id, t0.Add(time.Second), 137)
	tr.Removed(id, t0.Add(time.Second))
	*now = now.Add(2 * time.Hour)
	other := strings.Repeat("f", 64)
	tr.Upsert(Meta{ID: other, Name: "web", Image: "nginx"})
	byName, _ := tr.ExitSeries()
	var unknown uint64
	for _, s := range byName {
		if s.Cause == attribution.CauseUnknown {
			unknown += s.Count
		}
	}
	if unknown != 1 {
		t.Fatalf("the kill of the first web must still count for the name: %+v", byName)
	}
}

func TestOOMKillRiseIsEvidenceStampedAtThePreviousLook(t *testing.T) {
	tr, _ := newTestTracker()
	tr.Upsert(Meta{ID: id, Name: "web"})
	tr.ObserveOOMKills(id, 0, t0)
	tr.ObserveOOMKills(id, 0, t0.Add(10*time.Second))
	tr.ObserveOOMKills(id, 2, t0.Add(20*time.Second))
	ev := tr.evidence.around(id, 0, t0, t0.Add(time.Minute))
	if len(ev) != 1 || ev[0].Kind != attribution.KindCgroupOOMKill || !ev[0].Time.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("want one cgroup_oom_kill at +10s, got %+v", ev)
	}
}

func TestVerdictsUseEvidenceAndProbesAndAreBounded(t *testing.T) {
	pressure := func(at time.Time) []attribution.Evidence {
		return []attribution.Evidence{{Time: at, Kind: attribution.KindDiskPressure, Source: "disk", Detail: "/data full"}}
	}
	tr, _ := newTestTracker(pressure)
	tr.Upsert(Meta{ID: id, Name: "web"})
	for i := 0; i < 4; i++ {
		start := t0.Add(time.Duration(i) * time.Minute)
		tr.Started(id, start)
		if i == 3 {
			tr.AddEvidence(attribution.Evidence{Container: id, Time: start.Add(time.Second), Kind: attribution.KindDockerKill, Signal: 9, Source: "docker"})
		}
		tr.Died(id, start.Add(2*time.Second), 137)
	}
	v := tr.Verdicts("web")
	if len(v) != 3 {
		t.Fatalf("kept %d verdicts, want the newest 3", len(v))
	}
	if v[0].Cause != attribution.CauseManual || v[1].Cause != attribution.CauseDisk {
		t.Fatalf("newest first: manual (docker kill beats disk), then disk; got %s, %s", v[0].Cause, v[1].Cause)
	}
	if got := tr.Verdicts(id[:12]); len(got) != 3 {
		t.Fatalf("an id prefix must match: %d", len(got))
	}
	if got := tr.Verdicts("other"); len(got) != 0 {
		t.Fatalf("another name matched: %d", len(got))
	}
	if views := tr.Views(); views[id].LastCause != attribution.CauseManual || views[id].LastExit.ExitCode != 137 {
		t.Fatalf("last verdict not on the view: %+v", views[id])
	}
}

func TestLateReconciledExitIsNotJudgedByDiskNow(t *testing.T) {
	pressure := func(at time.Time) []attribution.Evidence {
		return []attribution.Evidence{{Time: at, Kind: attribution.KindDiskPressure, Source: "disk"}}
	}
	tr, now := newTestTracker(pressure)
	tr.Upsert(Meta{ID: id, Name: "web"})
	tr.Observe(id, RunState{Running: true, StartedAt: t0.Add(time.Second)})
	*now = t0.Add(time.Hour) // the exit is found on a reconcile an hour later
	tr.Observe(id, RunState{StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(2 * time.Second), ExitCode: 137})
	tr.CaughtUp()
	if v := tr.Verdicts("web"); len(v) != 1 || v[0].Cause != attribution.CauseUnknown {
		t.Fatalf("disk pressure sampled an hour after the death decided it: %+v", v)
	}
}

func TestKubeContainerFindsThePodsRunningContainer(t *testing.T) {
	tr, _ := newTestTracker()
	old, cur := id, "f"+id[1:]
	for i, cid := range []string{old, cur} {
		tr.Upsert(Meta{ID: cid, Name: "shop/web-0/app", PodUID: "u1", Container: "app"})
		tr.Started(cid, t0.Add(time.Duration(i)*time.Minute))
	}
	tr.Died(old, t0.Add(30*time.Second), 137)
	if got, ok := tr.KubeContainer("u1", "app"); !ok || got != cur {
		t.Fatalf("KubeContainer = %q %v, want the running %q", got, ok, cur)
	}
	tr.Died(cur, t0.Add(2*time.Minute), 137)
	if got, ok := tr.KubeContainer("u1", "app"); !ok || got != cur {
		t.Fatalf("after both exited: %q %v, want the latest started %q", got, ok, cur)
	}
	if _, ok := tr.KubeContainer("u1", "sidecar"); ok {
		t.Fatal("found a container the pod does not have")
	}
}

// The kubelet's kill comes a grace period before the death it causes (30s
// by default, as long as the window): the evidence is kept and found for
// as long as its grace reaches.
func TestKubeletKillReachesPastTheWindow(t *testing.T) {
	tr, now := newTestTracker()
	tr.Upsert(Meta{ID: id, Name: "shop/web-0/app", PodUID: "u1", Container: "app"})
	tr.Started(id, t0)
	kill := t0.Add(10 * time.Second)
	tr.AddEvidence(attribution.Evidence{Container: id, Time: kill, Kind: attribution.KindKubeProbe, GraceSeconds: 30,
		Source: "kubernetes", Detail: "event Killing: Container app failed liveness probe, will be restarted"})
	*now = kill.Add(40 * time.Second)
	tr.Died(id, kill.Add(30*time.Second+500*time.Millisecond), 137)
	if v := tr.Verdicts("shop/web-0/app"); len(v) != 1 || v[0].Cause != attribution.CauseProbe {
		t.Fatalf("a probe kill 30.5s before the death, grace 30s, window 30s: %+v", v)
	}
}

// The ring keeps each verdict's exit and the evidence it cites; /explain
// gets the verdict decided again from them, as it was when decided.
func TestVerdictsDecidedAgain(t *testing.T) {
	tr, _ := newTestTracker()
	tr.Upsert(Meta{ID: id, Name: "job", Image: "busybox"})
	tr.Started(id, sec(1))
	kill := attribution.Evidence{Container: id, Time: sec(1.5), Source: "docker", Kind: attribution.KindDockerKill,
		Signal: 9, Detail: "docker event: kill, signal 9"}
	tr.AddEvidence(kill)
	tr.Died(id, sec(2), 137)
	vs := tr.Verdicts("job")
	if len(vs) != 1 {
		t.Fatalf("%d verdicts, want 1", len(vs))
	}
	exit := attribution.Exit{ContainerID: id, Name: "job", Image: "busybox", ExitCode: 137, Time: sec(2)}
	want := attribution.Decide(exit, []attribution.Evidence{kill}, 30*time.Second)
	if fmt.Sprint(vs[0]) != fmt.Sprint(want) || vs[0].Cause != attribution.CauseManual {
		t.Errorf("verdict from the ring:\n%+v\nwant (manual)\n%+v", vs[0], want)
	}
}
