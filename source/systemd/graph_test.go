package systemd

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestParentsFromBothSides(t *testing.T) {
	g := NewGraph()
	g.SetDeps("app.service", Deps{PartOf: []string{"front.service"}})
	g.SetDeps("db.service", Deps{BoundBy: []string{"app.service"}})
	g.SetDeps("web.target", Deps{ConsistsOf: []string{"app.service"}})
	// Both PartOf= and BindsTo= on one parent: BindsTo= propagates more.
	g.SetDeps("proxy.service", Deps{ConsistsOf: []string{"app.service"}, BoundBy: []string{"app.service"}})
	want := []Edge{
		{"db.service", BindsTo}, {"front.service", PartOf}, {"proxy.service", BindsTo}, {"web.target", PartOf},
	}
	if got := g.Parents("app.service"); !slices.Equal(got, want) {
		t.Errorf("Parents = %v, want %v", got, want)
	}
	if got := g.Parents("front.service"); len(got) != 0 {
		t.Errorf("front.service follows nothing, got %v", got)
	}
}

// A daemon-reload can drop an edge: the reloaded listing replaces every
// unit's edges, and a unit no longer listed keeps its history.
func TestReplaceAfterDaemonReload(t *testing.T) {
	g := NewGraph()
	g.SetDeps("app.service", Deps{PartOf: []string{"front.service"}})
	g.SetDeps("front.service", Deps{ConsistsOf: []string{"app.service"}})
	g.SetDeps("old.service", Deps{PartOf: []string{"front.service"}})
	g.Observe("old.service", Sample{At: at(0), Active: "active", Sub: "running"})

	g.Replace(map[string]Deps{
		"app.service":   {BindsTo: []string{"db.service"}},
		"db.service":    {BoundBy: []string{"app.service"}},
		"front.service": {},
	})
	if got, want := g.Parents("app.service"), []Edge{{"db.service", BindsTo}}; !slices.Equal(got, want) {
		t.Errorf("after reload Parents(app) = %v, want %v", got, want)
	}
	if got := g.Parents("old.service"); len(got) != 0 {
		t.Errorf("an unlisted unit kept its edges: %v", got)
	}
	if len(g.History("old.service")) != 1 {
		t.Errorf("an unlisted unit lost its history")
	}
}

func TestRemovedUnitsAreForgottenLater(t *testing.T) {
	g := NewGraph()
	g.SetDeps("gone.service", Deps{PartOf: []string{"front.service"}})
	g.Removed("gone.service", at(0))
	if g.Known("gone.service") {
		t.Error("a removed unit is still known")
	}
	g.Prune(at(0).Add(removedForgets / 2))
	if g.Parents("gone.service") == nil {
		t.Error("a just-removed unit's edges are needed for its stop and must stay a while")
	}
	g.Prune(at(0).Add(2 * removedForgets))
	if len(g.Parents("gone.service")) != 0 || g.History("gone.service") != nil {
		t.Error("a unit removed long ago was not forgotten")
	}
	g.SetDeps("back.service", Deps{})
	g.Removed("back.service", at(0))
	g.SetDeps("back.service", Deps{PartOf: []string{"x.service"}})
	g.Prune(at(0).Add(2 * removedForgets))
	if !g.Known("back.service") {
		t.Error("a unit loaded again after its removal was forgotten")
	}
}

func TestObserveFindsTheStartOfAStop(t *testing.T) {
	g := NewGraph()
	steps := []struct {
		s       Sample
		stopped bool
		newJob  bool
	}{
		{Sample{At: at(0), Active: "active", Sub: "running"}, false, false},
		{Sample{At: at(1), Active: "active", Sub: "running", Job: 7}, false, true},
		{Sample{At: at(2), Active: "active", Sub: "running", Job: 7}, false, false}, // repeat: no sample
		{Sample{At: at(3), Active: "deactivating", Sub: "stop-sigterm", Job: 7}, true, false},
		{Sample{At: at(4), Active: "inactive", Sub: "dead", Job: 7}, false, false},
		{Sample{At: at(5), Active: "activating", Sub: "start", Job: 7}, false, false},
		{Sample{At: at(6), Active: "active", Sub: "running"}, false, false},
		{Sample{At: at(7), Active: "failed", Sub: "failed"}, true, false},
		{Sample{At: at(8), Active: "activating", Sub: "auto-restart"}, false, false},
		{Sample{At: at(9), Active: "inactive", Sub: "dead", Job: 9}, false, true},
	}
	for i, step := range steps {
		if got := g.Observe("app.service", step.s); got != step.stopped {
			t.Errorf("step %d (%s/%s): stopped = %v, want %v", i, step.s.Active, step.s.Sub, got, step.stopped)
		}
		h := g.History("app.service")
		if last := h[len(h)-1]; last.At == step.s.At && last.NewJob != step.newJob {
			t.Errorf("step %d: NewJob = %v, want %v", i, last.NewJob, step.newJob)
		}
	}
	if n := len(g.History("app.service")); n != len(steps)-1 {
		t.Errorf("history has %d samples, want %d (the repeat dropped)", n, len(steps)-1)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	g := NewGraph()
	for i := 0; i < 3*historyMaxLen; i++ {
		state := "active"
		if i%2 == 1 {
			state = "inactive"
		}
		g.Observe("flappy.service", Sample{At: at(i), Active: state})
	}
	if n := len(g.History("flappy.service")); n != historyMaxLen {
		t.Errorf("history length %d, want %d", n, historyMaxLen)
	}
	g.Observe("flappy.service", Sample{At: at(0).Add(historyKeep + time.Hour), Active: "failed"})
	if n := len(g.History("flappy.service")); n != 1 {
		t.Errorf("old samples kept: %d", n)
	}
}
