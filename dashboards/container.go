package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// Container is the per-container dashboard: the selected containers'
// memory against their limit, their exits and the exporter's verdicts.
func Container(cfg Config) (dashboard.Dashboard, error) {
	g := &gen{cfg: cfg}
	ctr := g.ctr()

	b := g.dashboard("Per container", cfg.ContainerUID(),
		"Memory against the limit, exits and kill verdicts of the selected containers.").
		Link(link("Overview", cfg.OverviewUID(), "All containers of the selected hosts, disk pressure and exporter health."))

	// Memory.
	b = b.WithRow(g.row("Memory")).
		WithPanel(g.ratioStat("Working set / limit",
			"Current working set (usage minus inactive file cache) as a fraction of the memory limit; at 100% the kernel OOM-kills the container.",
			workingSetPerLimit, 6, 5)).
		WithPanel(g.ratioStat("Usage / limit",
			"Current cgroup memory usage, page cache included, as a fraction of the memory limit.",
			usagePerLimit, 6, 5)).
		WithPanel(g.stat("Memory limit",
			"The cgroup memory limit (docker run --memory). No value: the container has no limit.",
			units.BytesIEC, 6, 5).
			WithTarget(instant("A", "exit137_container_memory_limit_bytes"+ctr, "{{name}}"))).
		WithPanel(g.stat("Peak usage",
			"The highest memory usage the cgroup has reached (v1 max_usage_in_bytes, v2 memory.peak).",
			units.BytesIEC, 6, 5).
			WithTarget(instant("A", "exit137_container_memory_max_usage_bytes"+ctr, "{{name}}"))).
		WithPanel(g.timeseries("Memory vs limit",
			"Usage (page cache included), working set and peak usage against the cgroup memory limit (dashed red).",
			units.BytesIEC, 24, 9).
			Min(0).
			WithTarget(q("A", "exit137_container_memory_usage_bytes"+ctr, "{{name}} usage")).
			WithTarget(q("B", "exit137_container_memory_working_set_bytes"+ctr, "{{name}} working set")).
			WithTarget(q("C", "exit137_container_memory_max_usage_bytes"+ctr, "{{name}} peak")).
			WithTarget(q("D", "exit137_container_memory_limit_bytes"+ctr, "{{name}} limit")).
			OverrideByQuery("D", limitStyle)).
		WithPanel(g.ratio("Memory / limit",
			"Usage and working set as fractions of the memory limit, with the warning and critical thresholds dashed.",
			12, 8).
			WithTarget(q("A", usagePerLimit+ctr, "{{name}} usage")).
			WithTarget(q("B", workingSetPerLimit+ctr, "{{name}} working set"))).
		WithPanel(g.events("Limit hits and OOM kills",
			"Per interval: how often the cgroup hit its memory limit, and how many of its processes the kernel OOM killer killed.",
			12, 8).
			WithTarget(q("A", g.sumBy("job, instance, name", "increase", "exit137_container_memory_limit_hits_total"+ctr), "{{name}} limit hits")).
			WithTarget(q("B", g.sumBy("job, instance, name", "increase", "exit137_container_oom_kills_total"+ctr), "{{name}} OOM kills")))

	// Exits and verdicts.
	b = b.WithRow(g.row("Exits and verdicts")).
		WithPanel(g.stat("Last kill cause",
			"The exporter's verdict on the container's last SIGKILL: "+causes+". "+
				"Run `exit137-exporter explain NAME` or open /explain for the evidence behind it.",
			unitNone, 8, 5).
			TextMode(common.BigValueTextModeName).
			WithTarget(instant("A", "exit137_container_last_kill_cause"+ctr+" == 1", "{{name}}: {{cause}}"))).
		WithPanel(g.stat("Last exit code",
			"Exit code of the container's last exit; 137 means its main process got SIGKILL.",
			unitNone, 8, 5).
			WithTarget(instant("A", "exit137_container_last_exit_code"+ctr, "{{name}}"))).
		WithPanel(g.stat("Last exit",
			"When the container last exited (UTC).",
			units.DatetimeISO, 8, 5).
			WithTarget(instant("A", "exit137_container_last_exit_timestamp_seconds"+ctr+" * 1000", "{{name}}"))).
		WithPanel(g.events("Exits by cause",
			"Exits per interval by the exporter's verdict: "+causes+".",
			12, 8).
			WithTarget(q("A", g.sumBy("name, cause", "increase", "exit137_container_exits_total"+ctr), "{{name}} {{cause}}"))).
		WithPanel(g.events("Exits by exit code",
			"Exits per interval by exit code and the signal that ended the main process.",
			12, 8).
			WithTarget(q("A", g.sumBy("name, exit_code, signal", "increase", "exit137_container_exits_total"+ctr), "{{name}} {{exit_code}} ({{signal}})"))).
		WithPanel(g.recentExits("Verdicts in the last 10 minutes",
			"Every exit of the selected containers in the last 10 minutes with its exit code, signal and cause, counted exactly "+
				"(the recording rule the alerts use).",
			12)).
		WithPanel(g.labelTable("Container",
			"Identity of the selected containers: id, image, Kubernetes namespace, pod and container, Compose project and service, "+
				"and the systemd unit that runs it, if any.",
			unitNone, 12, 7, map[string]string{"Value": "info"}).
			WithTarget(instant("A", "exit137_container_info"+ctr, "").Format(prometheus.PromQueryFormatTable)))

	return finish(b.Build())
}
