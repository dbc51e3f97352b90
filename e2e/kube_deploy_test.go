package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// deployNamespace and exporterSA are deploy/kubernetes's namespace and
// ServiceAccount.
const (
	deployNamespace = "exit137"
	exporterSA      = "system:serviceaccount:exit137:exit137-exporter"
	deployImage     = "exit137-exporter:kube-e2e"
)

// TestDaemonSetOnCluster applies deploy/kubernetes for real on the
// cluster rig, whose API server enforces RBAC and whose DaemonSet
// controller and scheduler place the pod, with the exporter's image as
// scripts/build-image builds it, imported with ctr. It checks what the
// ServiceAccount may do, scrapes the pod's /metrics until the containerd
// and kubernetes sources are up, then sees an OOM kill, a liveness-probe
// kill and a deletion past the grace period counted by their causes, with
// the evidence at the pod's /explain, and each cause's alert firing in a
// Prometheus that scrapes the pod with the shipped rules, and the probe
// pod's restarts firing the probe-kill loop.
func TestDaemonSetOnCluster(t *testing.T) {
	testrig.SkipInShortLoop(t)
	testrig.Docker(t) // builds the image
	tracefs := hostTracefs(t)
	k := testrig.StartKube(t, testrig.KubeOptions{Controllers: true})
	importExporterImage(t, k)

	addr := testrig.FreeAddr(t)
	manifests, ds := rigManifests(t, k, addr)
	k.Apply(t, manifests)
	pod, pid := waitExporterPod(t, k)
	t.Cleanup(func() { stopExporterPod(t, k, tracefs, pid) })
	t.Cleanup(func() {
		if t.Failed() { // from the kubelet's log directory: the API cannot reach the kubelet by the node's name
			logs, _ := filepath.Glob(filepath.Join(k.Dir, "pod-logs", deployNamespace+"_"+pod+"_*", "*", "*.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("--- %s:\n%s", f, b)
			}
		}
	})
	checkServiceAccountRights(t, k)

	// The pod's own /metrics, as Prometheus would scrape it.
	exporter := &testrig.Exporter{URL: "http://" + addr}
	exporter.WaitFor(t, 2*time.Minute, "the containerd and kubernetes sources up", func(m testrig.Metrics) bool {
		containerd, _ := m.Value("exit137_source_up", map[string]string{"source": "containerd"})
		kube, _ := m.Value("exit137_source_up", map[string]string{"source": "kubernetes"})
		return containerd == 1 && kube == 1
	})

	// Its own container, as the kubelet made it: the identity from the CRI
	// labels, the memory limit from its cgroup.
	self := map[string]string{"namespace": deployNamespace, "pod": pod, "container": "exit137-exporter"}
	exporter.WaitFor(t, time.Minute, "the exporter's own container with its limit", func(m testrig.Metrics) bool {
		info, _ := m.Value("exit137_container_info", self)
		limit, _ := m.Value("exit137_container_memory_limit_bytes", self)
		return info == 1 && limit == float64(ds.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().Value())
	})

	prom := scrapeWithPrometheus(t, exporter)

	const ns = "e137-deploy"
	k.Kubectl(t, "create", "namespace", ns)
	testrig.WaitUntil(t, time.Minute, "the namespace's default service account", func() bool {
		_, err := k.TryKubectl("-n", ns, "get", "serviceaccount", "default")
		return err == nil
	})
	helper := k.ImportHelperImage(t)
	k.Apply(t, strings.Join([]string{
		workloadPod(ns, "oom", helper, "32Mi", corev1.RestartPolicyNever, nil, "-alloc", "200"),
		// Restarted, as a Deployment's pods are: with restartPolicy Never the
		// kubelet stops the whole pod instead, with a plain "Stopping container".
		workloadPod(ns, "probe", helper, "", corev1.RestartPolicyAlways, &corev1.Probe{
			// An exec probe that always fails: its own exits must not count.
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/helper", "-exit", "1"}}},
			PeriodSeconds: 1, FailureThreshold: 2,
		}, "-ignore-term"),
		workloadPod(ns, "deleted", helper, "", corev1.RestartPolicyNever, nil, "-ignore-term"),
	}, "---\n"))
	k.WaitPod(t, ns, "deleted", time.Minute, "running container", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	k.Kubectl(t, "-n", ns, "delete", "pod", "deleted", "--wait=false")

	for _, w := range []struct{ pod, cause, alert string }{
		{"oom", "oom", "Exit137ContainerOOMKilled"},
		{"deleted", "deletion", "Exit137ContainerKilledAtDeletion"},
		{"probe", "probe", "Exit137ContainerKilledByProbe"},
	} {
		name := ns + "/" + w.pod + "/app"
		match := map[string]string{"namespace": ns, "pod": w.pod, "container": "app", "exit_code": "137", "cause": w.cause}
		waitCountedExit(t, exporter, 2*time.Minute, name, match)
		// Every exit of it has that cause; no exit of the exec probe counts.
		m := exporter.Scrape(t)
		if m.Sum("exit137_container_exits_total", map[string]string{"name": name}) != m.Sum("exit137_container_exits_total", match) {
			t.Errorf("%s: exits other than %v counted: %q", name, match, m.Series("exit137_container_exits_total", map[string]string{"name": name}))
		}
		explain := testrig.Explain(t, exporter.URL, name)
		if !strings.Contains(explain, "cause    "+w.cause) {
			t.Errorf("explain %s does not give cause %s:\n%s", name, w.cause, explain)
		}
		if w.cause != "oom" && !strings.Contains(explain, "kubernetes") {
			t.Errorf("explain %s cites no Kubernetes evidence:\n%s", name, explain)
		}
		prom.WaitQuery(t, time.Minute, fmt.Sprintf(`ALERTS{alertname=%q, alertstate="firing", namespace=%q, pod=%q, container="app"}`,
			w.alert, ns, w.pod))
	}
	// The probe pod is restarted and killed again, its exits adding up
	// under its one name: a probe-kill loop by the third.
	prom.WaitQuery(t, 3*time.Minute, fmt.Sprintf(`ALERTS{alertname="Exit137ContainerProbeKillLoop", alertstate="firing", namespace=%q, pod="probe", container="app"}`, ns))

	// Memory pressure: the kubelet evicts the node's pods, but not the
	// exporter's (system-node-critical), which tells the evictions.
	k.Apply(t, workloadPod(ns, "evictee", helper, "", corev1.RestartPolicyAlways, nil, "-ignore-term"))
	k.WaitPod(t, ns, "evictee", time.Minute, "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	evictUnderMemoryPressure(t, k)
	k.WaitPod(t, ns, "evictee", 3*time.Minute, "eviction", func(p *corev1.Pod) bool { return p.Status.Reason == "Evicted" })
	waitCountedExit(t, exporter, 2*time.Minute, ns+"/evictee/app",
		map[string]string{"namespace": ns, "pod": "evictee", "container": "app", "exit_code": "137", "cause": "eviction"})
	prom.WaitQuery(t, time.Minute, `ALERTS{alertname="Exit137NodeEvictingPods", alertstate="firing"}`)
	if p := k.Pod(t, deployNamespace, pod); p.Status.Reason == "Evicted" || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("the exporter's pod was evicted or restarted under the node's pressure: %s, %d restarts",
			p.Status.Reason, p.Status.ContainerStatuses[0].RestartCount)
	}
}

// scrapeWithPrometheus runs Prometheus on loopback with deploy/'s config
// and alerts/'s rules, scraping the exporter's pod every second, so that
// the alerts fire on what the pod serves. (No Alertmanager: ALERTS says
// what fires.)
func scrapeWithPrometheus(t *testing.T, exporter *testrig.Exporter) *testrig.Chain {
	t.Helper()
	if _, err := exec.LookPath(testrig.PrometheusBin); err != nil {
		testrig.Need(t, "%s is not installed (apt-get install prometheus): %v", testrig.PrometheusBin, err)
	}
	config, err := testrig.PrometheusConfig(strings.TrimPrefix(exporter.URL, "http://"), testrig.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, config, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testrig.FreeAddr(t)
	c := &testrig.Chain{Exporter: exporter, Started: time.Now(), Prometheus: testrig.StartServer(t, "prometheus", testrig.PrometheusBin, addr,
		"--config.file="+configPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+addr)}
	c.WaitQuery(t, 30*time.Second, `up{job="`+testrig.ChainJob+`"} == 1`)
	return c
}

// importExporterImage builds the exporter's image with scripts/build-image
// and imports `docker save`'s archive into the rig's containerd.
func importExporterImage(t *testing.T, k *testrig.Kube) {
	t.Helper()
	testrig.Run(t, filepath.Join(testrig.RepoRoot(), "scripts", "build-image"), deployImage)
	t.Cleanup(func() { _, _ = testrig.Try("docker", "rmi", deployImage) })
	archive := filepath.Join(t.TempDir(), "exporter-image.tar")
	testrig.Run(t, "docker", "save", "-o", archive, deployImage)
	k.ImportImage(t, archive)
}

// rigManifests are deploy/kubernetes's manifests as `kubectl kustomize`
// renders them (`kubectl apply -k`), the DaemonSet changed only where the
// rig differs from a node: the image is imported, not pulled; no CNI
// plugin runs, so the pod uses the host's network, listens on addr on
// loopback and its probes ask there; no kube-proxy serves the kubernetes
// Service, so the in-cluster config names the API server itself;
// containerd, its root, the pods' logs and the exporter's state are in
// the rig's directory. It returns the DaemonSet applied too.
func rigManifests(t *testing.T, k *testrig.Kube, addr string) (string, *appsv1.DaemonSet) {
	t.Helper()
	docs := strings.Split(k.Kubectl(t, "kustomize", filepath.Join(testrig.RepoRoot(), "deploy", "kubernetes")), "\n---\n")
	var ds appsv1.DaemonSet
	for i, doc := range docs {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("kubectl kustomize, document %d: %v", i, err)
		}
		if meta.Kind == "DaemonSet" {
			if err := yaml.UnmarshalStrict([]byte(doc), &ds); err != nil {
				t.Fatalf("the DaemonSet: %v", err)
			}
			docs[i] = adaptDaemonSet(t, k, &ds, addr)
		}
	}
	if ds.Name == "" {
		t.Fatalf("kubectl kustomize deploy/kubernetes renders no DaemonSet:\n%s", strings.Join(docs, "\n---\n"))
	}
	return strings.Join(docs, "\n---\n"), &ds
}

func adaptDaemonSet(t *testing.T, k *testrig.Kube, ds *appsv1.DaemonSet, addr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	portNum, _ := strconv.Atoi(port)
	api, err := url.Parse(k.APIServer)
	if err != nil {
		t.Fatal(err)
	}
	spec := &ds.Spec.Template.Spec
	spec.HostNetwork = true
	c := &spec.Containers[0]
	c.Image, c.ImagePullPolicy = deployImage, corev1.PullNever
	for i, arg := range c.Args {
		if strings.HasPrefix(arg, "--web.listen-address=") {
			c.Args[i] = "--web.listen-address=" + addr
		}
	}
	c.Ports[0].ContainerPort = int32(portNum)
	for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		probe.HTTPGet.Host = host
	}
	c.Env = append(c.Env,
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: api.Hostname()},
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: api.Port()})
	rigPaths := map[string]string{
		"/run/containerd/containerd.sock": k.ContainerdAddress,
		"/var/lib/containerd":             filepath.Join(k.Containerd.Dir, "root"),
		"/var/log/pods":                   filepath.Join(k.Dir, "pod-logs"),
		"/var/lib/exit137-exporter":       filepath.Join(k.Dir, "exporter-state"),
	}
	for _, v := range spec.Volumes {
		if p, ok := rigPaths[v.HostPath.Path]; ok {
			v.HostPath.Path = p
		}
	}
	out, err := yaml.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// waitExporterPod waits until the DaemonSet's pod on the rig's node is
// ready and returns its name and the exporter's host pid.
func waitExporterPod(t *testing.T, k *testrig.Kube) (string, int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := k.TryKubectl("-n", deployNamespace, "get", "pods", "-l", "app.kubernetes.io/name=exit137-exporter", "-o", "json")
		var pods corev1.PodList
		if err == nil && json.Unmarshal([]byte(out), &pods) == nil && len(pods.Items) == 1 {
			p := pods.Items[0]
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					if p.Spec.NodeName != k.Node {
						t.Fatalf("the exporter's pod runs on %q, the rig's node is %q", p.Spec.NodeName, k.Node)
					}
					id := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
					return p.Name, k.Containerd.TaskPID(t, testrig.KubeNamespace, id)
				}
			}
		}
		if time.Now().After(deadline) {
			ds, _ := k.TryKubectl("-n", deployNamespace, "describe", "daemonset,pods")
			t.Fatalf("the DaemonSet's pod is not ready within 3m (%v):\n%s", err, ds)
		}
		time.Sleep(time.Second)
	}
}

// evictUnderMemoryPressure restarts the kubelet with a hard eviction
// threshold above the node's free memory (and below its capacity, or the
// kubelet refuses it), and puts the old threshold back when the test ends.
func evictUnderMemoryPressure(t *testing.T, k *testrig.Kube) {
	t.Helper()
	capacity := resource.MustParse(k.Kubectl(t, "get", "node", k.Node, "-o", "jsonpath={.status.capacity.memory}"))
	threshold := fmt.Sprintf("%dMi", capacity.Value()>>20-64)
	var old any
	k.RestartKubelet(t, func(cfg map[string]any) {
		old = cfg["evictionHard"]
		cfg["evictionHard"] = map[string]any{"memory.available": threshold}
	})
	t.Cleanup(func() { k.RestartKubelet(t, func(cfg map[string]any) { cfg["evictionHard"] = old }) })
}

// stopExporterPod deletes the DaemonSet as an uninstall would: the
// kubelet stops the exporter with SIGTERM, and the exporter removes the
// trace instance it made in the host's tracefs (which the rig's own stop,
// by SIGKILL, would leave behind).
func stopExporterPod(t *testing.T, k *testrig.Kube, tracefs string, pid int) {
	t.Helper()
	if out, err := k.TryKubectl("-n", deployNamespace, "delete", "daemonset", "exit137-exporter", "--cascade=foreground", "--timeout=90s"); err != nil {
		t.Errorf("deleting the DaemonSet: %v\n%s", err, out)
	}
	testrig.WaitUntil(t, time.Minute, "the exporter to stop", func() bool { return syscall.Kill(pid, 0) != nil })
	instance := filepath.Join(tracefs, "instances", fmt.Sprintf("exit137-%d", pid))
	if _, err := os.Stat(instance); err == nil {
		t.Errorf("the exporter stopped by SIGTERM left its trace instance %s", instance)
		_ = os.Remove(instance)
	}
}

// checkServiceAccountRights asks the API server's RBAC authorizer what the
// exporter's ServiceAccount may do: read pods and events, nothing else.
func checkServiceAccountRights(t *testing.T, k *testrig.Kube) {
	t.Helper()
	for _, tc := range []struct {
		verb, resource string
		allowed        bool
	}{
		{"get", "pods", true}, {"list", "pods", true}, {"watch", "pods", true},
		{"list", "events", true}, {"watch", "events", true},
		{"delete", "pods", false}, {"create", "pods/eviction", false},
		{"get", "secrets", false}, {"get", "nodes", false}, {"create", "events", false},
	} {
		out, _ := k.TryKubectl("auth", "can-i", tc.verb, tc.resource, "--all-namespaces", "--as="+exporterSA)
		if got := strings.TrimSpace(out) == "yes"; got != tc.allowed {
			t.Errorf("%s may %s %s: %q, want allowed=%v", exporterSA, tc.verb, tc.resource, out, tc.allowed)
		}
	}
}

// workloadPod is a pod of the helper image with one container, app, run
// with args, a memory limit when given and a 2-second grace period.
func workloadPod(namespace, name, image, memory string, restart corev1.RestartPolicy, liveness *corev1.Probe, args ...string) string {
	grace := int64(2)
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PodSpec{
			HostNetwork:                   true, // no CNI plugin on the rig
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "app", Image: image, ImagePullPolicy: corev1.PullNever,
				Args: args, LivenessProbe: liveness,
			}},
		},
	}
	if memory != "" {
		pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memory)}
	}
	out, err := yaml.Marshal(pod)
	if err != nil {
		panic(err) // a literal above
	}
	return string(out)
}

// waitCountedExit waits until the exporter counts an exit of name with labels
// match, and shows the name's series and its verdicts if it does not.
func waitCountedExit(t *testing.T, e *testrig.Exporter, within time.Duration, name string, match map[string]string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := e.Scrape(t)
		if m.Sum("exit137_container_exits_total", match) >= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exit %v of %s within %s; its series: %q\n/explain: %s", match, name, within,
				m.Series("exit137_container_exits_total", map[string]string{"name": name}),
				e.Get(t, "/explain?container="+url.QueryEscape(name)))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
