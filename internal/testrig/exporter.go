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
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Exporter is an exporter binary the test started. It can be stopped
// (SIGTERM or SIGKILL) and started again with the same arguments on the
// same address, as an upgrade or a crash would; every incarnation logs to
// the same file, separated by a marker line.
type Exporter struct {
	URL  string
	bin  string
	args []string
	log  string

	mu      sync.Mutex
	logFile *os.File
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error
	runs    int
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
	all := []string{"--web.listen-address=" + addr, "--log.level=debug"}
	if !hasFlag(args, "--state.path") {
		// Each exporter keeps its state apart, never in the host's default
		// location; kingpin refuses a flag given twice, so only when the
		// test names none.
		all = append(all, "--state.path="+filepath.Join(t.TempDir(), "state.json"))
	}
	e := &Exporter{
		URL:     "http://" + addr,
		bin:     bin,
		args:    append(all, args...),
		log:     logPath,
		logFile: logFile,
	}
	t.Cleanup(func() {
		e.stop(syscall.SIGTERM)
		logFile.Close()
		if t.Failed() {
			t.Logf("exporter log:\n%s", e.Log())
		}
	})
	e.Start(t)
	return e
}

// hasFlag reports whether args set the flag name (--name=v or --name v).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// Start starts the exporter again, with the same arguments, and waits
// until it answers; it fails the test at once, with the log, when the
// process exits instead (a flag it does not know, say).
func (e *Exporter) Start(t testing.TB) {
	t.Helper()
	e.mu.Lock()
	if e.cmd != nil {
		e.mu.Unlock()
		t.Fatalf("exporter already running (pid %d)", e.cmd.Process.Pid)
	}
	e.runs++
	fmt.Fprintf(e.logFile, "=== testrig: exporter start #%d at %s ===\n", e.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(e.bin, e.args...)
	cmd.Stdout, cmd.Stderr = e.logFile, e.logFile
	if err := cmd.Start(); err != nil {
		e.mu.Unlock()
		t.Fatal(err)
	}
	done := make(chan struct{})
	e.cmd, e.done = cmd, done
	e.mu.Unlock()
	go func() {
		err := cmd.Wait()
		e.mu.Lock()
		e.waitErr = err
		e.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			e.mu.Lock()
			err := e.waitErr
			e.cmd, e.done = nil, nil
			e.mu.Unlock()
			t.Fatalf("exporter exited at start (%v); args %q; log tail:\n%s", err, e.args, e.LogTail(30))
		default:
		}
		if resp, err := http.Get(e.URL + "/metrics"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("exporter did not answer on %s", e.URL)
}

// Stop sends sig (SIGTERM or SIGKILL) and waits for the process to end; a
// SIGTERM that is not obeyed in 10s becomes a SIGKILL. It returns how the
// process ended. Stopping a stopped exporter does nothing.
func (e *Exporter) Stop(t testing.TB, sig syscall.Signal) error {
	t.Helper()
	return e.stop(sig)
}

func (e *Exporter) stop(sig syscall.Signal) error {
	e.mu.Lock()
	cmd, done := e.cmd, e.done
	e.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.logFile, "=== testrig: exporter stopped by %s at %s: %v ===\n", sig, time.Now().Format(time.RFC3339Nano), e.waitErr)
	e.cmd, e.done = nil, nil
	return e.waitErr
}

// Running reports whether the exporter process is up.
func (e *Exporter) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cmd != nil
}

// Args are the arguments every incarnation runs with.
func (e *Exporter) Args() []string { return append([]string(nil), e.args...) }

// Explain runs `exit137-exporter explain NAME` against the exporter at
// url (one where none answers makes it diagnose after the fact).
func Explain(t testing.TB, url, name string) string {
	t.Helper()
	return Run(t, BuildBinary(t, "cmd/exit137-exporter"), "explain", name, "--exporter.url="+url, "--timeout=1s")
}

// PID is the exporter process's id.
func (e *Exporter) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return 0
	}
	return e.cmd.Process.Pid
}

// Log returns what the exporter has logged so far.
func (e *Exporter) Log() string {
	b, _ := os.ReadFile(e.log)
	return string(b)
}

// LogTail returns the last n lines the exporter logged.
func (e *Exporter) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(e.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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
