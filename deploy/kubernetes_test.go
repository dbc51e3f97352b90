package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// kubeHostMounts are the host paths the DaemonSet mounts, and where the
// exporter expects them (container path by host path).
var kubeHostMounts = map[string]string{
	"/run/containerd/containerd.sock": "/run/containerd/containerd.sock",
	"/sys/fs/cgroup":                  hostCgroupRoot,
	"/sys/kernel/tracing":             hostTracefs,
	"/var/lib/containerd":             "/var/lib/containerd", // imagefs, watched by its host path
	"/var/log/pods":                   "/var/log/pods",       // the pods' logs, likewise
	stateDir:                          stateDir,
}

// kubeWritable are the only host paths the exporter writes: its trace
// instance and its ledger.
var kubeWritable = map[string]bool{"/sys/kernel/tracing": true, stateDir: true}

// kubeManifests are the objects of deploy/kubernetes, one of each kind.
type kubeManifests struct {
	Namespace      *corev1.Namespace
	ServiceAccount *corev1.ServiceAccount
	ClusterRole    *rbacv1.ClusterRole
	Binding        *rbacv1.ClusterRoleBinding
	DaemonSet      *appsv1.DaemonSet
	Service        *corev1.Service
}

// kubeDir is where the manifests are.
func kubeDir() string { return filepath.Join(testrig.RepoRoot(), "deploy", "kubernetes") }

// loadKubeManifests decodes every document of the files kustomization.yaml
// lists strictly into its Kubernetes API type (an unknown or misplaced
// field fails), and fails unless the kustomization lists every manifest of
// the directory and each kind comes once.
func loadKubeManifests(t *testing.T) kubeManifests {
	t.Helper()
	var kustomization struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(readKube(t, "kustomization.yaml"), &kustomization); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if kustomization.APIVersion != "kustomize.config.k8s.io/v1beta1" || kustomization.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", kustomization.APIVersion, kustomization.Kind)
	}
	onDisk, _ := filepath.Glob(filepath.Join(kubeDir(), "*.yaml"))
	var want []string
	for _, f := range onDisk {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			want = append(want, base)
		}
	}
	if listed := slices.Sorted(slices.Values(kustomization.Resources)); !slices.Equal(listed, want) {
		t.Errorf("kustomization.yaml lists %v; the directory has %v", kustomization.Resources, want)
	}

	var m kubeManifests
	targets := map[string]any{ // kind → where its object goes
		"Namespace":          &m.Namespace,
		"ServiceAccount":     &m.ServiceAccount,
		"ClusterRole":        &m.ClusterRole,
		"ClusterRoleBinding": &m.Binding,
		"DaemonSet":          &m.DaemonSet,
		"Service":            &m.Service,
	}
	for _, file := range kustomization.Resources {
		for i, doc := range bytes.Split(readKube(t, file), []byte("\n---\n")) {
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s document %d: %v", file, i, err)
			}
			target, ok := targets[meta.Kind]
			if !ok {
				t.Fatalf("%s document %d: kind %q is not expected here", file, i, meta.Kind)
			}
			obj := reflect.New(reflect.TypeOf(target).Elem().Elem()) // a new *T for a **T
			if err := yaml.UnmarshalStrict(doc, obj.Interface()); err != nil {
				t.Fatalf("%s document %d (%s): %v", file, i, meta.Kind, err)
			}
			if !reflect.ValueOf(target).Elem().IsNil() {
				t.Fatalf("%s: a second %s", file, meta.Kind)
			}
			reflect.ValueOf(target).Elem().Set(obj)
		}
	}
	for kind, target := range targets {
		if reflect.ValueOf(target).Elem().IsNil() {
			t.Fatalf("deploy/kubernetes has no %s", kind)
		}
	}
	return m
}

func readKube(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kubeDir(), file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKubernetesManifests checks that the objects name each other: the
// namespaced ones live in namespace.yaml's namespace, which admits the
// privileged pod; the binding gives the ClusterRole to the DaemonSet's
// ServiceAccount; the Service selects the DaemonSet's pods on their
// metrics port.
func TestKubernetesManifests(t *testing.T) {
	m := loadKubeManifests(t)
	ns := m.Namespace.Name
	for kind, meta := range map[string]metav1.ObjectMeta{
		"ServiceAccount": m.ServiceAccount.ObjectMeta, "DaemonSet": m.DaemonSet.ObjectMeta, "Service": m.Service.ObjectMeta,
	} {
		if meta.Namespace != ns {
			t.Errorf("%s %s is in namespace %q, want %q", kind, meta.Name, meta.Namespace, ns)
		}
	}
	if level := m.Namespace.Labels["pod-security.kubernetes.io/enforce"]; level != "privileged" {
		t.Errorf("namespace %s enforces pod security %q; the exporter's pod is privileged", ns, level)
	}

	pod := m.DaemonSet.Spec.Template
	if pod.Spec.ServiceAccountName != m.ServiceAccount.Name {
		t.Errorf("the pod runs as %q, the ServiceAccount is %q", pod.Spec.ServiceAccountName, m.ServiceAccount.Name)
	}
	wantSubject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: m.ServiceAccount.Name, Namespace: ns}}
	if m.Binding.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: m.ClusterRole.Name}) ||
		!reflect.DeepEqual(m.Binding.Subjects, wantSubject) {
		t.Errorf("ClusterRoleBinding %s: role %+v, subjects %+v; want ClusterRole %s for %+v",
			m.Binding.Name, m.Binding.RoleRef, m.Binding.Subjects, m.ClusterRole.Name, wantSubject)
	}

	svc := m.Service.Spec
	if svc.ClusterIP != corev1.ClusterIPNone || !reflect.DeepEqual(svc.Selector, pod.Labels) {
		t.Errorf("Service: clusterIP %q, selector %v; want a headless Service selecting %v", svc.ClusterIP, svc.Selector, pod.Labels)
	}
	ports := pod.Spec.Containers[0].Ports
	if len(svc.Ports) != 1 || len(ports) != 1 || svc.Ports[0].TargetPort.StrVal != ports[0].Name ||
		svc.Ports[0].Port != ports[0].ContainerPort {
		t.Errorf("Service ports %+v do not name the container's port %+v", svc.Ports, ports)
	}
}

// TestClusterRoleReadsOnlyPodsAndEvents: the exporter only watches the
// pods of its node and their events; any other grant is too much.
func TestClusterRoleReadsOnlyPodsAndEvents(t *testing.T) {
	m := loadKubeManifests(t)
	want := []rbacv1.PolicyRule{{
		APIGroups: []string{""},
		Resources: []string{"pods", "events"},
		Verbs:     []string{"get", "list", "watch"},
	}}
	if !reflect.DeepEqual(m.ClusterRole.Rules, want) || m.ClusterRole.AggregationRule != nil {
		t.Errorf("ClusterRole %s grants %+v; want exactly %+v", m.ClusterRole.Name, m.ClusterRole.Rules, want)
	}
}

// TestDaemonSet checks what the API server would not: the exporter's
// flags, that every host path is mounted where the flags expect it and
// only the trace instance and the ledger are writable, that the pod can
// reach the API as its node, and that the scrape annotations name the port
// it listens on.
func TestDaemonSet(t *testing.T) {
	m := loadKubeManifests(t)
	ds := m.DaemonSet
	pod := ds.Spec.Template
	if ds.Spec.Selector == nil || !reflect.DeepEqual(ds.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("the selector %v does not select the pod's labels %v", ds.Spec.Selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	checkExporterFlags(t, "daemonset.yaml", c.Args)
	if !pod.Spec.HostPID || pod.Spec.HostNetwork {
		t.Errorf("hostPID %v, hostNetwork %v: want the host's pids (kernel records and traces name them) and the pod's own network",
			pod.Spec.HostPID, pod.Spec.HostNetwork)
	}
	if !slices.Contains(pod.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists}) {
		t.Errorf("tolerations %+v: want one that tolerates every taint", pod.Spec.Tolerations)
	}

	// The API source: in-cluster credentials, and this node's name.
	if tok := pod.Spec.AutomountServiceAccountToken; tok == nil || !*tok {
		t.Error("want automountServiceAccountToken: the API source uses the in-cluster config")
	}
	if flagValue(c.Args, "kubernetes.node") != "$(NODE_NAME)" || flagValue(c.Args, "kubernetes.kubeconfig") != "" {
		t.Errorf("want --kubernetes.node=$(NODE_NAME) and the in-cluster config: %q", c.Args)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Errorf("env %+v: want NODE_NAME from spec.nodeName (the downward API)", c.Env)
	}

	// Host paths.
	hostPaths := map[string]string{} // volume → host path
	for _, v := range pod.Spec.Volumes {
		if v.HostPath == nil || v.HostPath.Type == nil {
			t.Errorf("volume %s: want a hostPath with a type", v.Name)
			continue
		}
		hostPaths[v.Name] = v.HostPath.Path
	}
	mounted := map[string]string{} // host path → mount path
	for _, mnt := range c.VolumeMounts {
		path, ok := hostPaths[mnt.Name]
		if !ok {
			t.Errorf("mount %s: no such volume", mnt.Name)
		}
		if !mnt.ReadOnly && !kubeWritable[path] {
			t.Errorf("mount %s is writable; the exporter only reads it", mnt.Name)
		}
		mounted[path] = mnt.MountPath
	}
	if !reflect.DeepEqual(mounted, kubeHostMounts) {
		t.Errorf("host paths mounted %v, want %v", mounted, kubeHostMounts)
	}
	for flag, host := range map[string]string{
		"cgroup.root":        "/sys/fs/cgroup",
		"tracefs.path":       "/sys/kernel/tracing",
		"containerd.address": "/run/containerd/containerd.sock",
	} {
		if v := flagValue(c.Args, flag); v != kubeHostMounts[host] {
			t.Errorf("--%s=%s, want %s, where %s is mounted", flag, v, kubeHostMounts[host], host)
		}
	}
	disks := flagValues(c.Args, "disk.path")
	for _, p := range disks {
		if mounted[p] != p {
			t.Errorf("--disk.path=%s is not mounted at its host path (mounted %v)", p, mounted)
		}
	}
	if len(disks) == 0 {
		t.Error("no --disk.path: the disk cause would watch nothing of the node's")
	}

	// Scrape, resources, privileges.
	listen := flagValue(c.Args, "web.listen-address")
	if !strings.HasSuffix(listen, ":"+exporterPort) || pod.Annotations["prometheus.io/port"] != exporterPort ||
		len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9137 || c.Ports[0].Name != "metrics" {
		t.Errorf("listens on %q, annotated port %q, container ports %+v: want %s everywhere, named metrics",
			listen, pod.Annotations["prometheus.io/port"], c.Ports, exporterPort)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	if pod.Spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q: want system-node-critical, which the kubelet never evicts", pod.Spec.PriorityClassName)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("want a read-only root filesystem: %+v", c.SecurityContext)
	}
}

// flagValues are the values of every --name=value in args.
func flagValues(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// TestDaemonSetScrapeJob checks the scrape job daemonset.yaml's comment
// offers: it is the job the rules select, and it keeps exactly the pods
// and port the manifests make. (promtool cannot check it here: Debian's
// Prometheus is built without Kubernetes discovery.)
func TestDaemonSetScrapeJob(t *testing.T) {
	m := loadKubeManifests(t)
	var job []string
	for _, line := range strings.Split(string(readKube(t, "daemonset.yaml")), "\n") {
		if strings.HasPrefix(line, "#   scrape_configs:") || len(job) > 0 && strings.HasPrefix(line, "#   ") {
			job = append(job, strings.TrimPrefix(line, "#   "))
		} else if len(job) > 0 {
			break
		}
	}
	if len(job) == 0 {
		t.Fatal("daemonset.yaml's comment has no scrape_configs")
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName    string `json:"job_name"`
			Kubernetes []struct {
				Role       string `json:"role"`
				Namespaces struct {
					Names []string `json:"names"`
				} `json:"namespaces"`
			} `json:"kubernetes_sd_configs"`
			Relabel []struct {
				SourceLabels []string `json:"source_labels"`
				Regex        string   `json:"regex"`
				Action       string   `json:"action"`
				TargetLabel  string   `json:"target_label"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict([]byte(strings.Join(job, "\n")), &cfg); err != nil {
		t.Fatal(err)
	}
	pod := m.DaemonSet.Spec.Template
	want := pod.Labels["app.kubernetes.io/name"] + ";" + pod.Spec.Containers[0].Ports[0].Name
	if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != testrig.ChainJob ||
		len(cfg.ScrapeConfigs[0].Kubernetes) != 1 ||
		!slices.Equal(cfg.ScrapeConfigs[0].Kubernetes[0].Namespaces.Names, []string{m.Namespace.Name}) ||
		len(cfg.ScrapeConfigs[0].Relabel) == 0 || cfg.ScrapeConfigs[0].Relabel[0].Action != "keep" ||
		cfg.ScrapeConfigs[0].Relabel[0].Regex != want {
		t.Errorf("the scrape job %+v: want job %s in namespace %s keeping %q", cfg.ScrapeConfigs, testrig.ChainJob, m.Namespace.Name, want)
	}
}
