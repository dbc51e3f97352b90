package alerts

import (
	"bytes"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v2"
)

const (
	rulesFile   = "exit137.rules.yml"
	testsGlob   = "tests/*.yaml"
	runbookFile = "../docs/runbook.md"
)

// promtool finds promtool on PATH. Outside CI a missing promtool skips the
// test; in CI (CI=true) it fails it, so the rules are never left unchecked.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		testrig.Need(t, "promtool not found on PATH (Debian package prometheus): %v", err)
	}
	return p
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out.String())
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, "check", "rules", "--lint=all", "--lint-fatal", rulesFile)
}

func TestPromtoolTestRules(t *testing.T) {
	files, err := filepath.Glob(testsGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule tests match %s: %v", testsGlob, err)
	}
	runPromtool(t, append([]string{"test", "rules"}, files...)...)
}

type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	if err := yaml.UnmarshalStrict(Rules, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(rf.Groups) == 0 {
		t.Fatalf("%s: no groups", rulesFile)
	}
	return rf
}

func alertRules(rf ruleFile) []rule {
	var out []rule
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

var (
	alertNameRE    = regexp.MustCompile(`^Exit137([A-Z]+[a-z0-9]+)+$`)
	summaryStyleRE = regexp.MustCompile(`^[A-Z].+\.$`)
	templatedRE    = regexp.MustCompile(`\{\{.+\}\}`)
	alertAnchorRE  = regexp.MustCompile(`^exit137[a-z0-9]+$`)
	recordNameRE   = regexp.MustCompile(`^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$`)
	severities     = map[string]bool{"critical": true, "warning": true, "info": true}
)

// TestRuleGuidelines lints the rules by the monitoring mixins' guidelines
// (mixtool's alert checks) and ours: runbook_url is a section of
// docs/runbook.md; a container alert's description names the container and
// the cause; recording rules are named level:metric:operations.
func TestRuleGuidelines(t *testing.T) {
	rf := loadRules(t)
	anchors := runbookAnchors(t)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if len(g.Name) > 40 {
			t.Errorf("group %s: name longer than 40 characters", g.Name)
		}
		if len(g.Rules) > 20 {
			t.Errorf("group %s: %d rules, at most 20", g.Name, len(g.Rules))
		}
		for _, r := range g.Rules {
			if r.Record != "" {
				if !recordNameRE.MatchString(r.Record) {
					t.Errorf("recording rule %s: want level:metric:operations", r.Record)
				}
				continue
			}
			name := r.Alert
			if seen[name] {
				t.Errorf("alert %s defined twice", name)
			}
			seen[name] = true
			if !alertNameRE.MatchString(name) || len(name) > 40 {
				t.Errorf("alert %s: want CamelCase starting with Exit137, at most 40 characters", name)
			}
			if !severities[r.Labels["severity"]] {
				t.Errorf("alert %s: severity %q not one of critical, warning, info", name, r.Labels["severity"])
			}
			summary := r.Annotations["summary"]
			if summary == "" || strings.Contains(summary, "{{") || !summaryStyleRE.MatchString(summary) {
				t.Errorf("alert %s: summary %q must be a static sentence, capitalised, ending with a period", name, summary)
			}
			desc := r.Annotations["description"]
			if !templatedRE.MatchString(desc) {
				t.Errorf("alert %s: description must be templated", name)
			}
			if keepsContainer(r.Expr) && (!strings.Contains(desc, "$labels.name") || !strings.Contains(desc, "cause")) {
				t.Errorf("alert %s: description must name the container ($labels.name) and the cause", name)
			}
			wantURL := RunbookBaseURL + "#" + strings.ToLower(name)
			if r.Annotations["runbook_url"] != wantURL {
				t.Errorf("alert %s: runbook_url %q, want %q", name, r.Annotations["runbook_url"], wantURL)
			}
			if !anchors[strings.ToLower(name)] {
				t.Errorf("alert %s: %s has no section with anchor #%s", name, runbookFile, strings.ToLower(name))
			}
			if len(r.Annotations) != 3 {
				t.Errorf("alert %s: want exactly the annotations summary, description, runbook_url", name)
			}
		}
	}
	// Every runbook section named like an alert is for an alert that exists.
	for anchor := range anchors {
		if alertAnchorRE.MatchString(anchor) && !seen[alertByLower(rf)[anchor]] {
			t.Errorf("%s: section #%s has no alert", runbookFile, anchor)
		}
	}
}

// keepsContainer tells whether an alert's series name a container: its
// expression reads a container metric, and no aggregation on the way to
// its result drops the name label (a per-node alert does).
func keepsContainer(expr string) bool {
	if !strings.Contains(expr, "container") {
		return false
	}
	e, err := parser.ParseExpr(expr)
	for err == nil {
		switch n := e.(type) {
		case *parser.BinaryExpr: // a comparison or unless: the left side's labels
			e = n.LHS
		case *parser.ParenExpr:
			e = n.Expr
		case *parser.AggregateExpr:
			if n.Without == slices.Contains(n.Grouping, "name") {
				return false
			}
			e = n.Expr
		default:
			return true
		}
	}
	return true
}

func TestKeepsContainer(t *testing.T) {
	for expr, want := range map[string]bool{
		`exit137_container_exits_total > 0`:                                           true,
		`sum without (signal, cause) (exit137_container_exits_total) >= 3`:            true,
		`sum by (instance, name) (exit137_container_exits_total) >= 3`:                true,
		`count by (instance) (exit137_container_exits_total) > 0`:                     false,
		`count without (pod) (count without (name) (exit137_container_exits_total))`:  false,
		`(exit137_container_oom_kills_total > 0) unless on (name) exit137_build_info`: true,
		`exit137_disk_usage_ratio >= 0.95`:                                            false,
	} {
		if got := keepsContainer(expr); got != want {
			t.Errorf("keepsContainer(%q) = %v, want %v", expr, got, want)
		}
	}
}

func alertByLower(rf ruleFile) map[string]string {
	m := map[string]string{}
	for _, r := range alertRules(rf) {
		m[strings.ToLower(r.Alert)] = r.Alert
	}
	return m
}

// runbookAnchors are the GitHub anchors of the runbook's headings.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatalf("runbook: %v", err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		anchors[githubAnchor(heading)] = true
	}
	return anchors
}

// githubAnchor is the id GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertTested requires, for every alert, a promtool test where it
// fires and one where it does not.
func TestEveryAlertTested(t *testing.T) {
	rf := loadRules(t)
	files, _ := filepath.Glob(testsGlob)
	fires, silent := map[string]int{}, map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tf ruleTestFile
		if err := yaml.Unmarshal(b, &tf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname]++
				} else {
					silent[a.Alertname]++
				}
			}
		}
	}
	known := alertByLower(rf)
	for _, r := range alertRules(rf) {
		if fires[r.Alert] == 0 {
			t.Errorf("alert %s: no test where it fires", r.Alert)
		}
		if silent[r.Alert] == 0 {
			t.Errorf("alert %s: no test where it does not fire", r.Alert)
		}
	}
	for name := range mergeKeys(fires, silent) {
		if known[strings.ToLower(name)] != name {
			t.Errorf("tests name alert %s, which the rules do not define", name)
		}
	}
}

// TestRecordingRulesUsed requires every recording rule to be read by an
// alert or a dashboard.
func TestRecordingRulesUsed(t *testing.T) {
	rf := loadRules(t)
	var users strings.Builder
	for _, r := range alertRules(rf) {
		users.WriteString(r.Expr)
		users.WriteString(r.Annotations["description"])
	}
	for _, f := range dashboardFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		users.Write(b)
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" && !strings.Contains(users.String(), r.Record) {
				t.Errorf("recording rule %s is used by no alert or dashboard", r.Record)
			}
		}
	}
}

func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in ../dashboards: %v", err)
	}
	sort.Strings(files)
	return files
}

func mergeKeys(ms ...map[string]int) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}

func TestGithubAnchor(t *testing.T) {
	for in, want := range map[string]string{
		"Exit137ContainerOOMKilled":        "exit137containeroomkilled",
		"What to check (`docker inspect`)": "what-to-check-docker-inspect",
	} {
		if got := githubAnchor(in); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", in, got, want)
		}
	}
}
