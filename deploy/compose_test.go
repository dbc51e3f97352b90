package deploy

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// TestComposeFile loads docker-compose.yml with compose-go, the loader
// of `docker compose` itself, which validates it against the Compose
// Specification's schema; runs `docker compose config` too where the
// plugin is installed (not on Debian 12's docker.io); and checks that the
// services, mounts and provisioning agree with each other.
func TestComposeFile(t *testing.T) {
	dir := filepath.Join(testrig.RepoRoot(), "deploy")
	file := filepath.Join(dir, "docker-compose.yml")
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: file}},
	})
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		testrig.Run(t, "docker", "compose", "-f", file, "config", "--quiet")
	} else {
		t.Log("no `docker compose` plugin here: validated by compose-go alone")
	}

	mounts := map[string]map[string]string{} // service → target → source
	for name, svc := range project.Services {
		mounts[name] = map[string]string{}
		for _, v := range svc.Volumes {
			mounts[name][v.Target] = v.Source
			if v.Type != types.VolumeTypeBind || !strings.HasPrefix(v.Source, testrig.RepoRoot()+"/") {
				continue // a named volume, or the host's to have
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s, which does not exist: %v", name, v.Source, err)
			}
		}
	}
	for _, name := range []string{"exporter", "prometheus", "alertmanager", "grafana"} {
		if _, ok := project.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no service %s", name)
		}
	}

	exporter := project.Services["exporter"]
	checkExporterFlags(t, "docker-compose.yml", exporter.Command)
	bound := map[string]string{} // host path → container path
	for _, v := range exporter.Volumes {
		bound[v.Source] = v.Target
	}
	checkHostPaths(t, "docker-compose.yml", exporter.Command, bound)
	if exporter.Pid != "host" || exporter.Cgroup != "host" {
		t.Errorf("exporter: pid %q, cgroup %q; want host and host (pids in kernel records and traces are the host's)",
			exporter.Pid, exporter.Cgroup)
	}

	// Prometheus reaches the services by their compose names.
	var prom promConfig
	readYAML(t, filepath.Join(dir, "prometheus.yml"), &prom)
	for _, job := range prom.ScrapeConfigs {
		for _, sc := range job.StaticConfigs {
			checkServiceAddrs(t, project, "prometheus.yml job "+job.JobName, sc.Targets)
		}
	}
	for _, am := range prom.Alerting.Alertmanagers {
		for _, sc := range am.StaticConfigs {
			checkServiceAddrs(t, project, "prometheus.yml alertmanagers", sc.Targets)
		}
	}

	// Grafana finds the data source and the dashboards where compose puts them.
	var datasources struct {
		Datasources []struct {
			Type, URL string
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(dir, "grafana/provisioning/datasources/exit137.yml"), &datasources)
	for _, ds := range datasources.Datasources {
		u, err := url.Parse(ds.URL)
		if err != nil || ds.Type != "prometheus" {
			t.Errorf("grafana data source %+v: want a prometheus URL (%v)", ds, err)
			continue
		}
		checkServiceAddrs(t, project, "grafana data source", []string{u.Host})
	}
	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(dir, "grafana/provisioning/dashboards/exit137.yml"), &providers)
	dashboards := filepath.Join(testrig.RepoRoot(), "dashboards")
	if len(providers.Providers) != 1 || mounts["grafana"][providers.Providers[0].Options.Path] != dashboards {
		t.Errorf("grafana's dashboard provider reads %+v; compose mounts %s at %v", providers.Providers, dashboards, mounts["grafana"])
	}
	if mounts["grafana"]["/etc/grafana/provisioning"] != filepath.Join(dir, "grafana", "provisioning") {
		t.Errorf("grafana: deploy/grafana/provisioning is not mounted at /etc/grafana/provisioning: %v", mounts["grafana"])
	}
}

// checkServiceAddrs fails for an address whose host is not a service of
// the project.
func checkServiceAddrs(t *testing.T, project *types.Project, where string, addrs []string) {
	t.Helper()
	for _, addr := range addrs {
		host, _, err := net.SplitHostPort(addr)
		if _, ok := project.Services[host]; err != nil || !ok {
			t.Errorf("%s: %s is not host:port of a compose service (%v)", where, addr, err)
		}
	}
}
