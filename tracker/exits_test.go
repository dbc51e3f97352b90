package tracker

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// images lists the images of a name's exit series.
func images(tr *Tracker, name string) map[string]bool {
	byName, _ := tr.ExitSeries()
	out := map[string]bool{}
	for _, s := range byName {
		if s.Name == name {
			out[s.Image] = true
		}
	}
	return out
}

// TestRedeployExpiresOldImages: a live name redeployed ten times with new
// tags keeps only the live tag's set once the retention has run out
// since each old tag last counted.
func TestRedeployExpiresOldImages(t *testing.T) {
	tr, now := newTestTracker()
	for i := range 11 {
		cid := strings.Repeat(fmt.Sprintf("%x", i%16), 64)
		tr.Upsert(Meta{ID: cid, Name: "web", Image: fmt.Sprintf("app:v%d", i)})
		tr.Started(cid, *now)
		tr.ExitSeries() // a scrape sees each deploy live
		*now = now.Add(time.Minute)
		if i < 10 {
			tr.Died(cid, *now, 137)
			tr.Removed(cid, *now)
		}
	}
	if got := images(tr, "web"); len(got) != 11 {
		t.Fatalf("within the retention every tag keeps its set: %v", got)
	}
	*now = now.Add(time.Hour + time.Second)
	got := images(tr, "web")
	if len(got) != 1 || !got["app:v10"] {
		t.Fatalf("a day of redeploys: want only the live tag's set, got %v", got)
	}
	if hostCount(tr, 137) != 10 {
		t.Fatalf("host totals keep every kill: %d", hostCount(tr, 137))
	}
}

// TestLateExitRestartsRetention: an exit counted after its container was
// removed (a --rm container decided after the settle) keeps its set a
// full retention from the count.
func TestLateExitRestartsRetention(t *testing.T) {
	tr, now := newTestTracker()
	tr.Upsert(Meta{ID: id, Name: "job", Image: "batch:1"})
	tr.Started(id, *now)
	tr.Removed(id, *now)
	*now = now.Add(50 * time.Minute)
	tr.exits.count("job", "batch:1", Kube{}, ExitKey{ExitCode: 1, Signal: "", Cause: "none"})
	tr.ExitSeries()
	*now = now.Add(59 * time.Minute)
	if len(images(tr, "job")) != 1 {
		t.Fatal("a set that counted an exit 59 minutes ago was dropped")
	}
	*now = now.Add(2 * time.Minute)
	if len(images(tr, "job")) != 0 {
		t.Fatal("a set with no container and no exit for over an hour kept")
	}
}

// TestRenameKeepsPidAndUnit: an event that names only the container (a
// rename) keeps the run's pid and the unit the systemd source set.
func TestRenameKeepsPidAndUnit(t *testing.T) {
	tr, _ := newTestTracker()
	tr.Upsert(Meta{ID: id, Name: "web", Image: "nginx", Pid: 4242})
	tr.Started(id, t0)
	tr.SetSystemdUnit(id, "web.service")
	tr.Upsert(Meta{ID: id, Name: "web-renamed"})
	v := tr.Views()[id]
	if v.Pid != 4242 || v.SystemdUnit != "web.service" || v.Image != "nginx" || v.Name != "web-renamed" {
		t.Fatalf("after a rename: %+v", v.Meta)
	}
}

// A pod's restarts are new container ids under one name: they add up in
// one set that carries the pod's identity, and so does the saved state.
func TestKubernetesRestartsAddUpUnderTheirName(t *testing.T) {
	tr, now := newTestTracker()
	name := "shop/web-0/app"
	for i, cid := range []string{id, "f" + id[1:]} {
		tr.Upsert(Meta{ID: cid, Name: name, Image: "app:1", Namespace: "shop", Pod: "web-0", PodUID: "u1", Container: "app"})
		tr.Started(cid, now.Add(time.Duration(i)*time.Second))
		tr.Died(cid, now.Add(time.Duration(i)*time.Second+time.Millisecond), 1)
	}
	tr.Wait()
	byName, _ := tr.ExitSeries()
	var n uint64
	for _, s := range byName {
		if s.Name != name || s.Kube != (Kube{Namespace: "shop", Pod: "web-0", Container: "app"}) {
			t.Fatalf("series without the pod's identity: %+v", s)
		}
		n += s.Count
	}
	if n != 2 {
		t.Fatalf("counted %d exits of the pod's container, want 2", n)
	}
}
