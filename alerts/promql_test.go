package alerts

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// metricsFileEnv overrides the path of the exporter's golden /metrics output.
const metricsFileEnv = "EXIT137_METRICS_FILE"

// defaultMetricsFile is the golden /metrics output of the end-to-end test.
var defaultMetricsFile = filepath.Join("..", "testdata", "e2e-output.prom")

// schema is, for every known metric, the labels its series may have.
type schema map[string]map[string]bool

// targetLabels are attached by Prometheus to every scraped series.
var targetLabels = []string{"job", "instance"}

// exposedSchema reads the exporter's golden /metrics output (Prometheus
// text format) and adds what Prometheus itself provides: the target labels,
// up, and ALERTS.
func exposedSchema(t *testing.T) schema {
	t.Helper()
	path := defaultMetricsFile
	if p := os.Getenv(metricsFileEnv); p != "" {
		path = p
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("exporter metrics: %v", err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s := schema{}
	add := func(name string, labels ...string) {
		if s[name] == nil {
			s[name] = map[string]bool{}
			for _, l := range targetLabels {
				s[name][l] = true
			}
		}
		for _, l := range labels {
			s[name][l] = true
		}
	}
	for name, mf := range families {
		var labels []string
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName())
			}
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			add(name+"_bucket", append(labels, "le")...)
			add(name+"_sum", labels...)
			add(name+"_count", labels...)
		case dto.MetricType_SUMMARY:
			add(name, append(labels, "quantile")...)
			add(name+"_sum", labels...)
			add(name+"_count", labels...)
		default:
			add(name, labels...)
		}
	}
	if len(s) == 0 {
		t.Fatalf("%s: no metrics", path)
	}
	add("up")
	add("ALERTS", "alertname", "alertstate", "severity")
	return s
}

// TestExpressionsUseExposedMetrics parses every PromQL expression of the
// rules and of both dashboards and fails when one names a metric or a label
// the exporter does not expose. Recording-rule outputs are known metrics for
// the alerts after them and for the dashboards.
func TestExpressionsUseExposedMetrics(t *testing.T) {
	s := exposedSchema(t)
	rf := loadRules(t)

	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			labels, problems := checkExpr(r.Expr, s)
			for _, p := range problems {
				t.Errorf("%s %s: %s", g.Name, name, p)
			}
			if r.Record != "" {
				s[r.Record] = labels
				continue
			}
			for k := range r.Labels {
				labels[k] = true
			}
			for key, text := range r.Annotations {
				for _, l := range templateLabels(text) {
					if !labels[l] {
						t.Errorf("%s %s: annotation %s uses $labels.%s, which the expression cannot have", g.Name, name, key, l)
					}
				}
			}
		}
	}

	for _, file := range dashboardFiles(t) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboardJSON
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		exprs := 0
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			exprs++
			query, _ := v.Query.(string)
			for _, p := range checkLabelValues(query, s) {
				t.Errorf("%s: variable %s: %s", filepath.Base(file), v.Name, p)
			}
		}
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				exprs++
				labels, problems := checkExpr(grafanaToPromQL(tg.Expr), s)
				for _, pr := range problems {
					t.Errorf("%s: panel %q target %s: %s", filepath.Base(file), p.Title, tg.RefID, pr)
				}
				for _, l := range legendLabels(tg.LegendFormat) {
					if !labels[l] {
						t.Errorf("%s: panel %q target %s: legend uses {{%s}}, which the query cannot have", filepath.Base(file), p.Title, tg.RefID, l)
					}
				}
			}
		}
		if exprs == 0 {
			t.Errorf("%s: no expressions found", file)
		}
	}
}

// TestCheckExprCatchesUnknowns makes sure the check is not vacuous.
func TestCheckExprCatchesUnknowns(t *testing.T) {
	s := schema{
		"exit137_container_memory_usage_bytes": {"job": true, "instance": true, "id": true, "name": true, "image": true},
	}
	for expr, want := range map[string]string{
		`exit137_container_memory_usage_bytes{container="api"}`:                                `label "container"`,
		`exit137_container_memory_bytes`:                                                       `metric "exit137_container_memory_bytes"`,
		`sum by (pod) (exit137_container_memory_usage_bytes)`:                                  `label "pod"`,
		`exit137_container_memory_usage_bytes / on (pod) exit137_container_memory_usage_bytes`: `label "pod"`,
		`{job="exit137"}`: "no metric name",
		`rate(exit137_container_memory_usage_bytes[5m]`: "parse",
	} {
		_, problems := checkExpr(expr, s)
		if !strings.Contains(strings.Join(problems, "\n"), want) {
			t.Errorf("checkExpr(%q) = %q, want a problem mentioning %q", expr, problems, want)
		}
	}
	if _, problems := checkExpr(`label_replace(exit137_container_memory_usage_bytes, "c", "$1", "name", "(.*)")`, s); len(problems) > 0 {
		t.Errorf("label_replace: %v", problems)
	}
	if p := checkLabelValues(`label_values(exit137_container_memory_usage_bytes{job=~"$job"}, container)`, s); len(p) == 0 {
		t.Error("label_values with an unknown label passed")
	}
}

// checkExpr parses expr and reports metrics and labels not in s. It returns
// the labels the expression's series may carry, approximated from above:
// the union over its selectors, plus labels that label_replace/label_join
// create.
func checkExpr(expr string, s schema) (map[string]bool, []string) {
	labels := map[string]bool{}
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return labels, []string{fmt.Sprintf("does not parse: %v", err)}
	}
	var problems []string
	var grouping []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := n.Name
			for _, m := range n.LabelMatchers {
				if m.Name == model.MetricNameLabel && name == "" {
					name = m.Value
				}
			}
			if name == "" {
				problems = append(problems, fmt.Sprintf("selector %s has no metric name", n))
				return nil
			}
			known, ok := s[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("metric %q is not exposed by the exporter", name))
				return nil
			}
			for l := range known {
				labels[l] = true
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !known[m.Name] {
					problems = append(problems, fmt.Sprintf("label %q is not a label of %s", m.Name, name))
				}
			}
		case *parser.AggregateExpr:
			grouping = append(grouping, n.Grouping...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				grouping = append(grouping, n.VectorMatching.MatchingLabels...)
				grouping = append(grouping, n.VectorMatching.Include...)
			}
		case *parser.Call:
			if (n.Func.Name == "label_replace" || n.Func.Name == "label_join") && len(n.Args) > 1 {
				if dst, ok := n.Args[1].(*parser.StringLiteral); ok {
					labels[dst.Val] = true
				}
			}
		}
		return nil
	})
	for _, l := range grouping {
		if !labels[l] {
			problems = append(problems, fmt.Sprintf("label %q in by/without/on/ignoring/group_* is not a label of the metrics in %q", l, expr))
		}
	}
	return labels, problems
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// checkLabelValues checks a Grafana label_values(selector, label) query.
func checkLabelValues(query string, s schema) []string {
	m := labelValuesRE.FindStringSubmatch(strings.TrimSpace(query))
	if m == nil {
		return []string{fmt.Sprintf("%q is not label_values(selector, label)", query)}
	}
	labels, problems := checkExpr(m[1], s)
	if !labels[m[2]] {
		problems = append(problems, fmt.Sprintf("label %q is not a label of %s", m[2], m[1]))
	}
	return problems
}

var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// grafanaToPromQL replaces Grafana's range variables with durations; the
// other variables ($job, ...) only appear inside matcher strings.
func grafanaToPromQL(expr string) string { return grafanaVars.Replace(expr) }

var (
	legendRE   = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	templateRE = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
)

func legendLabels(legend string) []string { return submatches(legendRE, legend) }

func templateLabels(text string) []string { return submatches(templateRE, text) }

func submatches(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}

// dashboardJSON is the part of a Grafana dashboard this test reads.
type dashboardJSON struct {
	Panels     []panelJSON `json:"panels"`
	Templating struct {
		List []struct {
			Type  string `json:"type"`
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panelJSON struct {
	Title   string      `json:"title"`
	Panels  []panelJSON `json:"panels"`
	Targets []struct {
		RefID        string `json:"refId"`
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

func (d dashboardJSON) allPanels() []panelJSON {
	var out []panelJSON
	var walk func([]panelJSON)
	walk = func(ps []panelJSON) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}
