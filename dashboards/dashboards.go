// Package dashboards builds the Grafana dashboards that ship with
// exit137-exporter, as code, with github.com/grafana/grafana-foundation-sdk/go
// (Grafana's own typed builders for the dashboard JSON model; Apache-2.0, no
// dependency on Grafana itself).
//
// `go generate ./dashboards` writes overview.json and container.json next to
// this file; a test fails when they differ from what the code generates.
//
// The JSON is the classic dashboard model (schemaVersion 42, Grafana 11 and
// later), which both the import screen and file provisioning read: the data
// source is a template variable (${datasource}) and there is no __inputs
// section, which only the import screen would resolve.
package dashboards

//go:generate go run ./gen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Config holds what a user may want to change, in the manner of the
// monitoring mixins' _config.
type Config struct {
	// JobSelector picks the scrape jobs of the exporter. The job variable
	// offers only these jobs, and its "All" means all of them.
	JobSelector string
	// UIDPrefix starts every dashboard uid ("<prefix>-overview",
	// "<prefix>-container"); keep it stable, links use it.
	UIDPrefix string
	// TitlePrefix starts every dashboard title.
	TitlePrefix string
	// Tags are set on every dashboard.
	Tags []string
	// Refresh is the default refresh interval.
	Refresh string
	// TimeFrom is the start of the default time range (until now).
	TimeFrom string
	// RateInterval is the range of every rate() and increase().
	RateInterval string
	// WarningRatio and CriticalRatio are the thresholds of the ratio panels
	// (memory / limit, filesystem used); CriticalRatio matches the
	// exporter's default disk pressure threshold.
	WarningRatio, CriticalRatio float64
	// TopK is how many containers the "closest to their limit" panels show.
	TopK int
}

// DefaultConfig is the configuration of the committed JSON files.
func DefaultConfig() Config {
	return Config{
		JobSelector:   `job="exit137"`,
		UIDPrefix:     "exit137",
		TitlePrefix:   "exit137 / ",
		Tags:          []string{"exit137-exporter"},
		Refresh:       "30s",
		TimeFrom:      "now-6h",
		RateInterval:  "$__rate_interval",
		WarningRatio:  0.8,
		CriticalRatio: 0.95,
		TopK:          10,
	}
}

// OverviewUID and ContainerUID are the dashboards' uids under cfg.
func (cfg Config) OverviewUID() string  { return cfg.UIDPrefix + "-overview" }
func (cfg Config) ContainerUID() string { return cfg.UIDPrefix + "-container" }

// Files returns every dashboard, rendered, by file name.
func Files(cfg Config) (map[string][]byte, error) {
	builds := map[string]func(Config) (dashboard.Dashboard, error){
		"overview.json":  Overview,
		"container.json": Container,
	}
	out := make(map[string][]byte, len(builds))
	for name, build := range builds {
		d, err := build(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		b, err := Render(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = b
	}
	return out, nil
}

// Render is the dashboard as indented JSON, without HTML escaping (so PromQL
// keeps its > and < readable), ending in a newline.
func Render(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	// The SDK's own MarshalJSON methods escape &, < and > inside panels;
	// undo that (outside an escaped backslash) for readable PromQL and URLs.
	out := buf.Bytes()
	for htmlEscape.Match(out) { // again for adjacent ones
		out = htmlEscape.ReplaceAllFunc(out, func(m []byte) []byte {
			n := len(m)
			return append(m[:n-6:n-6], htmlUnescape[string(m[n-6:])]...)
		})
	}
	return out, nil
}

var (
	htmlEscape   = regexp.MustCompile(`(?:^|[^\\])(?:\\\\)*\\u00(?:26|3c|3e)`)
	htmlUnescape = map[string]string{`\u0026`: "&", `\u003c`: "<", `\u003e`: ">"}
)
