package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestGeneratedFilesUpToDate regenerates the dashboards in memory and fails
// when the committed JSON differs.
func TestGeneratedFilesUpToDate(t *testing.T) {
	files, err := Files(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sortedKeys(files) {
		committed, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v; run go generate ./dashboards", name, err)
			continue
		}
		if !bytes.Equal(committed, files[name]) {
			t.Errorf("dashboards/%s differs from what the code generates; run go generate ./dashboards\n%s",
				name, firstDifference(committed, files[name]))
		}
	}
}

// TestStrictRoundTrip decodes the committed JSON with the SDK's strict
// decoder: no unknown or mistyped field.
func TestStrictRoundTrip(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, name := range []string{"overview.json", "container.json"} {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard.Dashboard
		// UnmarshalJSONStrict returns a typed nil cog.BuildErrors on success.
		if err := d.UnmarshalJSONStrict(raw); err != nil {
			var be cog.BuildErrors
			if !errors.As(err, &be) || len(be) > 0 {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}

var (
	uidRE        = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	validUnits   = map[string]bool{"bytes": true, "percentunit": true, "ops": true, "short": true, "none": true, "s": true, "dateTimeAsIso": true}
	rangeFuncs   = map[string]bool{"rate": true, "irate": true, "increase": true}
	labelValues  = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	rateSentinel = 7777 * time.Second
)

// TestLint checks the committed dashboards by the project's conventions
// (a Go port of the grafana/dashboard-linter rules we follow, plus ours).
func TestLint(t *testing.T) {
	cfg := DefaultConfig()
	others := map[string]string{"overview.json": cfg.ContainerUID(), "container.json": cfg.OverviewUID()}
	for _, name := range []string{"overview.json", "container.json"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			var d map[string]any
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			for _, p := range lintDashboard(d, others[name]) {
				t.Error(p)
			}
		})
	}
}

// TestLintCatchesProblems makes sure the lint is not vacuous.
func TestLintCatchesProblems(t *testing.T) {
	bad := map[string]any{
		"uid": "Bad_UID", "title": "x", "editable": true, "timezone": "browser", "tags": []any{},
		"schemaVersion": 30.0, "__inputs": []any{},
		"templating": map[string]any{"list": []any{}},
		"panels": []any{map[string]any{
			"id": 1.0, "type": "timeseries", "title": "t",
			"datasource":  map[string]any{"uid": "prom"},
			"fieldConfig": map[string]any{"defaults": map[string]any{"unit": "percentunit"}},
			"targets": []any{map[string]any{"refId": "A", "datasource": map[string]any{"uid": "${datasource}"},
				"expr": `rate(exit137_exits_total{job=~"$job"}[5m]) + exit137_container_oom_kills_total{job=~"$job", instance=~"$instance"}`}},
		}},
	}
	problems := strings.Join(lintDashboard(bad, "other"), "\n")
	for _, want := range []string{"uid", "editable", "timezone", "tags", "schemaVersion", "__inputs",
		"datasource variable", "variable job", "link", "description", "panel datasource", "thresholds",
		"$__rate_interval", "outside rate", "instance"} {
		if !strings.Contains(problems, want) {
			t.Errorf("lint did not report %q; got:\n%s", want, problems)
		}
	}
}

// TestConfig checks that the configuration reaches the JSON.
func TestConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.JobSelector = `job=~"exit137|containers"`
	cfg.UIDPrefix = "acme-exit137"
	cfg.Tags = []string{"acme"}
	files, err := Files(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		s := string(b)
		for _, want := range []string{`label_values(exit137_build_info{job=~\"exit137|containers\"}, job)`, `"acme"`, `"uid": "acme-exit137-`} {
			if !strings.Contains(s, want) {
				t.Errorf("%s: no %s", name, want)
			}
		}
	}
}

func lintDashboard(d map[string]any, otherUID string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	uid, _ := d["uid"].(string)
	if !uidRE.MatchString(uid) {
		bad("uid %q: want [a-z0-9-], at most 40 characters", uid)
	}
	if title, _ := d["title"].(string); title == "" {
		bad("no title")
	}
	if d["editable"] != false {
		bad("editable must be false")
	}
	if d["timezone"] != "utc" {
		bad("timezone %v: want utc", d["timezone"])
	}
	if tags, _ := d["tags"].([]any); len(tags) == 0 {
		bad("no tags")
	}
	if v, _ := d["schemaVersion"].(float64); int(v) != int(dashboard.NewDashboard().SchemaVersion) {
		bad("schemaVersion %v: want the current %d", d["schemaVersion"], dashboard.NewDashboard().SchemaVersion)
	}
	for _, key := range []string{"__inputs", "__requires", "__elements"} {
		if _, ok := d[key]; ok {
			bad("%s present: file provisioning cannot resolve it", key)
		}
	}

	// Variables.
	vars := map[string]map[string]any{}
	datasources := 0
	templating, _ := d["templating"].(map[string]any)
	list, _ := templating["list"].([]any)
	for _, v := range list {
		v := v.(map[string]any)
		name, _ := v["name"].(string)
		vars[name] = v
		switch v["type"] {
		case "datasource":
			datasources++
			if name != "datasource" || v["label"] != "Data source" || v["query"] != "prometheus" {
				bad("datasource variable %q: want name datasource, label \"Data source\", query prometheus", name)
			}
		case "query":
			if dsUID(v["datasource"]) != "${datasource}" {
				bad("variable %s: datasource must be ${datasource}", name)
			}
			if v["refresh"] != 2.0 {
				bad("variable %s: refresh must be 2 (on time range change)", name)
			}
			query, _ := v["query"].(string)
			m := labelValues.FindStringSubmatch(query)
			if m == nil {
				bad("variable %s: query %q is not label_values(selector, label)", name, query)
			} else if _, err := parser.ParseExpr(m[1]); err != nil {
				bad("variable %s: %v", name, err)
			}
		}
	}
	if datasources != 1 {
		bad("want exactly one datasource variable, got %d", datasources)
	}
	// The Kubernetes labels are empty on other containers: their "All"
	// must match the empty value too.
	for name, allValue := range map[string]string{
		"job": "", "instance": ".+", "name": ".+", "namespace": ".*", "pod": ".*", "container": ".*",
	} {
		v, ok := vars[name]
		if !ok {
			bad("no variable %s", name)
			continue
		}
		if v["type"] != "query" || v["multi"] != true || v["includeAll"] != true {
			bad("variable %s: want a multi-value query variable with All", name)
		}
		if got, _ := v["allValue"].(string); got != allValue {
			bad("variable %s: allValue %q, want %q", name, got, allValue)
		}
	}

	// Links to the other dashboard.
	linked := false
	links, _ := d["links"].([]any)
	for _, l := range links {
		if url, _ := l.(map[string]any)["url"].(string); strings.Contains(url, "/d/"+otherUID) {
			linked = true
		}
	}
	if !linked {
		bad("no link to dashboard %s", otherUID)
	}

	// Panels.
	ids := map[float64]bool{}
	for _, p := range allPanels(d) {
		id, _ := p["id"].(float64)
		title, _ := p["title"].(string)
		where := fmt.Sprintf("panel %v %q", id, title)
		if id == 0 || ids[id] {
			bad("%s: missing or duplicate id", where)
		}
		ids[id] = true
		if p["type"] == "row" {
			continue
		}
		if title == "" {
			bad("%s: no title", where)
		}
		if desc, _ := p["description"].(string); desc == "" {
			bad("%s: no description", where)
		}
		if dsUID(p["datasource"]) != "${datasource}" {
			bad("%s: panel datasource must be ${datasource}", where)
		}
		defaults := dig(p, "fieldConfig", "defaults")
		unit, _ := defaults["unit"].(string)
		if !validUnits[unit] {
			bad("%s: unit %q is not one of %v", where, unit, sortedKeys(validUnits))
		}
		if unit == "percentunit" && !hasSteps(defaults, DefaultConfig().WarningRatio, DefaultConfig().CriticalRatio) {
			bad("%s: ratio panel needs thresholds at %v and %v", where, DefaultConfig().WarningRatio, DefaultConfig().CriticalRatio)
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			bad("%s: no targets", where)
		}
		refIDs := map[string]bool{}
		for _, tg := range targets {
			tg := tg.(map[string]any)
			ref, _ := tg["refId"].(string)
			if ref == "" || refIDs[ref] {
				bad("%s: missing or duplicate refId %q", where, ref)
			}
			refIDs[ref] = true
			if dsUID(tg["datasource"]) != "${datasource}" {
				bad("%s: target %s: datasource must be ${datasource}", where, ref)
			}
			expr, _ := tg["expr"].(string)
			for _, msg := range lintExpr(expr) {
				bad("%s: target %s: %s", where, ref, msg)
			}
		}
	}
	return problems
}

// lintExpr checks one PromQL query: it parses; every range is
// $__rate_interval; every counter is inside rate/irate/increase; every
// selector has the job and instance matchers of the variables.
func lintExpr(expr string) []string {
	var problems []string
	if strings.TrimSpace(expr) == "" {
		return []string{"empty expr"}
	}
	e, err := parser.ParseExpr(strings.ReplaceAll(expr, "$__rate_interval", rateSentinel.String()))
	if err != nil {
		return []string{fmt.Sprintf("%q does not parse: %v", expr, err)}
	}
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		switch n := n.(type) {
		case *parser.MatrixSelector:
			if n.Range != rateSentinel {
				problems = append(problems, fmt.Sprintf("range [%s] in %q: use [$__rate_interval]", n.Range, expr))
			}
		case *parser.VectorSelector:
			if strings.HasSuffix(n.Name, "_total") && !inRangeFunc(path) {
				problems = append(problems, fmt.Sprintf("counter %s outside rate/irate/increase in %q", n.Name, expr))
			}
			for _, want := range []string{"job", "instance"} {
				if !hasVarMatcher(n, want) {
					problems = append(problems, fmt.Sprintf("selector %s has no %s=~\"$%s\" matcher in %q", n.String(), want, want, expr))
				}
			}
		}
		return nil
	})
	return problems
}

func inRangeFunc(path []parser.Node) bool {
	if len(path) < 2 {
		return false
	}
	if _, ok := path[len(path)-1].(*parser.MatrixSelector); !ok {
		return false
	}
	for i := len(path) - 2; i >= 0; i-- {
		switch p := path[i].(type) {
		case *parser.Call:
			return rangeFuncs[p.Func.Name]
		case parser.Expressions:
			continue
		default:
			return false
		}
	}
	return false
}

func hasVarMatcher(vs *parser.VectorSelector, label string) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == label && m.Value == "$"+label {
			return true
		}
	}
	return false
}

func hasSteps(defaults map[string]any, want ...float64) bool {
	steps, _ := dig(defaults, "thresholds")["steps"].([]any)
	found := map[float64]bool{}
	for _, s := range steps {
		if v, ok := s.(map[string]any)["value"].(float64); ok {
			found[v] = true
		}
	}
	for _, w := range want {
		if !found[w] {
			return false
		}
	}
	return true
}

func allPanels(d map[string]any) []map[string]any {
	var out []map[string]any
	var walk func([]any)
	walk = func(ps []any) {
		for _, p := range ps {
			p := p.(map[string]any)
			out = append(out, p)
			if nested, ok := p["panels"].([]any); ok {
				walk(nested)
			}
		}
	}
	ps, _ := d["panels"].([]any)
	walk(ps)
	return out
}

func dig(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m, _ = m[k].(map[string]any)
	}
	return m
}

func dsUID(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["uid"].(string)
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func firstDifference(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("first difference at line %d:\n- committed: %s\n+ generated: %s", i+1, x, y)
		}
	}
	return "files differ"
}
