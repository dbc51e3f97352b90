package collector

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/exit137-exporter/exit137-exporter/source/sigtrace"
)

// Every sender class exists from the start, so increase() sees the first
// kill of each.
func TestSigtraceCollector(t *testing.T) {
	c, err := newSigtraceCollector(Deps{Sigtrace: sigtrace.New(sigtrace.Options{}, nil, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(kmsgDiskPromCollector{c}, strings.NewReader(`
# HELP exit137_sigkills_total SIGKILLs traced since the exporter started, to any process, by sender class (kernel: the OOM killer or the kernel itself; systemd; runtime: the container runtime, its shims and OCI runtime, Docker's or Podman's; user: a login session or terminal; other).
# TYPE exit137_sigkills_total counter
exit137_sigkills_total{sender="kernel"} 0
exit137_sigkills_total{sender="other"} 0
exit137_sigkills_total{sender="runtime"} 0
exit137_sigkills_total{sender="systemd"} 0
exit137_sigkills_total{sender="user"} 0
`)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(kmsgDiskPromCollector{c}); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestSigtraceCollectorOff(t *testing.T) {
	c, err := newSigtraceCollector(Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan prometheus.Metric, 10)
	if err := c.Update(ch); !errors.Is(err, ErrNoData) || len(ch) != 0 {
		t.Errorf("Update = %v with %d metrics, want ErrNoData and none", err, len(ch))
	}
}
