package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// cascade is one PartOf=/BindsTo= scenario on a real systemd user manager:
// front (a sleep) and app (a container that ignores SIGTERM, stopped by
// `docker stop -t 1`), each pair with names of its own.
type cascade struct {
	name     string
	relation string // PartOf or BindsTo
	restart  string // front's Restart=
	act      func(t *testing.T, m *testrig.SystemdUser, front, app string)
	cause    attribution.Cause
	// detail is the systemd evidence's sentence, with FRONT and APP for
	// the unit names; empty when no stop propagated.
	detail string
}

func TestSystemdCascades(t *testing.T) {
	testrig.Docker(t)
	m := testrig.StartSystemdUser(t)
	m.Setenv(t)
	e := testrig.StartExporter(t, append(fastSettle, "--systemd.bus=user")...)
	e.WaitFor(t, 30*time.Second, "systemd source up", systemdUp(1))
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal(err)
	}

	cases := []cascade{
		{name: "stop", relation: "PartOf", cause: attribution.CauseSystemdPartOf,
			act:    func(t *testing.T, m *testrig.SystemdUser, front, _ string) { m.Systemctl(t, "stop", front) },
			detail: "FRONT stopped → APP stopped (PartOf=FRONT)"},
		{name: "restart", relation: "PartOf", cause: attribution.CauseSystemdPartOf,
			act:    func(t *testing.T, m *testrig.SystemdUser, front, _ string) { m.Systemctl(t, "restart", front) },
			detail: "FRONT restarted → APP stopped (PartOf=FRONT)"},
		{name: "crash", relation: "PartOf", restart: "on-failure", cause: attribution.CauseSystemdPartOf,
			act:    crash,
			detail: "FRONT restarted (Restart=on-failure after a crash) → APP stopped (PartOf=FRONT)"},
		{name: "bindsto", relation: "BindsTo", cause: attribution.CauseSystemdPartOf,
			act:    crash,
			detail: "FRONT failed → APP stopped (BindsTo=FRONT)"},
		{name: "direct", relation: "PartOf", cause: attribution.CauseManual,
			act: func(t *testing.T, m *testrig.SystemdUser, _, app string) { m.Systemctl(t, "stop", app) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := testrig.UniqueName(t, tc.name)
			front, app, container := id+"-front.service", id+"-app.service", id
			restart := ""
			if tc.restart != "" {
				restart = "Restart=" + tc.restart + "\n"
			}
			m.WriteUnit(t, front, "[Service]\nExecStart=/bin/sleep infinity\n"+restart)
			m.WriteUnit(t, app, fmt.Sprintf(`[Unit]
%[1]s=%[2]s
[Service]
ExecStartPre=-%[3]s rm -f %[4]s
ExecStart=%[3]s run --rm --name %[4]s --label %[5]s --network none %[6]s -ignore-term
ExecStop=%[3]s stop -t 1 %[4]s
`, tc.relation, front, docker, container, testrig.OwnLabel, testrig.HelperImage))
			m.Systemctl(t, "start", front, app)
			e.WaitFor(t, 30*time.Second, container+" running", func(m testrig.Metrics) bool {
				_, ok := m.Value("exit137_container_info", map[string]string{"name": container})
				return ok
			})
			testrig.WaitSigtermSet(t, container)

			tc.act(t, m, front, app)
			e.WaitFor(t, 30*time.Second, container+"'s exit counted", func(m testrig.Metrics) bool {
				return m.Sum("exit137_container_exits_total", exitsOf(container)) >= 1
			})
			time.Sleep(time.Second) // a second count, or a late stop, would show by now
			metrics := e.Scrape(t)
			if got := metrics.Sum("exit137_container_exits_total", exitsOf(container)); got != 1 {
				t.Errorf("%v exits counted, want 1: %v", got, metrics.Series("exit137_container_exits_total", exitsOf(container)))
			}
			if got := metrics.Sum("exit137_container_exits_total", exitsOf(container, "exit_code", "137", "cause", string(tc.cause))); got != 1 {
				t.Errorf("want one exit 137 with cause %s: %v", tc.cause, metrics.Series("exit137_container_exits_total", exitsOf(container)))
			}
			wantStops := 0.0
			if tc.detail != "" {
				wantStops = 1
			}
			if got := metrics.Sum("exit137_systemd_partof_stops_total", map[string]string{"unit": app}); got != wantStops {
				t.Errorf("partof stops of %s = %v, want %v: %v", app, got, wantStops, metrics.Series("exit137_systemd_partof_stops_total", nil))
			}
			checkExplain(t, e, container, tc.cause, strings.NewReplacer("FRONT", front, "APP", app).Replace(tc.detail))
			if t.Failed() {
				t.Logf("systemd:\n%s", m.Logs())
			}
		})
	}
}

// crash kills front's process with SIGKILL: a crash, not a stop.
func crash(t *testing.T, m *testrig.SystemdUser, front, _ string) {
	m.Systemctl(t, "kill", "--signal=KILL", front)
}

// checkExplain reads the container's verdict from /explain: its cause and,
// for a propagated stop, the systemd evidence that decided it over the
// docker stop and kills that the unit's ExecStop caused.
func checkExplain(t *testing.T, e *testrig.Exporter, container string, cause attribution.Cause, detail string) {
	t.Helper()
	var body struct{ Verdicts []attribution.Verdict }
	if err := json.Unmarshal([]byte(e.Get(t, "/explain?container="+container)), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Verdicts) != 1 {
		t.Fatalf("/explain has %d verdicts for %s, want 1", len(body.Verdicts), container)
	}
	v := body.Verdicts[0]
	if v.Cause != cause {
		t.Errorf("/explain cause %s, want %s: %s", v.Cause, cause, v.Summary)
	}
	kinds := map[attribution.Kind]bool{}
	var systemd *attribution.Cited
	for i, c := range v.Evidence {
		kinds[c.Kind] = true
		if c.Kind == attribution.KindSystemdPartOf {
			systemd = &v.Evidence[i]
		}
	}
	if !kinds[attribution.KindDockerStop] && !kinds[attribution.KindDockerKill] {
		t.Errorf("no docker stop/kill evidence: %+v", v.Evidence)
	}
	switch {
	case detail == "" && systemd != nil:
		t.Errorf("systemd evidence for a stop that did not propagate: %+v", systemd)
	case detail == "":
	case systemd == nil:
		t.Errorf("no systemd evidence in %+v", v.Evidence)
	default:
		if systemd.Detail != detail || !systemd.Decisive || systemd.Offset >= 0 {
			t.Errorf("systemd evidence %q (decisive %v, %v from the exit), want %q, decisive, before the exit",
				systemd.Detail, systemd.Decisive, systemd.Offset, detail)
		}
		if !strings.Contains(v.Summary, "systemd carrying it out") {
			t.Errorf("summary does not say the docker stop was systemd's: %s", v.Summary)
		}
	}
}

// A unit that runs no container is counted too, and nothing else moves;
// an edge added by daemon-reload to a running unit is followed.
func TestSystemdCascadeWithoutContainer(t *testing.T) {
	m := testrig.StartSystemdUser(t)
	m.Setenv(t)
	e := testrig.StartExporter(t, "--docker.disable", "--systemd.bus=user")
	e.WaitFor(t, 30*time.Second, "systemd source up", systemdUp(1))
	front, other := "e137-front.service", "e137-other.service"
	m.WriteUnit(t, front, "[Service]\nExecStart=/bin/sleep infinity\n")
	m.WriteUnit(t, other, "[Service]\nExecStart=/bin/sleep infinity\n")
	m.Systemctl(t, "start", front, other)
	m.WriteUnit(t, other, "[Unit]\nPartOf="+front+"\n[Service]\nExecStart=/bin/sleep infinity\n")
	before := e.Scrape(t)

	m.Systemctl(t, "stop", front)
	stops := map[string]string{"unit": other, "partof": front}
	e.WaitFor(t, 10*time.Second, "the propagated stop counted", func(m testrig.Metrics) bool {
		return m.Sum("exit137_systemd_partof_stops_total", stops) >= 1
	})
	time.Sleep(time.Second)
	after := e.Scrape(t)
	if got := after.Sum("exit137_systemd_partof_stops_total", nil); got != 1 {
		t.Errorf("partof stops = %v, want exactly 1: %v", got, after.Series("exit137_systemd_partof_stops_total", nil))
	}
	for _, name := range []string{"exit137_exits_total", "exit137_container_exits_total"} {
		if b, a := before.Sum(name, nil), after.Sum(name, nil); a != b {
			t.Errorf("%s moved from %v to %v", name, b, a)
		}
	}
}

// The manager goes away and comes back: the source is down meanwhile,
// the exporter goes on, and it follows the new manager.
func TestSystemdManagerRestart(t *testing.T) {
	m := testrig.StartSystemdUser(t)
	m.Setenv(t)
	e := testrig.StartExporter(t, "--docker.disable", "--systemd.bus=user")
	e.WaitFor(t, 30*time.Second, "systemd source up", systemdUp(1))

	m.StopManager()
	e.WaitFor(t, 30*time.Second, "systemd source down", systemdUp(0))
	m.StartManager(t)
	e.WaitFor(t, 60*time.Second, "systemd source up again", systemdUp(1))

	front, child := "e137-front.service", "e137-child.service"
	m.WriteUnit(t, front, "[Service]\nExecStart=/bin/sleep infinity\n")
	m.WriteUnit(t, child, "[Unit]\nBindsTo="+front+"\n[Service]\nExecStart=/bin/sleep infinity\n")
	m.Systemctl(t, "start", front, child)
	m.Systemctl(t, "restart", front)
	e.WaitFor(t, 10*time.Second, "the propagated stop counted after the reconnect", func(m testrig.Metrics) bool {
		return m.Sum("exit137_systemd_partof_stops_total", map[string]string{"unit": child, "partof": front}) == 1
	})
	if errs := e.Scrape(t).Sum("exit137_source_errors_total", map[string]string{"source": "systemd"}); errs < 1 {
		t.Errorf("the lost manager was not counted as an error")
	}
}

func systemdUp(want float64) func(testrig.Metrics) bool {
	return func(m testrig.Metrics) bool {
		v, ok := m.Value("exit137_source_up", map[string]string{"source": "systemd"})
		return ok && v == want
	}
}
