package testrig

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"
)

// The servers of the alerting chain, as Debian's prometheus and
// prometheus-alertmanager packages install them (scripts/test does).
const (
	PrometheusBin   = "prometheus"
	AlertmanagerBin = "prometheus-alertmanager"
)

// ChainJob is the scrape job of the exporter in deploy/prometheus.yml, the
// one the rules and dashboards select by default.
const ChainJob = "exit137"

// Chain is the whole alerting path on loopback: the exporter, Prometheus
// scraping it every second with alerts/exit137.rules.yml loaded and
// evaluated every second, and Alertmanager receiving the alerts. The
// configs are deploy/'s, with only addresses, paths and intervals changed.
type Chain struct {
	Exporter                 *Exporter
	Prometheus, Alertmanager *Server
	// Started is when Prometheus began scraping: the start of every range
	// worth querying.
	Started time.Time
}

// StartChain starts the exporter with exporterArgs, Alertmanager and
// Prometheus, and waits until Prometheus has scraped the exporter.
func StartChain(t testing.TB, exporterArgs ...string) *Chain {
	t.Helper()
	for _, bin := range []string{PrometheusBin, AlertmanagerBin} {
		if _, err := exec.LookPath(bin); err != nil {
			Need(t, "%s is not installed (apt-get install prometheus prometheus-alertmanager): %v", bin, err)
		}
	}
	e := StartExporter(t, exporterArgs...)
	dir := t.TempDir()
	amAddr := FreeAddr(t)
	am := StartServer(t, "alertmanager", AlertmanagerBin, amAddr,
		"--config.file="+filepath.Join(RepoRoot(), "deploy", "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "alertmanager"),
		"--web.listen-address="+amAddr,
		"--cluster.listen-address=") // no gossip port: a single instance on loopback
	config, err := PrometheusConfig(strings.TrimPrefix(e.URL, "http://"), amAddr)
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, config, 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := FreeAddr(t)
	prom := StartServer(t, "prometheus", PrometheusBin, promAddr,
		"--config.file="+configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "prometheus"),
		"--web.listen-address="+promAddr)
	c := &Chain{Exporter: e, Prometheus: prom, Alertmanager: am, Started: time.Now()}
	c.WaitQuery(t, 30*time.Second, `up{job="`+ChainJob+`"} == 1`)
	return c
}

// PrometheusConfig is deploy/prometheus.yml made to run on loopback: the
// exporter's job and the Alertmanagers pointed at the given host:ports,
// the rule files read from alerts/, scrapes and rule evaluations every
// second. It fails on a job it does not know, rather than scrape whatever
// answers at a compose service's address.
func PrometheusConfig(exporter, alertmanager string) ([]byte, error) {
	path := filepath.Join(RepoRoot(), "deploy", "prometheus.yml")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Global        map[string]any   `yaml:"global"`
		RuleFiles     []string         `yaml:"rule_files"`
		Alerting      map[string]any   `yaml:"alerting"`
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Global == nil {
		cfg.Global = map[string]any{}
	}
	delete(cfg.Global, "scrape_timeout") // it defaults to the interval when shorter
	cfg.Global["scrape_interval"], cfg.Global["evaluation_interval"] = "1s", "1s"
	for i, f := range cfg.RuleFiles {
		cfg.RuleFiles[i] = filepath.Join(RepoRoot(), "alerts", filepath.Base(f))
		if _, err := os.Stat(cfg.RuleFiles[i]); err != nil {
			return nil, fmt.Errorf("%s: rule file %s: %w", path, f, err)
		}
	}
	loopback := func(addr string) []map[string]any {
		return []map[string]any{{"targets": []string{addr}}}
	}
	ams, _ := cfg.Alerting["alertmanagers"].([]any)
	if len(ams) == 0 {
		return nil, fmt.Errorf("%s: no alerting.alertmanagers", path)
	}
	cfg.Alerting["alertmanagers"] = []any{map[string]any{"static_configs": loopback(alertmanager)}}
	for _, job := range cfg.ScrapeConfigs {
		if job["job_name"] != ChainJob {
			return nil, fmt.Errorf("%s: the chain knows only job %q, not %v", path, ChainJob, job["job_name"])
		}
		delete(job, "scrape_interval")
		delete(job, "scrape_timeout")
		job["static_configs"] = loopback(exporter)
	}
	return yaml.Marshal(cfg)
}

// Server is a server process on loopback, stopped by its PID when the
// test ends; its log is shown when the test failed.
type Server struct {
	Name, URL string
	log       string
}

// StartServer runs bin with args, expecting it to serve on addr, and
// waits until its /-/ready answers 200 (Prometheus and Alertmanager both
// have it).
func StartServer(t testing.TB, name, bin, addr string, args ...string) *Server {
	t.Helper()
	s := &Server{Name: name, URL: "http://" + addr, log: filepath.Join(t.TempDir(), name+".log")}
	logFile, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		stopProcess(cmd)
		logFile.Close()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, s.Log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not get ready on %s:\n%s", name, addr, s.Log())
	return nil
}

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// stopProcess sends SIGTERM, and SIGKILL if it is still there 10s later.
func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// API GETs a JSON API path of s and returns the body.
func (s *Server) API(t testing.TB, path string, params url.Values) []byte {
	t.Helper()
	u := s.URL + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s GET %s: %s\n%s", s.Name, u, resp.Status, b)
	}
	return b
}

// PromData GETs a Prometheus HTTP API path (/api/v1/...) and decodes its
// data field into data.
func (c *Chain) PromData(t testing.TB, path string, params url.Values, data any) {
	t.Helper()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(c.Prometheus.API(t, path, params), &body); err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
	if body.Status != "success" {
		t.Fatalf("prometheus %s %v: %s", path, params, body.Error)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
}

// Sample is one series of a query result: its labels, and its value (an
// instant query) or values (a range query) as the API spells them.
type Sample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

// Query runs an instant query now.
func (c *Chain) Query(t testing.TB, query string) []Sample {
	t.Helper()
	var data struct {
		Result []Sample `json:"result"`
	}
	c.PromData(t, "/api/v1/query", url.Values{"query": {query}}, &data)
	return data.Result
}

// WaitQuery waits until query returns a series and returns them.
func (c *Chain) WaitQuery(t testing.TB, within time.Duration, query string) []Sample {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if r := c.Query(t, query); len(r) > 0 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s returned nothing for %s", query, within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Alert is an alert as Alertmanager's API v2 lists it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// String is the alert in one line: name, the labels that tell what died
// and how, and the summary.
func (a Alert) String() string {
	var parts []string
	for _, l := range []string{"name", "cause", "exit_code", "severity"} {
		if v, ok := a.Labels[l]; ok {
			parts = append(parts, l+"="+v)
		}
	}
	return fmt.Sprintf("%s{%s} %s", a.Labels["alertname"], strings.Join(parts, ","), a.Annotations["summary"])
}

// Alerts lists the alerts Alertmanager holds.
func (c *Chain) Alerts(t testing.TB) []Alert {
	t.Helper()
	var alerts []Alert
	if err := json.Unmarshal(c.Alertmanager.API(t, "/api/v2/alerts", nil), &alerts); err != nil {
		t.Fatalf("alertmanager /api/v2/alerts: %v", err)
	}
	return alerts
}

// WaitAlert waits until Alertmanager holds an alert whose labels include
// every pair of match, and returns it.
func (c *Chain) WaitAlert(t testing.TB, within time.Duration, match map[string]string) Alert {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		alerts := c.Alerts(t)
		for _, a := range alerts {
			if labelsInclude(a.Labels, match) {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert %v reached Alertmanager within %s; it holds %v", match, within, alerts)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func labelsInclude(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Explain runs `exit137-exporter explain NAME` against the chain's
// exporter and returns what it prints.
func (c *Chain) Explain(t testing.TB, name string) string {
	t.Helper()
	return Explain(t, c.Exporter.URL, name)
}

// The alerts the scenario's two deaths must raise (alerts/exit137.rules.yml).
const (
	OOMAlert    = "Exit137ContainerOOMKilled"
	ManualAlert = "Exit137ContainerKilledManually"
)

// Scenario is what the chain test and the demo do to the chain: a
// container that runs near its limit, one that the kernel OOM-kills and
// one that is killed by hand.
type Scenario struct {
	Steady, OOM, Manual Container
}

// Play runs the scenario and waits until both deaths are over.
func (c *Chain) Play(t testing.TB) Scenario {
	t.Helper()
	var s Scenario
	s.Steady = Start(t, UniqueName(t, "steady"), []string{"--memory", "64m"}, "-alloc", "40")
	s.OOM = Start(t, UniqueName(t, "oom"), []string{"--memory", "32m", "--memory-swap", "32m"}, "-alloc", "200")
	s.Manual = Start(t, UniqueName(t, "manual"), nil)
	Run(t, "docker", "kill", s.Manual.Name)
	for _, ctr := range []Container{s.OOM, s.Manual} {
		if code := WaitExited(t, ctr.Name, 30*time.Second); code != "137" {
			t.Fatalf("%s exited %s, want 137", ctr.Name, code)
		}
	}
	return s
}
