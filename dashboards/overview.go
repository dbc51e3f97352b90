package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// Overview is the host-wide dashboard: which containers are close to their
// memory limit, which died and why, and whether the exporter's evidence
// sources work.
func Overview(cfg Config) (dashboard.Dashboard, error) {
	g := &gen{cfg: cfg}
	ctr, host := g.ctr(), g.host()

	b := g.dashboard("Overview", cfg.OverviewUID(),
		"Containers against their memory limits, container exits by cause, and exit137-exporter's own health.").
		Link(link("Per container", cfg.ContainerUID(), "Memory, exits and verdicts of the selected containers."))

	// Memory.
	b = b.WithRow(g.row("Memory")).
		WithPanel(g.topRatio("Closest to their limit: usage",
			fmt.Sprintf("The %d containers whose cgroup memory usage (page cache included) is the largest fraction of their memory limit. "+
				"Containers without a limit are not shown. Click a bar for the per-container view.", cfg.TopK),
			usagePerLimit, 12, 8)).
		WithPanel(g.topRatio("Closest to their limit: working set",
			fmt.Sprintf("The %d containers whose working set (usage minus inactive file cache, what the kernel cannot reclaim) "+
				"is the largest fraction of their memory limit; at 100%% the kernel OOM-kills them (exit 137). "+
				"Click a bar for the per-container view.", cfg.TopK),
			workingSetPerLimit, 12, 8)).
		WithPanel(g.timeseries("Memory vs limit",
			"Working set (solid) of each container against its cgroup memory limit (dashed red). Usage is in the per-container view.",
			units.BytesIEC, 12, 9).
			Min(0).
			DataLinks(g.seriesLink()).
			WithTarget(q("A", "exit137_container_memory_working_set_bytes"+ctr, "{{name}} working set")).
			WithTarget(q("B", "exit137_container_memory_limit_bytes"+ctr, "{{name}} limit")).
			OverrideByQuery("B", limitStyle)).
		WithPanel(g.ratio("Working set / limit",
			"Working set as a fraction of the memory limit, per container with a limit. Dashed lines at the warning and critical thresholds; "+
				"the Exit137ContainerWorkingSetNearLimit alert fires above 90% for 5 minutes.",
			12, 9).
			DataLinks(g.seriesLink()).
			WithTarget(q("A", workingSetPerLimit+ctr, "{{name}}"))).
		WithPanel(g.events("Memory limit hits",
			"How often each container's cgroup hit its memory limit per interval (cgroup v1 failcnt, v2 memory.events max). "+
				"Hits without OOM kills mean the kernel reclaimed memory in time.",
			8, 8).
			WithTarget(q("A", g.sumBy("job, instance, name", "increase", "exit137_container_memory_limit_hits_total"+ctr), "{{name}}"))).
		WithPanel(g.events("OOM kills in containers",
			"Processes the kernel OOM killer killed per interval, per container cgroup (memory.events oom_kill). "+
				"A kill of PID 1 ends the container with exit 137; a kill of a child does not.",
			8, 8).
			WithTarget(q("A", g.sumBy("job, instance, name", "increase", "exit137_container_oom_kills_total"+ctr), "{{name}}"))).
		WithPanel(g.events("Kernel OOM kills by constraint",
			"OOM kills the kernel logged per interval, by constraint: memcg is a container hitting its own limit; "+
				"none means the whole host ran out of memory.",
			8, 8).
			WithTarget(q("A", g.sumBy("constraint", "increase", "exit137_kernel_oom_kills_total"+host), "{{constraint}}")))

	// Exits.
	b = b.WithRow(g.row("Exits")).
		WithPanel(g.events("Exits by cause",
			"Container exits per interval by the exporter's verdict: "+causes+". A container's first exit shows once its series existed before it "+
				"(the exporter pre-initialises the exit-137 series of every container it has seen).",
			12, 8).
			WithTarget(q("A", g.sumBy("cause", "increase", "exit137_container_exits_total"+ctr), "{{cause}}"))).
		WithPanel(g.events("Exits by exit code",
			"Container exits per interval by exit code and the signal that ended the main process (137 = SIGKILL).",
			12, 8).
			WithTarget(q("A", g.sumBy("exit_code, signal", "increase", "exit137_container_exits_total"+ctr), "{{exit_code}} ({{signal}})"))).
		WithPanel(g.recentExits("Exits in the last 10 minutes",
			"Every container exit of the last 10 minutes with its exit code, signal and cause, counted exactly (from the "+
				"recording rule the alerts use, so a container's first exit is included). "+
				"Click a row for the per-container view; run `exit137-exporter explain NAME` for the evidence.",
			24).
			DataLinks(g.rowLink())).
		WithPanel(g.events("SIGKILL senders",
			"SIGKILLs per interval by the class of their sender, from tracefs signal_generate: kernel (OOM killer), "+
				"systemd, runtime (the container runtime: dockerd, containerd, podman, conmon, runc, crun), user (a process with a login uid), other.",
			12, 8).
			WithTarget(q("A", g.sumBy("sender", "increase", "exit137_sigkills_total"+host), "{{sender}}"))).
		WithPanel(g.events("systemd propagated stops",
			"Unit stops per interval that systemd propagated from a unit they are PartOf= or BindsTo= (unit ← the unit that stopped or failed). "+
				"Such stops kill the containers those units run; change PartOf= to Wants= where that is not intended.",
			12, 8).
			WithTarget(q("A", g.sumBy("unit, partof", "increase", "exit137_systemd_partof_stops_total"+host), "{{unit}} ← {{partof}}")))

	// Kubernetes: the kills only the API tells.
	b = b.WithRow(g.row("Kubernetes: probe kills and evictions")).
		WithPanel(g.events("Probe kills",
			"Containers the kubelet killed per interval because their liveness or startup probe failed (cause probe). "+
				"A container that comes back interval after interval is in a probe-kill loop (alert Exit137ContainerProbeKillLoop). "+
				"Click a bar for the per-container view.",
			12, 8).
			DataLinks(g.seriesLink()).
			WithTarget(q("A", g.sumBy("job, instance, name", "increase", "exit137_container_exits_total"+g.ctr(`cause="probe"`)), "{{name}}"))).
		WithPanel(g.events("Evicted pods by node",
			"Pods whose containers the kubelet killed per interval to evict them under node pressure (cause eviction), per exporter, "+
				"that is per node (alert Exit137NodeEvictingPods). Containers that stopped on the SIGTERM are graceful stops, not counted.",
			12, 8).
			WithTarget(q("A",
				"count by (job, instance) (count by (job, instance, namespace, pod) ("+
					"increase(exit137_container_exits_total"+g.ctr(`cause="eviction"`)+g.ri()+") > 0))",
				"{{instance}}"))).
		WithPanel(g.recentExits("Kubernetes kills in the last 10 minutes",
			"Every kill of the last 10 minutes that the Kubernetes API explains (probe, eviction, preemption, deletion), counted exactly. "+
				"Click a row for the per-container view; `kubectl -n exit137 exec` the node's exporter pod with "+
				"`/exit137-exporter explain NAMESPACE/POD/CONTAINER` for the evidence.",
			24, `cause=~"`+kubeCauses+`"`).
			DataLinks(g.rowLink()))

	// Disk.
	b = b.WithRow(g.row("Disk pressure")).
		WithPanel(g.ratio("Filesystem space used",
			"Used space of the filesystems the exporter watches (Docker's data root, its log path, configured paths). "+
				fmt.Sprintf("Containers that die while one is above the exporter's threshold (default %.0f%%) are attributed cause disk.", cfg.CriticalRatio*100),
			12, 8).
			WithTarget(q("A", "exit137_disk_usage_ratio"+host, "{{instance}} {{path}}"))).
		WithPanel(g.ratio("Filesystem inodes used",
			"Used inodes of the watched filesystems; when none are left no file can be created even with free space.",
			12, 8).
			WithTarget(q("A", "exit137_disk_inodes_usage_ratio"+host, "{{instance}} {{path}}")))

	// Exporter health.
	b = b.WithRow(g.row("Exporter health")).
		WithPanel(g.stat("Evidence sources",
			"Whether each evidence source (docker or containerd, cgroupfs, kmsg, disk, systemd, sigtrace, kubernetes) is delivering. "+
				"A source that is down makes kills that need its evidence fall back to a weaker cause.",
			unitNone, 8, 6).
			ColorMode(common.BigValueColorModeBackground).
			Mappings(upDown("up", "down")).
			WithTarget(instant("A", "exit137_source_up"+host, "{{instance}} {{source}}"))).
		WithPanel(g.stat("Scrapes and collectors",
			"Whether Prometheus can scrape each exporter (up) and whether each of its collectors succeeded on the last scrape.",
			unitNone, 8, 6).
			ColorMode(common.BigValueColorModeBackground).
			Mappings(upDown("ok", "failing")).
			WithTarget(instant("A", "up"+host, "{{instance}} scrape")).
			WithTarget(instant("B", "exit137_scrape_collector_success"+host, "{{instance}} {{collector}}"))).
		WithPanel(g.timeseries("Collector duration",
			"How long each collector took on each scrape.",
			units.Seconds, 8, 6).
			Min(0).
			WithTarget(q("A", "exit137_scrape_collector_duration_seconds"+host, "{{instance}} {{collector}}"))).
		WithPanel(g.timeseries("Source events and errors",
			"Events each evidence source turned into evidence, and errors it met (bad lines, lost connections, failed reads), per second.",
			units.OpsPerSecond, 24, 7).
			Min(0).
			WithTarget(q("A", g.sumBy("instance, source", "rate", "exit137_source_events_total"+host), "{{instance}} {{source}} events")).
			WithTarget(q("B", g.sumBy("instance, source", "rate", "exit137_source_errors_total"+host), "{{instance}} {{source}} errors")))

	return finish(b.Build())
}
