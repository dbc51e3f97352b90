package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// TestKubeRig starts the cluster rig, runs a host-network pod of the
// helper image and a crash-looping one, sees them through the API,
// deletes them, and checks that Stop leaves no process, mount, directory
// or kubepods cgroup behind.
func TestKubeRig(t *testing.T) {
	testrig.SkipInShortLoop(t)
	k := testrig.StartKube(t, testrig.KubeOptions{})
	image := k.ImportHelperImage(t)
	k.Apply(t, kubePod(k.Node, "sleeper", image, podSpec{restart: "Always"}))

	pod := k.WaitPod(t, "default", "sleeper", 2*time.Minute, "running container", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	if phase := k.Kubectl(t, "get", "pod", "sleeper", "-o", "jsonpath={.status.phase}"); phase != "Running" {
		t.Errorf("kubectl says the pod is %q, want Running", phase)
	}
	// The kubelet's cgroupfs layout, which the exporter reads.
	podCgroup := filepath.Join("/sys/fs/cgroup/memory/kubepods/besteffort", "pod"+string(pod.UID))
	if _, err := os.Stat(podCgroup); err != nil {
		t.Errorf("the pod's memory cgroup: %v", err)
	}
	ctrs := k.Containerd.Ctr(t, testrig.KubeNamespace, "containers", "ls", "labels.\"io.kubernetes.pod.name\"==sleeper")
	if strings.Count(ctrs, "\n") < 2 { // a header, the sandbox, the container
		t.Errorf("containerd has no sandbox and container labelled with the pod's name:\n%s", ctrs)
	}

	if out := k.Crictl(t, "pods", "--name", "sleeper", "--state", "ready", "-q"); out == "" {
		t.Error("crictl shows no ready sandbox of the pod")
	}

	// A kubelet restarted with another configuration finds the pod's
	// container running on in containerd.
	before := pod.Status.ContainerStatuses[0].ContainerID
	k.RestartKubelet(t, func(cfg map[string]any) { cfg["evictionPressureTransitionPeriod"] = "10s" })
	if !strings.Contains(readFile(t, filepath.Join(k.Dir, "kubelet.json")), `"evictionPressureTransitionPeriod": "10s"`) {
		t.Error("the restarted kubelet's configuration lacks the change")
	}
	k.WaitPod(t, "default", "sleeper", time.Minute, "the same container running after the kubelet's restart", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].Ready && cs[0].ContainerID == before && cs[0].RestartCount == 0
	})

	// After the restart: a container the stopped kubelet was creating
	// ends as a StartError (128), not as the crash this is about.
	k.Apply(t, kubePod(k.Node, "crasher", image, podSpec{restart: "Always"}, "-sleep=500ms", "-exit=3"))
	crash := k.WaitPod(t, "default", "crasher", 3*time.Minute, "restartCount 2", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
	})
	if last := crash.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 3 {
		t.Errorf("crasher's last termination = %+v, want exit code 3", last)
	}

	k.Kubectl(t, "delete", "pod", "sleeper", "crasher", "--timeout=90s")
	if out := k.Kubectl(t, "get", "pods", "-o", "name"); out != "" {
		t.Errorf("pods left after the delete: %s", out)
	}

	k.Stop(t)
	assertKubeGone(t, k)
}

// TestKubeRigControllers starts the rig with the scheduler and the
// controller manager and applies a DaemonSet whose ServiceAccount may
// only read pods and events: its pod is scheduled onto the node and runs
// with its token, and the token is held to the RBAC rules.
func TestKubeRigControllers(t *testing.T) {
	testrig.SkipInShortLoop(t)
	k := testrig.StartKube(t, testrig.KubeOptions{Controllers: true})
	k.Apply(t, fmt.Sprintf(readerDaemonSet, k.ImportHelperImage(t)))
	k.Kubectl(t, "-n", "exit137-rig", "rollout", "status", "daemonset/reader", "--timeout=2m")
	name := k.Kubectl(t, "-n", "exit137-rig", "get", "pods", "-l", "app=reader", "-o", "jsonpath={.items[0].metadata.name}")
	pod := k.WaitPod(t, "exit137-rig", name, time.Minute, "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if pod.Spec.NodeName != k.Node || pod.Spec.ServiceAccountName != "reader" {
		t.Errorf("pod on node %q as %q, want %q as reader", pod.Spec.NodeName, pod.Spec.ServiceAccountName, k.Node)
	}
	token := false
	for _, v := range pod.Spec.Volumes {
		token = token || v.Projected != nil && strings.HasPrefix(v.Name, "kube-api-access-")
	}
	if !token {
		t.Errorf("the pod has no service account token volume: %+v", pod.Spec.Volumes)
	}

	saToken := k.Kubectl(t, "-n", "exit137-rig", "create", "token", "reader")
	asReader := func(args ...string) (string, error) {
		return k.TryKubectl(append([]string{"--token=" + saToken, "-n", "exit137-rig"}, args...)...)
	}
	if out, err := asReader("get", "pods", "-o", "name"); err != nil || !strings.Contains(out, name) {
		t.Errorf("the reader's token cannot list pods: %v: %s", err, out)
	}
	if out, err := asReader("get", "secrets"); err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("the reader's token lists secrets (want forbidden): %v: %s", err, out)
	}
	k.Stop(t)
	assertKubeGone(t, k)
}

// readerDaemonSet runs the helper image (%s) on every node as a
// ServiceAccount that may get, list and watch pods and events.
const readerDaemonSet = `apiVersion: v1
kind: Namespace
metadata:
  name: exit137-rig
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: reader
  namespace: exit137-rig
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: exit137-rig-reader
rules:
- apiGroups: [""]
  resources: [pods, events]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: exit137-rig-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: exit137-rig-reader
subjects:
- kind: ServiceAccount
  name: reader
  namespace: exit137-rig
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: reader
  namespace: exit137-rig
spec:
  selector:
    matchLabels:
      app: reader
  template:
    metadata:
      labels:
        app: reader
    spec:
      serviceAccountName: reader
      hostNetwork: true
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: %s
        imagePullPolicy: Never
`

// assertKubeGone checks that a stopped cluster rig left nothing: no
// process, mount or directory of its own, no kubepods cgroup, no log link
// into its directory, no device plugin socket.
func assertKubeGone(t *testing.T, k *testrig.Kube) {
	t.Helper()
	assertRigGone(t, k.Dir, k.Dir)
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods"); len(dirs) > 0 {
		t.Errorf("kubepods cgroups left: %q", dirs)
	}
	links, _ := os.ReadDir("/var/log/containers")
	for _, l := range links {
		if target, _ := os.Readlink(filepath.Join("/var/log/containers", l.Name())); strings.HasPrefix(target, k.Dir) {
			t.Errorf("log link left: /var/log/containers/%s -> %s", l.Name(), target)
		}
	}
	if _, err := os.Stat("/var/lib/kubelet/device-plugins/kubelet.sock"); err == nil {
		t.Error("the kubelet's device plugin socket is left")
	}
}

// TestContainerdRig runs a task on the rig's second containerd, kills it
// with SIGKILL through ctr, and checks that Stop leaves nothing behind.
func TestContainerdRig(t *testing.T) {
	testrig.SkipInShortLoop(t)
	c := testrig.StartContainerd(t)
	const ns = "exit137-test"
	c.Run(t, ns, "sleeper", []string{"--memory-limit", strconv.Itoa(64 << 20)})
	pid := c.TaskPID(t, ns, "sleeper")
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("task pid %d does not run", pid)
	}
	c.Ctr(t, ns, "tasks", "kill", "-s", "SIGKILL", "sleeper")
	c.WaitTaskStatus(t, ns, "sleeper", "STOPPED", 10*time.Second)
	if out, err := c.TryCtr(ns, "tasks", "delete", "sleeper"); !strings.Contains(out+errString(err), "137") {
		t.Errorf("ctr tasks delete of the killed task: %q, %v; want exit status 137", out, err)
	}
	c.Stop(t)
	assertRigGone(t, c.Dir, c.Address, pid)
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns); len(dirs) > 0 {
		t.Errorf("the tasks' cgroups are left: %q", dirs)
	}
}

// assertRigGone checks that a stopped rig left no directory, mount or
// process (every one of its processes has marker in its arguments: the
// shims carry the containerd socket, the cluster's programs the rig's
// directory) and that the given pids are gone.
func assertRigGone(t *testing.T, dir, marker string, pids ...int) {
	t.Helper()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", dir, err)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), dir) {
		t.Errorf("mounts under %s remain", dir)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), marker) {
			t.Errorf("process %s still runs: %q", e.Name(), strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("pid %d still runs", pid)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
