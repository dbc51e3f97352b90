package systemd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// fakeManager answers as a systemd manager would, from a table.
type fakeManager struct {
	units map[string]fakeUnit
}

type fakeUnit struct {
	active, sub string
	deps        Deps
	typeProps   map[string]any
}

func (f *fakeManager) ListUnitsContext(context.Context) ([]sdbus.UnitStatus, error) {
	var out []sdbus.UnitStatus
	for name, u := range f.units {
		out = append(out, sdbus.UnitStatus{Name: name, ActiveState: u.active, SubState: u.sub})
	}
	return out, nil
}

func (f *fakeManager) GetUnitPropertiesContext(_ context.Context, unit string) (map[string]any, error) {
	u, ok := f.units[unit]
	if !ok {
		return nil, errors.New("no such unit")
	}
	return map[string]any{"PartOf": u.deps.PartOf, "BindsTo": u.deps.BindsTo,
		"ConsistsOf": u.deps.ConsistsOf, "BoundBy": u.deps.BoundBy}, nil
}

func (f *fakeManager) GetUnitTypePropertiesContext(_ context.Context, unit, _ string) (map[string]any, error) {
	u, ok := f.units[unit]
	if !ok {
		return nil, errors.New("no such unit")
	}
	return u.typeProps, nil
}

type fakeContainers map[string]tracker.View

func (f fakeContainers) IDByName(name string) (string, bool) {
	for id, v := range f {
		if v.Name == name {
			return id, true
		}
	}
	return "", false
}

func (f fakeContainers) Views() map[string]tracker.View { return f }

func (f fakeContainers) SetSystemdUnit(id, unit string) {
	if v, ok := f[id]; ok {
		v.SystemdUnit = unit
		f[id] = v
	}
}

// execProp is an Exec* property as D-Bus delivers it: a(sasbttttuii).
func execProp(argv ...string) [][]any {
	return [][]any{{argv[0], argv, false, uint64(0), uint64(0), uint64(0), uint64(0), uint32(0), int32(0), int32(0)}}
}

// rig is a Source on a fake manager and clock, whose delayed decisions
// run when flush is called.
type rig struct {
	src      *Source
	mgr      *fakeManager
	clock    time.Time
	pending  []func()
	evidence []attribution.Evidence
}

func newRig(t *testing.T, mgr *fakeManager, containers Containers, procRoot string) *rig {
	r := &rig{mgr: mgr, clock: t0}
	sink := sinkFunc(func(e attribution.Evidence) { r.evidence = append(r.evidence, e) })
	r.src = New(Options{Bus: UserBus, ProcRoot: procRoot}, sink, containers, nil, nil)
	r.src.now = func() time.Time { return r.clock }
	r.src.after = func(_ time.Duration, f func()) { r.pending = append(r.pending, f) }
	if err := r.src.load(context.Background(), mgr); err != nil {
		t.Fatal(err)
	}
	return r
}

type sinkFunc func(attribution.Evidence)

func (f sinkFunc) AddEvidence(e attribution.Evidence) { f(e) }

// change delivers a unit's PropertiesChanged at ms after t0.
func (r *rig) change(t *testing.T, ms int, unit, active, sub string, job uint32) {
	t.Helper()
	r.clock = at(ms)
	sig := &godbus.Signal{
		Path: godbus.ObjectPath(unitPrefix + sdbus.PathBusEscape(unit)),
		Name: "org.freedesktop.DBus.Properties.PropertiesChanged",
		Body: []any{unitIface, map[string]godbus.Variant{
			"ActiveState": godbus.MakeVariant(active), "SubState": godbus.MakeVariant(sub),
			"Job": godbus.MakeVariant([]any{job, godbus.ObjectPath("/org/freedesktop/systemd1/job/1")}),
		}, []string{}},
	}
	if err := r.src.handle(context.Background(), r.mgr, sig); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) flush() {
	for _, f := range r.pending {
		f()
	}
	r.pending = nil
}

var (
	appID   = strings.Repeat("a1", 32)
	otherID = strings.Repeat("b2", 32)
)

func twoUnits(appTypeProps map[string]any) *fakeManager {
	return &fakeManager{units: map[string]fakeUnit{
		"front.service": {active: "active", sub: "running", deps: Deps{ConsistsOf: []string{"app.service"}},
			typeProps: map[string]any{"Restart": "on-failure"}},
		"app.service": {active: "active", sub: "running", deps: Deps{PartOf: []string{"front.service"}},
			typeProps: appTypeProps},
	}}
}

// A propagated stop is counted and becomes evidence for the container the
// unit runs, stamped at the stop; a direct stop is neither.
func TestPropagatedStopBecomesEvidence(t *testing.T) {
	mgr := twoUnits(map[string]any{
		"ExecStart": execProp("/usr/bin/docker", "run", "--rm", "--name", "web", "img"),
		"ExecStop":  execProp("/usr/bin/docker", "stop", "-t", "1", "web"),
	})
	containers := fakeContainers{appID: {Meta: tracker.Meta{ID: appID, Name: "web"}, Running: true}}
	r := newRig(t, mgr, containers, t.TempDir())

	r.change(t, 1000, "front.service", "active", "running", 10)
	r.change(t, 1001, "app.service", "active", "running", 11)
	r.change(t, 1002, "front.service", "deactivating", "stop-sigterm", 10)
	r.change(t, 1003, "app.service", "deactivating", "stop-sigterm", 11)
	r.change(t, 1004, "front.service", "inactive", "dead", 0)
	r.flush()

	if got := r.src.PartOfStops(); got[StopKey{"app.service", "front.service"}] != 1 || len(got) != 1 {
		t.Fatalf("stops = %v", got)
	}
	want := attribution.Evidence{Container: appID, Time: at(1003), Source: "systemd", Kind: attribution.KindSystemdPartOf,
		Unit: "app.service", PartOf: "front.service", Detail: "front.service stopped → app.service stopped (PartOf=front.service)"}
	if len(r.evidence) != 1 || r.evidence[0] != want {
		t.Fatalf("evidence = %+v, want %+v", r.evidence, want)
	}

	// Started again, then stopped directly: front stays up.
	r.change(t, 5000, "front.service", "active", "running", 0)
	r.change(t, 5100, "app.service", "active", "running", 0)
	r.change(t, 9000, "app.service", "active", "running", 20)
	r.change(t, 9001, "app.service", "deactivating", "stop-sigterm", 20)
	r.flush()
	if got := r.src.PartOfStops()[StopKey{"app.service", "front.service"}]; got != 1 || len(r.evidence) != 1 {
		t.Errorf("a direct stop was counted: stops %d, evidence %d", got, len(r.evidence))
	}
}

// A container whose init runs in the unit's cgroup belongs to the unit
// even when no command names it.
func TestContainerInTheUnitsCgroup(t *testing.T) {
	proc := t.TempDir()
	writeCgroup(t, proc, 4242, "9:name=systemd:/system.slice/app.service/"+appID+"\n4:memory:/system.slice/app.service/"+appID+"\n")
	writeCgroup(t, proc, 5353, "9:name=systemd:/docker/"+otherID+"\n")
	mgr := twoUnits(map[string]any{
		"ExecStart":    execProp("/usr/bin/docker", "run", "--name", "${NAME}", "img"),
		"ControlGroup": "/system.slice/app.service",
	})
	containers := fakeContainers{
		appID:   {Meta: tracker.Meta{ID: appID, Name: "x", Pid: 4242}, Running: true},
		otherID: {Meta: tracker.Meta{ID: otherID, Name: "y", Pid: 5353}, Running: true},
	}
	r := newRig(t, mgr, containers, proc)
	r.change(t, 1000, "front.service", "failed", "failed", 0)
	r.change(t, 1000, "front.service", "activating", "auto-restart", 0)
	r.change(t, 1100, "front.service", "activating", "auto-restart", 30)
	r.change(t, 1100, "app.service", "active", "running", 31)
	r.change(t, 1101, "app.service", "deactivating", "stop-sigterm", 31)
	r.change(t, 1102, "front.service", "inactive", "dead", 30)
	r.change(t, 1103, "front.service", "active", "running", 0)
	r.flush()
	if len(r.evidence) != 1 || r.evidence[0].Container != appID {
		t.Fatalf("evidence = %+v, want one item for %s", r.evidence, appID)
	}
	if d := r.evidence[0].Detail; d != "front.service restarted (Restart=on-failure after a crash) → app.service stopped (PartOf=front.service)" {
		t.Errorf("detail = %q", d)
	}
}

func writeCgroup(t *testing.T, proc string, pid int, content string) {
	t.Helper()
	dir := filepath.Join(proc, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// daemon-reload changes the graph: the Reloading signal reloads it.
func TestReloadingReloadsTheGraph(t *testing.T) {
	mgr := twoUnits(nil)
	r := newRig(t, mgr, fakeContainers{}, t.TempDir())
	mgr.units["app.service"] = fakeUnit{active: "active", sub: "running", deps: Deps{BindsTo: []string{"db.service"}}}
	mgr.units["db.service"] = fakeUnit{active: "active", sub: "running", deps: Deps{BoundBy: []string{"app.service"}}}
	mgr.units["front.service"] = fakeUnit{active: "active", sub: "running"}
	for _, reloading := range []bool{true, false} {
		sig := &godbus.Signal{Name: managerIface + ".Reloading", Body: []any{reloading}}
		if err := r.src.handle(context.Background(), mgr, sig); err != nil {
			t.Fatal(err)
		}
	}
	r.src.mu.Lock()
	got := r.src.graph.Parents("app.service")
	r.src.mu.Unlock()
	if want := []Edge{{"db.service", BindsTo}}; !slices.Equal(got, want) {
		t.Errorf("after daemon-reload Parents(app) = %v, want %v", got, want)
	}
}

func TestManagerLeavingEndsTheSession(t *testing.T) {
	r := newRig(t, twoUnits(nil), fakeContainers{}, t.TempDir())
	sig := &godbus.Signal{Name: "org.freedesktop.DBus.NameOwnerChanged", Body: []any{managerName, ":1.5", ""}}
	if err := r.src.handle(context.Background(), r.mgr, sig); err == nil {
		t.Error("the manager left the bus and the session went on")
	}
}

func TestUnitName(t *testing.T) {
	for _, name := range []string{"app.service", "docker-0ab1.scope", "user@1000.service", "a-b_c.mount", "9lives.service"} {
		got, ok := unitName(godbus.ObjectPath(unitPrefix + sdbus.PathBusEscape(name)))
		if !ok || got != name {
			t.Errorf("unitName(escape(%q)) = %q, %v", name, got, ok)
		}
	}
	if _, ok := unitName("/org/freedesktop/systemd1/job/5"); ok {
		t.Error("a job path is not a unit")
	}
}

func TestBusAddressNeverAutolaunches(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	if _, err := busAddress(UserBus); err == nil {
		t.Error("no session bus configured, yet an address")
	}
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if a, _ := busAddress(UserBus); a != "unix:path=/run/user/1000/bus" {
		t.Errorf("user bus = %q", a)
	}
	if _, err := busAddress("session"); err == nil {
		t.Error("an unknown bus was accepted")
	}
}

func TestRunWithNoBusStaysDownAndReturnsOnCancel(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "absent"))
	src := New(Options{Bus: UserBus}, sinkFunc(func(attribution.Evidence) {}), fakeContainers{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for src.health.Errors() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if src.health.Up() || src.health.Errors() == 0 {
		t.Errorf("up %v, errors %d: want down with an error counted", src.health.Up(), src.health.Errors())
	}
	cancel()
	<-done
}
