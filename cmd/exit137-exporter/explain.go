package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/source/disk"
	"github.com/exit137-exporter/exit137-exporter/source/docker"
	"github.com/exit137-exporter/exit137-exporter/source/kmsg"
)

// afterTheFactWindow is how far before a death the after-the-fact
// diagnosis looks; it matches the exporter's default window.
const afterTheFactWindow = 30 * time.Second

// explain prints why a container exited: the live verdicts of a running
// exporter when one answers, otherwise a diagnosis from what the host
// still holds, with what it could not see.
func explain(cfg explainConfig, out io.Writer) error {
	verdicts, err := fetchVerdicts(*cfg.url, *cfg.target, *cfg.timeout)
	if err == nil && len(verdicts) > 0 {
		fmt.Fprintf(out, "Live verdicts from the exporter at %s (newest first):\n\n", *cfg.url)
		for i, v := range verdicts {
			if i == 5 {
				fmt.Fprintf(out, "(%d older verdicts: see %s/explain?container=%s)\n", len(verdicts)-5, *cfg.url, url.QueryEscape(*cfg.target))
				break
			}
			printVerdict(out, v)
		}
		return nil
	}
	if err != nil {
		fmt.Fprintf(out, "No running exporter answered at %s (%v).\n", *cfg.url, err)
	} else {
		fmt.Fprintf(out, "The exporter at %s has no verdict for %q (it knows only exits since it started).\n", *cfg.url, *cfg.target)
	}
	fmt.Fprintf(out, "Diagnosing after the fact from what the host still holds.\n\n")
	return afterTheFact(cfg, out)
}

func fetchVerdicts(base, target string, timeout time.Duration) ([]attribution.Verdict, error) {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(strings.TrimRight(base, "/") + "/explain?container=" + url.QueryEscape(target))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /explain: %s", resp.Status)
	}
	var body explainResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET /explain: %w", err)
	}
	return body.Verdicts, nil
}

func printVerdict(out io.Writer, v attribution.Verdict) {
	id := v.Exit.ContainerID
	if len(id) > 12 {
		id = id[:12]
	}
	fmt.Fprintf(out, "Container %s (%s), image %s\n", v.Exit.Name, id, v.Exit.Image)
	fmt.Fprintf(out, "  exited   %s with code %d (signal %s)\n", v.Exit.Time.UTC().Format("2006-01-02 15:04:05.000 MST"), v.Exit.ExitCode, v.Signal)
	fmt.Fprintf(out, "  cause    %s (%s)\n  why      %s\n", v.Cause, strengthNote(v.Strength), v.Summary)
	if len(v.Evidence) == 0 {
		fmt.Fprintf(out, "  evidence none\n\n")
		return
	}
	fmt.Fprintf(out, "  evidence (time relative to the exit):\n")
	for _, e := range v.Evidence {
		mark := ""
		if e.Decisive {
			mark = "  <- decides"
		}
		fmt.Fprintf(out, "    %+8.3fs  %-8s  %-22s %-8s  %s%s\n", e.Offset.Seconds(), e.Source, e.Kind, e.Strength, e.Detail, mark)
	}
	fmt.Fprintln(out)
}

// strengthNote says what a verdict's strength means, for a reader.
func strengthNote(s attribution.Strength) string {
	switch s {
	case attribution.StrengthDecisive:
		return "decisive: the kill of the init is traced to its sender by pid"
	case attribution.StrengthStrong:
		return "strong: events about this container at this death, no pid to match"
	case attribution.StrengthWeak:
		return "weak: a coincidence, a sticky flag or nothing decides it"
	}
	return "strength not given"
}

// afterTheFact rebuilds the evidence from docker inspect, the daemon's
// in-memory event buffer, the kernel ring buffer and disk usage now.
func afterTheFact(cfg explainConfig, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc, err := docker.NewClient(*cfg.dockerHost)
	if err != nil {
		return err
	}
	defer dc.Close()
	info, err := dc.ContainerInspect(ctx, *cfg.target)
	if err != nil {
		return fmt.Errorf("docker inspect %s: %w (a removed container leaves nothing to inspect; run the exporter to keep its verdicts)", *cfg.target, err)
	}
	if info.State == nil || info.State.Running || info.State.FinishedAt == "" || strings.HasPrefix(info.State.FinishedAt, "0001") {
		fmt.Fprintf(out, "Container %s is running or has never exited: nothing to explain.\n", *cfg.target)
		return nil
	}
	finished, _ := time.Parse(time.RFC3339Nano, info.State.FinishedAt)
	exit := attribution.Exit{
		ContainerID: info.ID, Name: strings.TrimPrefix(info.Name, "/"), ExitCode: info.State.ExitCode,
		Time: finished, OOMKilled: info.State.OOMKilled,
	}
	if info.Config != nil {
		exit.Image = info.Config.Image
	}

	var evidence []attribution.Evidence
	var unseen []string
	ev, err := dockerEventHistory(ctx, dc, info.ID, finished)
	evidence = append(evidence, ev...) // what was read before an error is evidence still
	switch {
	case err != nil:
		unseen = append(unseen, "Docker events ("+err.Error()+")")
	case len(ev) == 0:
		unseen = append(unseen, "runtime kill/stop/oom events: none for this container remain (dockerd keeps only its last 256 events in memory)")
	}
	kernel, err := kmsg.History(*cfg.kmsgPath, info.ID)
	if err != nil {
		unseen = append(unseen, "the kernel log ("+err.Error()+")")
	}
	evidence = append(evidence, kernel...)

	if dinfo, err := dc.Info(ctx); err == nil && dinfo.DockerRootDir != "" {
		*cfg.diskPaths = append(*cfg.diskPaths, dinfo.DockerRootDir)
	}
	d := disk.New(*cfg.diskPaths, *cfg.threshold, source.NewRegistry().Source("disk"), slog.New(slog.DiscardHandler))
	if time.Since(finished) <= afterTheFactWindow {
		evidence = append(evidence, d.Pressure(finished)...)
	} else {
		unseen = append(unseen, "disk usage at the death (only today's usage can be measured: see below)")
	}
	unseen = append(unseen, "systemd unit stops and signal senders (only a running exporter records them)")

	v := attribution.Decide(exit, evidence, afterTheFactWindow)
	printVerdict(out, v)
	fmt.Fprintf(out, "Could not see after the fact:\n")
	for _, u := range unseen {
		fmt.Fprintf(out, "  - %s\n", u)
	}
	fmt.Fprintf(out, "Disk usage now:\n")
	for _, u := range d.Usage() {
		if u.Err != nil {
			fmt.Fprintf(out, "  %s: %v\n", u.Path, u.Err)
			continue
		}
		fmt.Fprintf(out, "  %s: %.1f%% of space, %.1f%% of inodes used\n", u.Path, u.UsedRatio*100, u.InodesUsedRatio*100)
	}
	if v.Cause == attribution.CauseUnknown {
		fmt.Fprintf(out, "\"unknown\" here means the host kept no evidence, not that there was none: run the exporter to catch the next one.\n")
	}
	return nil
}

// dockerEventHistory asks the daemon for the container's events around
// the death; the daemon replays what its in-memory buffer still holds.
// A line that is no event is skipped, and said after the others.
func dockerEventHistory(ctx context.Context, dc *docker.Client, id string, died time.Time) ([]attribution.Evidence, error) {
	since, until := died.Add(-afterTheFactWindow), died.Add(attribution.ClockSkew+time.Second)
	if v, err := dc.Version(ctx); err == nil {
		until = docker.RuntimeOf(v).ReplayUntil(until, time.Now())
	}
	stream, err := dc.Events(ctx, docker.EventOptions{
		Since:   fmt.Sprint(since.Unix()),
		Until:   fmt.Sprint(until.Unix()),
		Filters: map[string][]string{"container": {id}},
	})
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	var out []attribution.Evidence
	var malformed error
	for {
		m, err := stream.Next()
		var bad *docker.MalformedEventError
		switch {
		case err == nil:
			if e, ok := docker.Evidence(m); ok {
				out = append(out, e)
			}
		case errors.As(err, &bad):
			if malformed == nil {
				malformed = err
			}
		default:
			sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
			if errors.Is(err, io.EOF) {
				return out, malformed
			}
			return out, err
		}
	}
}
