package deploy

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// TestAlertmanagerConfig checks alertmanager.yml with amtool, and that
// every alert name its routes and inhibitions match is one of the rules'.
func TestAlertmanagerConfig(t *testing.T) {
	need(t, "amtool", "prometheus-alertmanager")
	path := filepath.Join(testrig.RepoRoot(), "deploy", "alertmanager.yml")
	testrig.Run(t, "amtool", "check-config", path)

	var cfg struct {
		InhibitRules []struct {
			Source []string `yaml:"source_matchers"`
			Target []string `yaml:"target_matchers"`
		} `yaml:"inhibit_rules"`
	}
	readYAML(t, path, &cfg)
	alerts := alertNames(t)
	matcher := regexp.MustCompile(`^alertname\s*(=~|=)\s*"?([^"]*)"?$`)
	for _, rule := range cfg.InhibitRules {
		for _, m := range append(rule.Source, rule.Target...) {
			parts := matcher.FindStringSubmatch(strings.TrimSpace(m))
			if parts == nil {
				continue // not about alert names
			}
			pattern := regexp.QuoteMeta(parts[2])
			if parts[1] == "=~" {
				pattern = parts[2]
			}
			for _, alt := range strings.Split(pattern, "|") {
				if !matchesAny(regexp.MustCompile("^(?:"+alt+")$"), alerts) {
					t.Errorf("alertmanager.yml matcher %q: %q matches no alert of the rules", m, alt)
				}
			}
		}
	}
}

func matchesAny(re *regexp.Regexp, names []string) bool {
	for _, n := range names {
		if re.MatchString(n) {
			return true
		}
	}
	return false
}
