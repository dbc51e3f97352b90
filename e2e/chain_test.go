package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// TestChain proves the whole path a user installs: the exporter scraped
// every second by Prometheus with the shipped rules, alerting the shipped
// Alertmanager. A real OOM kill must reach Alertmanager as the OOM alert,
// a docker kill as the manual alert (and not as OOM), and every dashboard
// panel must find data in that Prometheus.
func TestChain(t *testing.T) {
	testrig.Docker(t)
	c := testrig.StartChain(t, fastSettle...)
	s := c.Play(t)

	want := map[string]struct{ alert, cause string }{
		s.OOM.Name:    {testrig.OOMAlert, "oom"},
		s.Manual.Name: {testrig.ManualAlert, "manual"},
	}
	for name, w := range want {
		a := c.WaitAlert(t, time.Minute, map[string]string{"alertname": w.alert, "name": name})
		t.Logf("alert: %s", a)
		for label, v := range map[string]string{"cause": w.cause, "exit_code": "137", "signal": "SIGKILL", "image": testrig.HelperImage, "job": testrig.ChainJob} {
			if a.Labels[label] != v {
				t.Errorf("%s: label %s = %q, want %q (labels %v)", w.alert, label, a.Labels[label], v, a.Labels)
			}
		}
		if a.Status.State != "active" {
			t.Errorf("%s is %q in Alertmanager, want active", w.alert, a.Status.State)
		}
		if !strings.Contains(a.Annotations["description"], name) || !strings.Contains(a.Annotations["description"], w.cause) {
			t.Errorf("%s: description does not name %s and cause %s: %q", w.alert, name, w.cause, a.Annotations["description"])
		}
		if out := c.Explain(t, name); !regexp.MustCompile(`(?m)^\s+cause\s+` + w.cause + `( \(|$)`).MatchString(out) {
			t.Errorf("explain %s does not say cause %s:\n%s", name, w.cause, out)
		}
	}
	// A wrong alert would come from the same rule evaluations as the right
	// one; a few more evaluations make sure none is on its way.
	time.Sleep(3 * time.Second)
	for _, a := range c.Alerts(t) {
		name := a.Labels["name"]
		if w, ours := want[name]; ours && a.Labels["alertname"] != w.alert {
			t.Errorf("%s (cause %s) raised %s too", name, w.cause, a)
		}
		if name == s.Steady.Name {
			t.Errorf("the steady container raised %s", a)
		}
	}

	checkDashboards(t, c)
}

// panelsWithoutData are the dashboard panels that legitimately find no
// series in TestChain's scenario, with the reason. A listed panel that
// does find data fails the test: the list must not hide a working panel.
var panelsWithoutData = map[string]string{
	"exit137-overview/systemd propagated stops":                "no systemd unit stops a container in this scenario",
	"exit137-overview/Probe kills":                             "no Kubernetes pod on the chain's Docker host",
	"exit137-overview/Evicted pods by node":                    "no Kubernetes pod on the chain's Docker host",
	"exit137-overview/Kubernetes kills in the last 10 minutes": "no Kubernetes pod on the chain's Docker host",
}

// dashboard is the part of a dashboard's JSON model the check reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			IncludeAll bool   `json:"includeAll"`
			AllValue   string `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // of a collapsed row
	Targets []struct {
		Expr    string `json:"expr"`
		Instant bool   `json:"instant"`
		Range   bool   `json:"range"`
	} `json:"targets"`
}

// checkDashboards runs every query of every shipped dashboard against the
// chain's Prometheus as Grafana would with every variable at All: each
// variable's label_values() must find values, and each panel must find a
// series over the chain's lifetime unless panelsWithoutData lists it.
func checkDashboards(t *testing.T, c *testrig.Chain) {
	files, err := filepath.Glob(filepath.Join(testrig.RepoRoot(), "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	checked := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vars := dashboardVars(t, c, d)
		var walk func([]panel)
		walk = func(panels []panel) {
			for _, p := range panels {
				walk(p.Panels)
				if len(p.Targets) == 0 {
					continue
				}
				key := d.UID + "/" + p.Title
				checked[key] = true
				series := 0
				for _, target := range p.Targets {
					series += len(panelQuery(t, c, key, vars.Replace(target.Expr), target.Instant && !target.Range))
				}
				reason, exempt := panelsWithoutData[key]
				switch {
				case series == 0 && !exempt:
					t.Errorf("panel %s finds no series", key)
				case series > 0 && exempt:
					t.Errorf("panel %s has data now, but panelsWithoutData says %q: remove it from the list", key, reason)
				}
			}
		}
		walk(d.Panels)
	}
	t.Logf("dashboards: %d panels queried, %d of them exempt from having data", len(checked), len(panelsWithoutData))
	for key := range panelsWithoutData {
		if !checked[key] {
			t.Errorf("panelsWithoutData lists %s, which no dashboard has", key)
		}
	}
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// dashboardVars resolves the dashboard's query variables in order, as
// Grafana does with All selected: allValue when set, else every value.
func dashboardVars(t *testing.T, c *testrig.Chain, d dashboard) *strings.Replacer {
	pairs := []string{"$__rate_interval", "1m", "${__rate_interval}", "1m"} // Grafana's built-ins
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue // the datasource variable: only in datasource refs
		}
		query, _ := v.Query.(string)
		m := labelValues.FindStringSubmatch(strings.NewReplacer(pairs...).Replace(query))
		if m == nil {
			t.Fatalf("%s: variable %s: cannot run query %v (only label_values(selector, label))", d.UID, v.Name, v.Query)
		}
		var values []string
		c.PromData(t, "/api/v1/label/"+m[2]+"/values", url.Values{
			"match[]": {m[1]}, "start": {unixTime(c.Started)}, "end": {unixTime(time.Now())},
		}, &values)
		// A variable whose All is .* also matches the empty label (the
		// Kubernetes ones on a Docker host): it may find no value.
		if len(values) == 0 && !(v.IncludeAll && v.AllValue == ".*") {
			t.Errorf("%s: variable %s finds no values with %s", d.UID, v.Name, m[0])
		}
		value := v.AllValue
		if !v.IncludeAll || value == "" {
			for i := range values {
				values[i] = regexp.QuoteMeta(values[i])
			}
			value = "(" + strings.Join(values, "|") + ")"
		}
		pairs = append(pairs, "${"+v.Name+"}", value, "$"+v.Name, value)
	}
	return strings.NewReplacer(pairs...)
}

// panelQuery runs a panel's query (instant now, or over the chain's
// lifetime) and returns its series.
func panelQuery(t *testing.T, c *testrig.Chain, panel, expr string, instant bool) []testrig.Sample {
	if strings.Contains(expr, "$") {
		t.Fatalf("panel %s: a variable the check does not know is left in %s", panel, expr)
	}
	var data struct {
		Result []testrig.Sample `json:"result"`
	}
	if instant {
		c.PromData(t, "/api/v1/query", url.Values{"query": {expr}}, &data)
	} else {
		c.PromData(t, "/api/v1/query_range", url.Values{
			"query": {expr}, "start": {unixTime(c.Started)}, "end": {unixTime(time.Now())}, "step": {"1"},
		}, &data)
	}
	return data.Result
}

func unixTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// TestDemo runs scripts/demo as a newcomer would, bounded by the three
// minutes it promises, and checks that it prints both verdicts and both
// alerts and leaves none of its containers behind. It takes the daemon's
// test lock itself, so this test must not.
func TestDemo(t *testing.T) {
	if _, err := testrig.Try("docker", "info"); err != nil {
		testrig.Need(t, "no Docker daemon answers: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(testrig.RepoRoot(), "scripts", "demo"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // go run and the demo it starts
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("scripts/demo did not finish by itself within 3 minutes:\n%s", out)
	}
	if err != nil {
		t.Fatalf("scripts/demo: %v\n%s", err, out)
	}
	for _, want := range []string{`(?m)^\s+cause\s+oom( \(|$)`, `(?m)^\s+cause\s+manual( \(|$)`,
		`Exit137ContainerOOMKilled\{name=e137-oom-\w+,cause=oom`, `Exit137ContainerKilledManually\{name=e137-manual-\w+,cause=manual`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("the demo's output does not match %s:\n%s", want, out)
		}
	}
	for _, name := range regexp.MustCompile(`e137-\w+-[0-9a-f]{8}`).FindAll(out, -1) {
		if _, err := testrig.Try("docker", "inspect", string(name)); err == nil {
			t.Errorf("the demo left container %s behind", name)
		}
	}
}
