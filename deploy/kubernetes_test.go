package deploy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// TestDaemonSet decodes kubernetes/daemonset.yaml strictly into the
// Kubernetes API type (an unknown or misplaced field fails) and checks
// what the API server would not: the exporter's flags, that every host
// path is mounted where the flags expect it, and that the scrape
// annotations name the port it listens on.
func TestDaemonSet(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testrig.RepoRoot(), "deploy", "kubernetes", "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(b, &ds); err != nil {
		t.Fatalf("daemonset.yaml: %v", err)
	}
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Errorf("daemonset.yaml is %s %s", ds.APIVersion, ds.Kind)
	}
	pod := ds.Spec.Template
	if ds.Spec.Selector == nil || !reflect.DeepEqual(ds.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("the selector %v does not select the pod's labels %v", ds.Spec.Selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	checkExporterFlags(t, "daemonset.yaml", c.Args)
	if !pod.Spec.HostPID {
		t.Error("want hostPID: pids in kernel records and traces are the host's")
	}

	hostPaths := map[string]string{} // volume → host path
	for _, v := range pod.Spec.Volumes {
		if v.HostPath == nil || v.HostPath.Type == nil {
			t.Errorf("volume %s: want a hostPath with a type", v.Name)
			continue
		}
		hostPaths[v.Name] = v.HostPath.Path
	}
	mounted := map[string]string{} // host path → mount path
	for _, m := range c.VolumeMounts {
		path, ok := hostPaths[m.Name]
		if !ok {
			t.Errorf("mount %s: no such volume", m.Name)
		}
		if !m.ReadOnly && path != "/sys/kernel/tracing" && path != stateDir {
			t.Errorf("mount %s is writable; the exporter only reads it", m.Name)
		}
		mounted[path] = m.MountPath
	}
	if len(mounted) != len(hostPaths) {
		t.Errorf("volumes %v, mounted %v: a volume is not mounted", hostPaths, mounted)
	}
	checkHostPaths(t, "daemonset.yaml", c.Args, mounted)

	listen := flagValue(c.Args, "web.listen-address")
	if !strings.HasSuffix(listen, ":"+exporterPort) || pod.Annotations["prometheus.io/port"] != exporterPort ||
		len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9137 {
		t.Errorf("listens on %q, annotated port %q, container ports %+v: want %s everywhere",
			listen, pod.Annotations["prometheus.io/port"], c.Ports, exporterPort)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("want a read-only root filesystem: %+v", c.SecurityContext)
	}
}
