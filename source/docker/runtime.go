package docker

import (
	"context"
	"strings"
	"time"
)

// The runtimes that serve the Docker Engine API.
const (
	RuntimeDocker = "docker"
	RuntimePodman = "podman"
)

// Runtime is what answers on the socket, from its version answer.
type Runtime struct {
	// Name is RuntimeDocker or RuntimePodman.
	Name string
	// Version is the engine's own version (dockerd's, or Podman's).
	Version string
	// APIVersion is the Docker API version it serves.
	APIVersion string
}

// Runtime returns what this source found on its latest connection.
func (s *Source) Runtime() (Runtime, bool) {
	if rt := s.runtime.Load(); rt != nil {
		return *rt, true
	}
	return Runtime{}, false
}

// RuntimeOf reads the version answer. Podman names its engine component
// "Podman Engine" (and sends Libpod-Api-Version); dockerd names it
// "Engine", and its platform "Docker Engine - Community" on Docker's own
// builds (empty on Debian's).
func RuntimeOf(v Version) Runtime {
	rt := Runtime{Name: RuntimeDocker, Version: v.Version, APIVersion: v.APIVersion}
	if strings.Contains(strings.ToLower(v.Platform.Name), "podman") {
		rt.Name = RuntimePodman
	}
	for _, c := range v.Components {
		switch {
		case strings.Contains(strings.ToLower(c.Name), "podman"):
			rt.Name, rt.Version = RuntimePodman, c.Version
		case c.Name == "Engine" && rt.Name == RuntimeDocker:
			rt.Version = c.Version
		}
	}
	return rt
}

// detectRuntime asks the socket what it is, logs it when it changes
// (first connection, or dockerd replaced by podman behind the same path)
// and keeps it. A failed answer keeps the previous one; with none it is
// taken for Docker.
func (s *Source) detectRuntime(ctx context.Context) Runtime {
	v, err := s.client.Version(ctx)
	if err != nil {
		s.logger.Warn("container runtime version not answered", "evidence_source", s.health.Name(), "err", err)
		if rt, ok := s.Runtime(); ok {
			return rt
		}
		return Runtime{Name: RuntimeDocker}
	}
	rt := RuntimeOf(v)
	if was := s.runtime.Swap(&rt); was == nil || *was != rt {
		s.logger.Info("container runtime", "evidence_source", s.health.Name(),
			"runtime", rt.Name, "version", rt.Version, "api_version", rt.APIVersion)
	}
	return rt
}

// podmanUntilLead is how far ahead a drain's until is set on Podman.
// Podman (4.3, file and journald loggers alike) reads until as the wall
// time at which to stop reading its log, not only as a filter on the
// events' times: an until already past stops the read at once, and the
// replay comes back empty or cut short (measured: 0 or 1 of 56 events).
// Set a little ahead, the read of the log finishes first and the filter
// still ends the replay at until.
const podmanUntilLead = 2 * time.Second

// drainEnd is the until of a session's drain, and where its live stream
// starts: now on Docker; on Podman now plus podmanUntilLead, so the drain
// takes that long and the live stream starts where it ended.
func drainEnd(rt Runtime, now time.Time) time.Time { return rt.ReplayUntil(now, now) }

// ReplayUntil is the until to ask this runtime for, to replay its events
// up to until: until itself on Docker; on Podman no earlier than
// podmanUntilLead after now, or the replay ends before it began.
func (rt Runtime) ReplayUntil(until, now time.Time) time.Time {
	if lead := now.Add(podmanUntilLead); rt.Name == RuntimePodman && until.Before(lead) {
		return lead
	}
	return until
}

// podmanEvent reports whether an event came from Podman's compatible API:
// it stamps every container event with podId and containerExitCode, which
// dockerd never sets.
func podmanEvent(m Message) bool {
	_, pod := m.Actor.Attributes["podId"]
	_, code := m.Actor.Attributes["containerExitCode"]
	return pod && code
}
