package systemd

import (
	"context"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// The units that run containers are named on them live, from the
// commands' names and the init's cgroup, for containers there at the
// load and for those created after.
func TestLiveUnitAssociation(t *testing.T) {
	proc := t.TempDir()
	writeCgroup(t, proc, 4242, "9:name=systemd:/system.slice/batch.service/"+otherID+"\n")
	writeCgroup(t, proc, 5353, "9:name=systemd:/docker/"+appID+"\n")
	mgr := twoUnits(map[string]any{
		"ExecStart": execProp("/usr/bin/docker", "run", "--rm", "--name", "web", "img"),
		"ExecStop":  execProp("/usr/bin/docker", "stop", "web"),
	})
	mgr.units["batch.service"] = fakeUnit{active: "active", sub: "running",
		typeProps: map[string]any{"ControlGroup": "/system.slice/batch.service"}}
	mgr.units["system.slice"] = fakeUnit{active: "active", sub: "active",
		typeProps: map[string]any{"ControlGroup": "/system.slice"}}
	mgr.units["docker-"+appID+".scope"] = fakeUnit{active: "active", sub: "running",
		typeProps: map[string]any{"ControlGroup": "/system.slice/docker-" + appID + ".scope"}}
	containers := fakeContainers{
		appID: {Meta: tracker.Meta{ID: appID, Name: "web", Pid: 5353}, Running: true},
	}
	r := newRig(t, mgr, containers, proc)
	r.src.associate()
	if u := containers[appID].SystemdUnit; u != "app.service" {
		t.Fatalf("web's unit = %q, want app.service (its ExecStart names it)", u)
	}

	// Created after the load, in batch.service's cgroup (--cgroup-parent).
	containers[otherID] = tracker.View{Meta: tracker.Meta{ID: otherID, Name: "job", Pid: 4242}, Running: true}
	r.src.associate()
	if u := containers[otherID].SystemdUnit; u != "batch.service" {
		t.Fatalf("job's unit = %q, want batch.service (its init runs in its cgroup)", u)
	}

	// A third container nothing owns stays without a unit; a slice and
	// Docker's scope never name one.
	third := strings.Repeat("c3", 32)
	writeCgroup(t, proc, 6464, "9:name=systemd:/system.slice/docker-"+third+".scope\n")
	containers[third] = tracker.View{Meta: tracker.Meta{ID: third, Name: "lone", Pid: 6464}, Running: true}
	r.src.associate()
	if u := containers[third].SystemdUnit; u != "" {
		t.Errorf("lone's unit = %q, want none", u)
	}
}

// A service that comes up after the load is learned at its start.
func TestUnitStartingLaterIsLearned(t *testing.T) {
	mgr := twoUnits(nil)
	containers := fakeContainers{appID: {Meta: tracker.Meta{ID: appID, Name: "late"}, Running: true}}
	r := newRig(t, mgr, containers, t.TempDir())
	mgr.units["late.service"] = fakeUnit{active: "active", sub: "running",
		typeProps: map[string]any{"ExecStart": execProp("/bin/sh", "-c", "exec docker run --name late img")}}
	r.change(t, 1000, "late.service", "activating", "start", 7)
	r.change(t, 1001, "late.service", "active", "running", 0)
	if u := containers[appID].SystemdUnit; u != "late.service" {
		t.Fatalf("unit = %q, want late.service", u)
	}
}

// The stop series of a unit systemd no longer has go after the retention;
// a unit that still exists keeps its series.
func TestStopSeriesOfGoneUnitsExpire(t *testing.T) {
	mgr := twoUnits(nil)
	mgr.units["worker@1.service"] = fakeUnit{active: "active", sub: "running", deps: Deps{PartOf: []string{"front.service"}}}
	r := newRig(t, mgr, fakeContainers{}, t.TempDir())
	r.src.opts.Retention = time.Hour
	r.change(t, 1000, "app.service", "active", "running", 0)
	r.change(t, 1000, "worker@1.service", "active", "running", 0)
	r.change(t, 1001, "front.service", "active", "running", 0)
	r.change(t, 2000, "front.service", "deactivating", "stop-sigterm", 10)
	r.change(t, 2001, "app.service", "deactivating", "stop-sigterm", 11)
	r.change(t, 2002, "worker@1.service", "deactivating", "stop-sigterm", 12)
	r.flush()
	if got := r.src.PartOfStops(); len(got) != 2 {
		t.Fatalf("stops = %v, want app and worker@1", got)
	}
	removed := &godbus.Signal{Name: managerIface + ".UnitRemoved", Body: []any{"worker@1.service", godbus.ObjectPath("/x")}}
	if err := r.src.handle(context.Background(), mgr, removed); err != nil {
		t.Fatal(err)
	}
	r.src.expireStops(at(2002).Add(59 * time.Minute))
	if got := r.src.PartOfStops(); len(got) != 2 {
		t.Fatalf("expired within the retention: %v", got)
	}
	r.src.expireStops(at(2002).Add(61 * time.Minute))
	got := r.src.PartOfStops()
	if len(got) != 1 || got[StopKey{"app.service", "front.service"}] != 1 {
		t.Fatalf("after the retention: %v, want app.service's series alone", got)
	}
}
