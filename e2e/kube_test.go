package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// TestKubernetesVerdicts runs the exporter on a real Kubernetes node (the
// cluster rig: etcd, kube-apiserver, a containerd of its own, the
// kubelet) with the containerd and Kubernetes sources, as the DaemonSet
// runs it, and deals a pod's container each kind of death: the kernel's
// OOM kill, the kubelet's liveness-probe kill, an API deletion past the
// grace period, a crash loop, an eviction under memory pressure. Each is
// counted once under namespace/pod/container with the cause only the API
// (or the kernel) can tell; at the runtime level all are one /tasks/exit
// 137.
func TestKubernetesVerdicts(t *testing.T) {
	testrig.SkipInShortLoop(t)
	k := testrig.StartKube(t, testrig.KubeOptions{})
	image := k.ImportHelperImage(t)
	e := testrig.StartExporter(t, "--runtime=containerd", "--containerd.address="+k.ContainerdAddress,
		"--kubernetes.node="+k.Node, "--kubernetes.kubeconfig="+k.Kubeconfig, "--systemd.bus=none")
	e.WaitFor(t, time.Minute, "the containerd and kubernetes sources up", func(m testrig.Metrics) bool {
		return sourceUp(m, "containerd") && sourceUp(m, "kubernetes")
	})
	exits := func(pod string, match map[string]string) float64 {
		m := map[string]string{"namespace": "default", "pod": pod, "container": "main", "name": "default/" + pod + "/main"}
		for k, v := range match {
			m[k] = v
		}
		return e.Scrape(t).Sum("exit137_container_exits_total", m)
	}
	waitExits := func(pod string, match map[string]string, want float64) {
		t.Helper()
		e.WaitFor(t, time.Minute, fmt.Sprintf("%v exits of %s %v", want, pod, match), func(testrig.Metrics) bool {
			return exits(pod, match) >= want
		})
	}
	explains := func(pod string, words ...string) {
		t.Helper()
		out := testrig.Explain(t, e.URL, "default/"+pod+"/main")
		for _, w := range words {
			if !strings.Contains(out, w) {
				t.Errorf("/explain of %s does not say %q:\n%s", pod, w, out)
			}
		}
	}

	t.Run("oom", func(t *testing.T) {
		k.Apply(t, kubePod(k.Node, "oom", image, podSpec{restart: "Never", memoryLimit: "32Mi"}, "-alloc=200"))
		k.WaitPod(t, "default", "oom", 2*time.Minute, "OOMKilled", func(p *corev1.Pod) bool { return terminatedReason(p) == "OOMKilled" })
		waitExits("oom", map[string]string{"cause": "oom", "exit_code": "137"}, 1)
		explains("oom", "Killed process")
		k.Kubectl(t, "delete", "pod", "oom", "--wait=true", "--timeout=60s")
	})

	t.Run("liveness probe", func(t *testing.T) {
		// A failing exec probe (its own exits are no deaths) and a
		// container that ignores SIGTERM: the kubelet kills it after the
		// grace period, again and again.
		k.Apply(t, kubePod(k.Node, "probed", image, podSpec{restart: "Always", failingProbe: true}, "-ignore-term"))
		k.WaitPod(t, "default", "probed", 2*time.Minute, "a restart", func(p *corev1.Pod) bool { return restarts(p) >= 1 })
		waitExits("probed", map[string]string{"cause": "probe", "exit_code": "137"}, 1)
		explains("probed", "liveness probe")
		// Every exit is a probe kill: the probe's exec exits are never
		// counted as the container's.
		if all, probe := exits("probed", nil), exits("probed", map[string]string{"cause": "probe"}); all != probe {
			t.Errorf("%v exits counted, %v of them probe kills; want all probe kills", all, probe)
		}
		k.Kubectl(t, "delete", "pod", "probed", "--wait=true", "--timeout=60s")
	})

	t.Run("deletion past the grace period", func(t *testing.T) {
		k.Apply(t, kubePod(k.Node, "deleted", image, podSpec{restart: "Always"}, "-ignore-term"))
		k.WaitPod(t, "default", "deleted", 2*time.Minute, "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		e.WaitFor(t, 30*time.Second, "the container known", func(m testrig.Metrics) bool {
			_, ok := m.Value("exit137_container_info", map[string]string{"pod": "deleted"})
			return ok
		})
		k.Kubectl(t, "delete", "pod", "deleted", "--wait=true", "--timeout=60s")
		waitExits("deleted", map[string]string{"cause": "deletion", "exit_code": "137"}, 1)
		explains("deleted", "Stopping container")
		if all := exits("deleted", nil); all != 1 {
			t.Errorf("%v exits counted for one deletion", all)
		}
	})

	t.Run("crash loop counts every restart", func(t *testing.T) {
		k.Apply(t, kubePod(k.Node, "crasher", image, podSpec{restart: "Always"}, "-sleep=200ms", "-exit=3"))
		// In CrashLoopBackOff after n restarts the container died n+1
		// times; the back-off (40s after three) leaves time to compare.
		inBackOff := func(p *corev1.Pod) bool {
			return restarts(p) >= 3 && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil
		}
		pod := k.WaitPod(t, "default", "crasher", 3*time.Minute, "back-off after 3 restarts", inBackOff)
		want := float64(restarts(pod) + 1)
		waitExits("crasher", map[string]string{"exit_code": "3"}, want)
		after := k.Pod(t, "default", "crasher")
		if got := exits("crasher", nil); !inBackOff(after) || restarts(after)+1 != int32(want) || got != want {
			t.Errorf("exporter counted %v exits; the kubelet's restartCount %d (+1 for the death before the back-off) says %v",
				got, restarts(after), want)
		}
		k.Kubectl(t, "delete", "pod", "crasher", "--wait=true", "--timeout=60s")
	})

	t.Run("eviction under memory pressure", func(t *testing.T) {
		k.Apply(t, kubePod(k.Node, "evictee", image, podSpec{restart: "Always"}, "-ignore-term"))
		k.WaitPod(t, "default", "evictee", 2*time.Minute, "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		// A hard threshold above what the host has free (and below its
		// capacity, or the kubelet refuses it): the kubelet sees memory
		// pressure at once and evicts the pod.
		threshold := fmt.Sprintf("%dMi", memTotalMiB(t)-64)
		k.RestartKubelet(t, func(cfg map[string]any) {
			cfg["evictionHard"] = map[string]any{"memory.available": threshold}
		})
		t.Cleanup(func() { k.RestartKubelet(t, func(cfg map[string]any) { delete(cfg, "evictionHard") }) })
		k.WaitPod(t, "default", "evictee", 3*time.Minute, "evicted", func(p *corev1.Pod) bool { return p.Status.Reason == "Evicted" })
		waitExits("evictee", map[string]string{"cause": "eviction", "exit_code": "137"}, 1)
		explains("evictee", "Evicted")
		// The evicted pod's status may show a 137 for a container no one
		// killed again (ContainerStatusUnknown): one death, one exit.
		time.Sleep(5 * time.Second)
		if all := exits("evictee", nil); all != 1 {
			t.Errorf("%v exits counted for one eviction", all)
		}
	})
}

func sourceUp(m testrig.Metrics, name string) bool {
	v, ok := m.Value("exit137_source_up", map[string]string{"source": name})
	return ok && v == 1
}

func restarts(p *corev1.Pod) int32 {
	if len(p.Status.ContainerStatuses) != 1 {
		return 0
	}
	return p.Status.ContainerStatuses[0].RestartCount
}

func terminatedReason(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) != 1 {
		return ""
	}
	s := p.Status.ContainerStatuses[0]
	if s.State.Terminated != nil {
		return s.State.Terminated.Reason
	}
	if s.LastTerminationState.Terminated != nil {
		return s.LastTerminationState.Terminated.Reason
	}
	return ""
}

// memTotalMiB is the host's memory.
func memTotalMiB(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/meminfo")
	var kib int
	if err == nil {
		_, err = fmt.Sscanf(string(data), "MemTotal: %d kB", &kib)
	}
	if err != nil {
		t.Fatalf("MemTotal from /proc/meminfo: %v", err)
	}
	return kib >> 10
}

// podSpec is what a test pod varies.
type podSpec struct {
	restart      string // Always or Never
	memoryLimit  string // e.g. 32Mi; empty: none
	failingProbe bool   // a liveness exec probe that always fails
}

// kubePod is a pod of one container "main" of the helper image on the
// host network, bound to the node, with a 2s grace period.
func kubePod(node, name, image string, spec podSpec, args ...string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	extra := ""
	if spec.memoryLimit != "" {
		extra += fmt.Sprintf("    resources:\n      limits:\n        memory: %s\n", spec.memoryLimit)
	}
	if spec.failingProbe {
		extra += `    livenessProbe:
      exec:
        command: ["/helper", "-exit=1"]
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 1
`
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  nodeName: %s
  hostNetwork: true
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  restartPolicy: %s
  containers:
  - name: main
    image: %s
    imagePullPolicy: Never
    args: [%s]
%s`, name, node, spec.restart, image, strings.Join(quoted, ", "), extra)
}
