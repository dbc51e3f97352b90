package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

var (
	containerInfoDesc = desc("container_info", "Metadata of every container the runtime knows; always 1.", infoLabels...)
	lastExitCodeDesc  = desc("container_last_exit_code", "Exit code of the container's last exit.", containerLabels...)
	lastExitTimeDesc  = desc("container_last_exit_timestamp_seconds", "When the container last exited, in Unix seconds.", containerLabels...)
	lastKillCauseDesc = desc("container_last_kill_cause", "The verdict on the container's last exit; 1 for its cause.", append(containerLabels[:len(containerLabels):len(containerLabels)], lastKillOwnLabels...)...)
)

// containersCollector describes the containers that exist now, and their
// last exit.
type containersCollector struct {
	tracker        *tracker.Tracker
	ids            *identities
	info, lastKill labelCache
}

var (
	infoOwnLabels     = []string{"compose_project", "compose_service", "systemd_unit"}
	infoLabels        = append(containerLabels[:len(containerLabels):len(containerLabels)], infoOwnLabels...)
	lastKillOwnLabels = []string{"cause"}
)

func init() {
	registerCollector("containers", true, func(d Deps) (Collector, error) {
		return &containersCollector{tracker: d.Tracker, ids: d.identities}, nil
	})
}

func (c *containersCollector) Update(ch chan<- prometheus.Metric) error {
	for _, l := range []*labelCache{&c.info, &c.lastKill} {
		l.begin()
		defer l.end()
	}
	for id, v := range c.tracker.Views() {
		if v.Name == "" {
			continue
		}
		// The values are spelled out at each call: a slice built once
		// would be allocated for every container at every scrape.
		ident := c.ids.get(id, identityOf(id, v))
		b := make(seriesBatch, 0, 4)
		b.send(ch, containerInfoDesc, prometheus.GaugeValue, 1,
			c.info.get(id, ident, infoOwnLabels, v.ComposeProject, v.ComposeService, v.SystemdUnit))
		if v.LastExit == nil {
			continue
		}
		labels := ident.sorted[:]
		b.send(ch, lastExitCodeDesc, prometheus.GaugeValue, float64(v.LastExit.ExitCode), labels)
		b.send(ch, lastExitTimeDesc, prometheus.GaugeValue, float64(v.LastExit.Time.UnixNano())/1e9, labels)
		if v.LastCause != "" {
			b.send(ch, lastKillCauseDesc, prometheus.GaugeValue, 1,
				c.lastKill.get(id, ident, lastKillOwnLabels, string(v.LastCause)))
		}
	}
	return nil
}

// exitCodes are the exit_code label values of 0–255, made once.
var exitCodes = func() (s [256]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// exitCodeLabel is the exit_code label value.
func exitCodeLabel(code int) string {
	if code == attribution.ExitCodeUnknown {
		return "unknown" // inferred by a reconcile; Docker recorded no code for it
	}
	if code >= 0 && code < len(exitCodes) {
		return exitCodes[code]
	}
	return strconv.Itoa(code)
}
