package testrig

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Exporter is a running exporter binary.
type Exporter struct {
	URL string
	cmd *exec.Cmd
	log string
}

// StartExporter builds and starts the exporter on a free loopback port
// with args, and stops it (by its PID) when the test ends.
func StartExporter(t testing.TB, args ...string) *Exporter {
	t.Helper()
	bin := BuildBinary(t, "cmd/exit137-exporter")
	addr := FreeAddr(t)
	logPath := filepath.Join(t.TempDir(), "exporter.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"--web.listen-address=" + addr, "--log.level=debug"}, args...)
	cmd := exec.Command(bin, all...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &Exporter{URL: "http://" + addr, cmd: cmd, log: logPath}
	t.Cleanup(func() {
		stopProcess(cmd)
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("exporter log:\n%s", b)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(e.URL + "/metrics"); err == nil {
			resp.Body.Close()
			return e
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("exporter did not answer on %s", addr)
	return nil
}

// Explain runs `exit137-exporter explain NAME` against the exporter at
// url (one where none answers makes it diagnose after the fact).
func Explain(t testing.TB, url, name string) string {
	t.Helper()
	return Run(t, BuildBinary(t, "cmd/exit137-exporter"), "explain", name, "--exporter.url="+url, "--timeout=1s")
}

// PID is the exporter process's id.
func (e *Exporter) PID() int { return e.cmd.Process.Pid }

// Log returns what the exporter has logged so far.
func (e *Exporter) Log() string {
	b, _ := os.ReadFile(e.log)
	return string(b)
}

// Get fetches a path and returns the body.
func (e *Exporter) Get(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get(e.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	return string(b)
}

// Metrics is a parsed scrape.
type Metrics map[string]*dto.MetricFamily

// Scrape parses /metrics.
func (e *Exporter) Scrape(t testing.TB) Metrics {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(e.Get(t, "/metrics")))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// Value returns the value of the series of name whose labels include
// every pair in match, and whether it exists.
func (m Metrics) Value(name string, match map[string]string) (float64, bool) {
	f, ok := m[name]
	if !ok {
		return 0, false
	}
	for _, metric := range f.Metric {
		if labelsMatch(metric, match) {
			switch {
			case metric.Counter != nil:
				return metric.Counter.GetValue(), true
			case metric.Gauge != nil:
				return metric.Gauge.GetValue(), true
			case metric.Untyped != nil:
				return metric.Untyped.GetValue(), true
			}
		}
	}
	return 0, false
}

// Sum adds the values of every series of name whose labels include match.
func (m Metrics) Sum(name string, match map[string]string) float64 {
	f, ok := m[name]
	if !ok {
		return 0
	}
	sum := 0.0
	for _, metric := range f.Metric {
		if labelsMatch(metric, match) {
			sum += metric.GetCounter().GetValue() + metric.GetGauge().GetValue()
		}
	}
	return sum
}

// Series lists the label sets of name whose labels include match, for
// failure messages.
func (m Metrics) Series(name string, match map[string]string) []string {
	var out []string
	if f, ok := m[name]; ok {
		for _, metric := range f.Metric {
			if labelsMatch(metric, match) {
				var parts []string
				for _, l := range metric.Label {
					parts = append(parts, l.GetName()+"="+l.GetValue())
				}
				out = append(out, fmt.Sprintf("{%s} %v", strings.Join(parts, ","),
					metric.GetCounter().GetValue()+metric.GetGauge().GetValue()))
			}
		}
	}
	sort.Strings(out)
	return out
}

func labelsMatch(metric *dto.Metric, match map[string]string) bool {
	found := 0
	for _, l := range metric.Label {
		if v, ok := match[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(match)
}

// WaitFor scrapes until cond holds or within passes; it returns the last
// scrape.
func (e *Exporter) WaitFor(t testing.TB, within time.Duration, what string, cond func(Metrics) bool) Metrics {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := e.Scrape(t)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// FreeAddr returns a free 127.0.0.1 port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
