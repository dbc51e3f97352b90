// Package deploy holds the ways to run exit137-exporter (compose, systemd,
// Kubernetes) and the Prometheus and Alertmanager configs that the
// end-to-end chain test and scripts/demo run too. Its tests validate each
// file as far as this machine allows and check that they agree with each
// other and with the exporter's flags, rules and dashboards.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// The exporter's defaults these files rely on.
const (
	exporterPort   = "9137"
	hostCgroupRoot = "/host/sys/fs/cgroup" // where the containerised exporter sees the host's /sys/fs/cgroup
	hostTracefs    = "/host/sys/kernel/tracing"
)

// hostMounts are the host paths a containerised exporter needs, and where
// it expects them: the same in docker-compose.yml and the DaemonSet.
var hostMounts = map[string]string{
	"/var/run/docker.sock":        "/var/run/docker.sock",
	"/sys/fs/cgroup":              hostCgroupRoot,
	"/var/lib/docker":             "/var/lib/docker", // Docker reports its data root by the host's path
	"/sys/kernel/tracing":         hostTracefs,
	"/run/dbus/system_bus_socket": "/var/run/dbus/system_bus_socket",
	stateDir:                      stateDir, // --state.path's default directory
}

// stateDir holds the ledger of counted exits (--state.path's default); the
// only host path the exporter writes besides its trace instance.
const stateDir = "/var/lib/exit137-exporter"

// checkExporterFlags fails unless the exporter accepts args: with
// --version added, kingpin parses every flag, then prints and exits.
func checkExporterFlags(t *testing.T, where string, args []string) {
	t.Helper()
	bin := testrig.BuildBinary(t, "cmd/exit137-exporter")
	if out, err := exec.Command(bin, append(args, "--version")...).CombinedOutput(); err != nil {
		t.Errorf("%s: the exporter rejects %q: %v\n%s", where, args, err, out)
	}
}

// flagValue is the value of --name=value in args, "" when it is not there.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// checkHostPaths fails unless the exporter's args read the host's cgroup
// tree and tracefs where mounted (container path by host path) puts them.
func checkHostPaths(t *testing.T, where string, args []string, mounted map[string]string) {
	t.Helper()
	if !reflect.DeepEqual(mounted, hostMounts) {
		t.Errorf("%s: host paths mounted %v, want %v", where, mounted, hostMounts)
	}
	for flag, host := range map[string]string{"cgroup.root": "/sys/fs/cgroup", "tracefs.path": "/sys/kernel/tracing"} {
		if v := flagValue(args, flag); v != hostMounts[host] {
			t.Errorf("%s: --%s=%s, want %s, where %s is mounted", where, flag, v, hostMounts[host], host)
		}
	}
}

// need fails in CI and skips elsewhere when a tool is not installed.
func need(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		testrig.Need(t, "%s is not installed (apt-get install %s)", tool, pkg)
	}
}

// alertNames are the alerts of alerts/exit137.rules.yml.
func alertNames(t *testing.T) []string {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join(testrig.RepoRoot(), "alerts", "exit137.rules.yml"), &rules)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				names = append(names, r.Alert)
			}
		}
	}
	return names
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
