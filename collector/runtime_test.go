package collector

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/exit137-exporter/exit137-exporter/source/docker"
)

// runtimeFunc answers as a Docker source would.
type runtimeFunc func() (docker.Runtime, bool)

func (f runtimeFunc) Runtime() (docker.Runtime, bool) { return f() }

func TestRuntimeCollector(t *testing.T) {
	podman := &runtimeCollector{docker: runtimeFunc(func() (docker.Runtime, bool) {
		return docker.Runtime{Name: docker.RuntimePodman, Version: "4.3.1", APIVersion: "1.41"}, true
	})}
	if err := testutil.CollectAndCompare(kmsgDiskPromCollector{podman}, strings.NewReader(`
# HELP exit137_runtime_info The container runtime behind --docker.host, from its API's version answer, with its version (runtime: docker or podman). Podman 4 reports no OOM kill of its own: the kernel's is used.
# TYPE exit137_runtime_info gauge
exit137_runtime_info{runtime="podman",version="4.3.1"} 1
`)); err != nil {
		t.Error(err)
	}
	none := &runtimeCollector{docker: runtimeFunc(func() (docker.Runtime, bool) { return docker.Runtime{}, false })}
	if err := none.Update(make(chan prometheus.Metric, 1)); !errors.Is(err, ErrNoData) {
		t.Errorf("before a connection: %v, want ErrNoData", err)
	}
	if err := (&runtimeCollector{}).Update(make(chan prometheus.Metric, 1)); !errors.Is(err, ErrNoData) {
		t.Errorf("with the Docker source off: %v, want ErrNoData", err)
	}
}
