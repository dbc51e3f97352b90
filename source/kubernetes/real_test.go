package kubernetes

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// collected is what a source told, safe for the test to read while the
// source runs.
type collected struct {
	mu sync.Mutex
	ev []attribution.Evidence
}

func (c *collected) AddEvidence(e attribution.Evidence) {
	c.mu.Lock()
	c.ev = append(c.ev, e)
	c.mu.Unlock()
}

// find returns the evidence of kind for container id, if told.
func (c *collected) find(kind attribution.Kind, id string) (attribution.Evidence, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.ev {
		if e.Kind == kind && e.Container == id {
			return e, true
		}
	}
	return attribution.Evidence{}, false
}

// runSource runs a source on the rig's node until the test ends.
func runSource(t *testing.T, kubeconfig, node string, sink source.Sink) (*Source, *source.Health) {
	health := source.NewRegistry().Source(sourceName)
	s := New(Options{Node: node, Kubeconfig: kubeconfig, MaxBackoff: time.Second}, sink, nil, health,
		slog.New(slog.NewTextHandler(t.Output(), nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, health
}

// startRig starts the cluster rig with the helper image imported, and a
// source on its node, up.
func startRig(t *testing.T) (*testrig.Kube, string, *collected) {
	testrig.SkipInShortLoop(t)
	k := testrig.StartKube(t, testrig.KubeOptions{})
	image := k.ImportHelperImage(t)
	told := &collected{}
	t.Cleanup(func() {
		if t.Failed() {
			told.mu.Lock()
			defer told.mu.Unlock()
			t.Logf("evidence told: %+v", told.ev)
		}
	})
	_, health := runSource(t, k.Kubeconfig, k.Node, told)
	testrig.WaitUntil(t, 10*time.Second, "the source up", health.Up)
	return k, image, told
}

// runningID waits for pod default/name's container to run and returns
// its id.
func runningID(t *testing.T, k *testrig.Kube, name string) string {
	p := k.WaitPod(t, "default", name, time.Minute, "running", func(p *v1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Running != nil
	})
	return containerID(p.Status.ContainerStatuses[0].ContainerID)
}

// rigPod is a pod of the helper image that ignores SIGTERM, on the host
// network, bound to node, with a 2 s grace period and more spec lines.
func rigPod(name, node, image, more string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  nodeName: %s
  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: %s
    imagePullPolicy: Never
    args: ["-ignore-term"]
%s`, name, node, image, more)
}

// A real kubelet kills a container whose liveness probe fails (it ignores
// the SIGTERM, so the SIGKILL ends it: 137), and stops one of a pod
// deleted through the API; the source tells each for the run that died.
// With a token the API refuses, it is down and says so at a death.
func TestRealKubeletKills(t *testing.T) {
	k, image, told := startRig(t)

	// A liveness probe on a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	k.Apply(t, rigPod("probe-kill", k.Node, image, fmt.Sprintf(`    livenessProbe:
      tcpSocket: {host: 127.0.0.1, port: %d}
      periodSeconds: 1
      failureThreshold: 1
`, port)))
	k.Apply(t, rigPod("deleted", k.Node, image, ""))
	k.Apply(t, rigPod("evicted-by-api", k.Node, image, ""))

	p := k.WaitPod(t, "default", "probe-kill", 2*time.Minute, "a restart after a probe kill", func(p *v1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].LastTerminationState.Terminated != nil
	})
	dead := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if dead.ExitCode != 137 {
		t.Errorf("the probe-killed run exited %d, want 137", dead.ExitCode)
	}
	var probe attribution.Evidence
	testrig.WaitUntil(t, 10*time.Second, "the probe kill's evidence", func() (ok bool) {
		probe, ok = told.find(attribution.KindKubeProbe, containerID(dead.ContainerID))
		return ok
	})
	t.Logf("probe kill: %+v; the run finished at %v", probe, dead.FinishedAt.Time)
	if !strings.Contains(probe.Detail, "failed liveness probe") || probe.GraceSeconds != 2 {
		t.Errorf("probe kill evidence %+v: want the event's words and the 2 s grace period", probe)
	}
	if gap := dead.FinishedAt.Sub(probe.Time); gap < 0 || gap > 5*time.Second {
		t.Errorf("probe kill stamped %v, the run finished %v after it", probe.Time, gap)
	}
	exit := attribution.Exit{ContainerID: probe.Container, ExitCode: int(dead.ExitCode), Time: dead.FinishedAt.Time, Kubernetes: true}
	if v := attribution.Decide(exit, []attribution.Evidence{probe}, 30*time.Second); v.Cause != attribution.CauseProbe {
		t.Errorf("verdict %s (%s), want probe", v.Cause, v.Summary)
	} else {
		t.Logf("verdict: %s %s: %s", v.Cause, v.Strength, v.Summary)
	}

	id := runningID(t, k, "deleted")
	k.Kubectl(t, "delete", "pod", "deleted", "--wait=false")
	var deletion attribution.Evidence
	testrig.WaitUntil(t, 10*time.Second, "the deletion's evidence", func() (ok bool) {
		deletion, ok = told.find(attribution.KindKubeDeletion, id)
		return ok
	})
	t.Logf("deletion: %+v", deletion)
	if !strings.Contains(deletion.Detail, "Stopping container app") || deletion.GraceSeconds != 2 {
		t.Errorf("deletion evidence %+v: want the event's words and the 2 s grace period", deletion)
	}

	// The Eviction API: the API server sets DisruptionTarget, then deletes
	// the pod; the eviction outweighs the deletion that carried it out.
	id = runningID(t, k, "evicted-by-api")
	eviction := filepath.Join(t.TempDir(), "eviction.json")
	if err := os.WriteFile(eviction, []byte(`{"apiVersion": "policy/v1", "kind": "Eviction",
		"metadata": {"name": "evicted-by-api", "namespace": "default"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	k.Kubectl(t, "create", "--raw", "/api/v1/namespaces/default/pods/evicted-by-api/eviction", "-f", eviction)
	var evicted, carriedOut attribution.Evidence
	testrig.WaitUntil(t, 10*time.Second, "the eviction's and the deletion's evidence", func() bool {
		var ok1, ok2 bool
		evicted, ok1 = told.find(attribution.KindKubeEviction, id)
		carriedOut, ok2 = told.find(attribution.KindKubeDeletion, id)
		return ok1 && ok2
	})
	t.Logf("Eviction API: %+v and %+v", evicted, carriedOut)
	if !strings.Contains(evicted.Detail, "EvictionByEvictionAPI") {
		t.Errorf("eviction evidence %+v: want the DisruptionTarget reason", evicted)
	}
	// The death one grace period later, as the runtime source sees it.
	exit = attribution.Exit{ContainerID: id, ExitCode: 137, Time: carriedOut.Time.Add(2 * time.Second), Kubernetes: true}
	if v := attribution.Decide(exit, []attribution.Evidence{evicted, carriedOut}, 30*time.Second); v.Cause != attribution.CauseEviction {
		t.Errorf("verdict %s (%s), want eviction", v.Cause, v.Summary)
	} else {
		t.Logf("verdict: %s %s: %s", v.Cause, v.Strength, v.Summary)
	}

	// A token the API server does not know: down, and said at a death.
	cfg, err := os.ReadFile(k.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(wrong, []byte(strings.ReplaceAll(string(cfg), k.Token, "not-a-token")), 0o600); err != nil {
		t.Fatal(err)
	}
	refused, refusedHealth := runSource(t, wrong, k.Node, &collected{})
	testrig.WaitUntil(t, 10*time.Second, "the refusal counted", func() bool { return refusedHealth.Errors() > 0 })
	if refusedHealth.Up() {
		t.Error("up with a token the API refuses")
	}
	said := refused.Probe(time.Now())
	if len(said) != 1 || !strings.Contains(said[0].Detail, "Unauthorized") {
		t.Errorf("probe with a refused token: %+v, want the API unavailable, Unauthorized", said)
	}
}

// A real kubelet under memory pressure (evictionHard above the free
// memory) evicts an API pod; the source tells the eviction for its
// running container, and nothing for the ContainerStatusUnknown the
// kubelet makes up afterwards.
func TestRealEviction(t *testing.T) {
	k, image, told := startRig(t)
	k.Apply(t, rigPod("evicted", k.Node, image, ""))
	id := runningID(t, k, "evicted")

	// The threshold must stay below the capacity (the kubelet reserves it),
	// and above what is available: 64 MiB under the host's memory.
	threshold := fmt.Sprintf("%dKi", memTotalKiB(t)-64<<10)
	k.RestartKubelet(t, func(cfg map[string]any) {
		cfg["evictionHard"] = map[string]any{"memory.available": threshold}
	})
	final := k.WaitPod(t, "default", "evicted", 2*time.Minute, "evicted", func(p *v1.Pod) bool {
		return p.Status.Reason == "Evicted" && len(p.Status.ContainerStatuses) == 1 &&
			p.Status.ContainerStatuses[0].State.Terminated != nil
	})
	var eviction attribution.Evidence
	// A bound for a hang, not a timing: under a loaded host the watch may
	// bring the eviction well after the pod's own status says it.
	testrig.WaitUntil(t, time.Minute, "the eviction's evidence", func() (ok bool) {
		eviction, ok = told.find(attribution.KindKubeEviction, id)
		return ok
	})
	t.Logf("eviction: %+v; final state %+v", eviction, final.Status.ContainerStatuses[0].State.Terminated)
	told.mu.Lock()
	defer told.mu.Unlock()
	for _, e := range told.ev {
		if e.Container != id {
			t.Errorf("evidence for a run that is not the pod's: %+v", e)
		}
	}
}

func memTotalKiB(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	var kib int64
	for line := range strings.Lines(string(b)) {
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kib); err == nil {
			return kib
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}
