package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exit137-exporter/exit137-exporter/dashboards"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// promConfig is the part of prometheus.yml the checks read.
type promConfig struct {
	Alerting struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusConfig checks prometheus.yml with promtool twice: as
// docker-compose.yml lays it out (the rules beside it) and as the chain
// test and the demo run it; and that its job is the one the rules and
// dashboards select.
func TestPrometheusConfig(t *testing.T) {
	need(t, "promtool", "prometheus")
	compose := t.TempDir()
	for _, f := range []string{"deploy/prometheus.yml", "alerts/exit137.rules.yml"} {
		b, err := os.ReadFile(filepath.Join(testrig.RepoRoot(), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(compose, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testrig.Run(t, "promtool", "check", "config", filepath.Join(compose, "prometheus.yml"))

	chain, err := testrig.PrometheusConfig("127.0.0.1:"+exporterPort, "127.0.0.1:9093")
	if err != nil {
		t.Fatal(err)
	}
	chainPath := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(chainPath, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	testrig.Run(t, "promtool", "check", "config", chainPath)

	var cfg promConfig
	readYAML(t, filepath.Join(testrig.RepoRoot(), "deploy", "prometheus.yml"), &cfg)
	if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != testrig.ChainJob {
		t.Errorf("prometheus.yml: want one scrape job, %q: %+v", testrig.ChainJob, cfg.ScrapeConfigs)
	}
	if sel := dashboards.DefaultConfig().JobSelector; sel != `job="`+testrig.ChainJob+`"` {
		t.Errorf("the dashboards select %s, prometheus.yml's job is %q", sel, testrig.ChainJob)
	}
	rules, err := os.ReadFile(filepath.Join(testrig.RepoRoot(), "alerts", "exit137.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rules), `up{job="`+testrig.ChainJob+`"}`) {
		t.Errorf("the rules do not select up{job=%q}", testrig.ChainJob)
	}
}
