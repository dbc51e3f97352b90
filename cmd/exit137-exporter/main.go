// Command exit137-exporter serves Prometheus metrics that say how close
// each container is to its memory limit, every exit, and why each SIGKILL
// happened; "explain" prints the evidence for one container.
package main

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
)

const exporterName = "exit137-exporter"

// The host's filesystems, as node_exporter names them: a containerised
// exporter sees them where they are mounted. The pids in kernel records
// and traces are the host's, so /proc must be the host's: run the
// container with --pid host (its /proc is then the host's), or mount the
// host's /proc elsewhere and point --path.procfs at it.
var (
	procfsPath = kingpin.Flag("path.procfs", "The host's procfs: where the pids of kernel records and SIGKILL traces are looked up.").
			Default("/proc").String()
	sysfsPath = kingpin.Flag("path.sysfs", "The host's sysfs: --cgroup.root and --tracefs.path default to under it.").
			Default("/sys").String()
	rootfsPath = kingpin.Flag("path.rootfs", "The host's root filesystem: watched disk paths (host paths, as Docker reports its data root) are measured under it.").
			Default("/").String()
)

func main() {
	runtime.MemProfileRate = 0 // until the profiler is served (pprof.go)
	app := kingpin.CommandLine
	app.Name = exporterName
	app.Help = "Why do my containers die with exit code 137? Memory vs limit, every exit, and the cause of every SIGKILL."
	app.Version(version.Print(exporterName))
	app.HelpFlag.Short('h')

	serveCmd := app.Command("serve", "Run the exporter (the default).").Default()
	cfg := serveConfig{
		web:            kingpinflag.AddFlags(serveCmd, ":9137"),
		metricsPath:    serveCmd.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String(),
		disableExpMets: serveCmd.Flag("web.disable-exporter-metrics", "Exclude metrics about the exporter itself (go_*, process_*).").Bool(),
		maxRequests:    serveCmd.Flag("web.max-requests", "Maximum number of parallel scrape requests. 0 disables the limit.").Default("40").Int(),
		dockerHost:     serveCmd.Flag("docker.host", "Docker daemon address (default: $DOCKER_HOST or the local socket).").Envar("DOCKER_HOST").String(),
		dockerOff:      serveCmd.Flag("docker.disable", "Do not connect to Docker (memory series then carry no names).").Bool(),
		cgroupRoot:     serveCmd.Flag("cgroup.root", "Where the cgroup filesystem is mounted (default: <path.sysfs>/fs/cgroup).").String(),
		kmsgPath:       serveCmd.Flag("kmsg.path", "Kernel log device to read OOM kills from; empty disables the source.").Default("/dev/kmsg").String(),
		diskPaths:      serveCmd.Flag("disk.path", "A filesystem path whose exhaustion can kill containers (repeatable); Docker's data root is always watched.").Strings(),
		diskThreshold:  serveCmd.Flag("disk.threshold", "Used ratio at or above which a watched filesystem is under pressure.").Default("0.95").Float64(),
		settle:         serveCmd.Flag("attribution.settle", "How long after a death to wait for late evidence before deciding.").Default("2s").Duration(),
		window:         serveCmd.Flag("attribution.window", "How far before a death evidence may lie.").Default("30s").Duration(),
		retention:      serveCmd.Flag("exits.retention", "How long a (name, image) set of exit series, and a systemd unit's PartOf= stop series, stay after no container (unit) of it exists and it last counted.").Default("1h").Duration(),
		statePath:      serveCmd.Flag("state.path", "File that keeps which exits were counted across exporter restarts (a volume in a container); empty keeps nothing.").Default("/var/lib/exit137-exporter/state.json").String(),
		logConfig:      &promslog.Config{},
	}

	explainCmd := app.Command("explain", "Explain why a container exited: from a running exporter, or after the fact from what the host still has.")
	ex := explainConfig{
		target:     explainCmd.Arg("container", "Container name or id.").Required().String(),
		url:        explainCmd.Flag("exporter.url", "The running exporter to ask.").Default("http://127.0.0.1:9137").String(),
		dockerHost: explainCmd.Flag("docker.host", "Docker daemon address for the after-the-fact diagnosis.").Envar("DOCKER_HOST").String(),
		kmsgPath:   explainCmd.Flag("kmsg.path", "Kernel log to search after the fact.").Default("/dev/kmsg").String(),
		diskPaths:  explainCmd.Flag("disk.path", "Extra filesystem paths to check after the fact.").Strings(),
		threshold:  explainCmd.Flag("disk.threshold", "Used ratio at or above which a filesystem is under pressure.").Default("0.95").Float64(),
		timeout:    explainCmd.Flag("timeout", "How long to wait for the exporter.").Default("3s").Duration(),
	}

	flag.AddFlags(app, cfg.logConfig)
	cmd := kingpin.MustParse(app.Parse(os.Args[1:]))
	logger := promslog.New(cfg.logConfig)

	var err error
	switch cmd {
	case serveCmd.FullCommand():
		err = serve(cfg, logger)
	case explainCmd.FullCommand():
		err = explain(ex, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, exporterName+":", err)
		os.Exit(1)
	}
}

// explainConfig holds the explain command's flags.
type explainConfig struct {
	target, url, dockerHost, kmsgPath *string
	diskPaths                         *[]string
	threshold                         *float64
	timeout                           *time.Duration
}
