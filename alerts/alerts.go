// Package alerts ships exit137-exporter's Prometheus rules: the alerting and
// recording rules in exit137.rules.yml and their promtool unit tests in
// tests/. The Go tests run promtool on them, lint them by the monitoring
// mixins' guidelines, and check every PromQL expression here and in the
// dashboards against the metrics the exporter exposes.
package alerts

import _ "embed"

// Rules is exit137.rules.yml, for programs that install or serve the rules.
//
//go:embed exit137.rules.yml
var Rules []byte

// RunbookBaseURL is where every alert's runbook_url points, followed by
// "#" and the lowercased alert name: a section of docs/runbook.md.
const RunbookBaseURL = "https://github.com/exit137-exporter/exit137-exporter/blob/main/docs/runbook.md"
