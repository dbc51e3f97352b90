package systemd

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// associateEvery is how often the unit ↔ container association is made
// again: a unit's container is created after the unit is up.
const associateEvery = 5 * time.Second

// owner is what tells which containers a unit runs: the names its
// ExecStart/ExecStop use, and its ControlGroup.
type owner struct {
	names  []string
	cgroup string
}

// ownerOf reads a unit's owner from its type properties; ok is false when
// nothing in them can own a container.
func ownerOf(props map[string]any) (owner, bool) {
	o := owner{names: ContainerNames(append(commands(props["ExecStart"]), commands(props["ExecStop"])...)...)}
	o.cgroup, _ = props["ControlGroup"].(string)
	if o.cgroup == "/" {
		o.cgroup = ""
	}
	return o, len(o.names) > 0 || o.cgroup != ""
}

// ownsLive reports whether a unit may be named as its containers' unit
// (exit137_container_info{systemd_unit}): services, whose commands and
// cgroup are the unit's own. A slice holds many units' processes, and
// Docker's own docker-<id>.scope is the container itself.
func ownsLive(unit string) bool { return strings.HasSuffix(unit, ".service") }

// learnOwner fetches a service's commands and cgroup and keeps them, for
// the live association.
func (s *Source) learnOwner(ctx context.Context, m manager, unit string) {
	if !ownsLive(unit) {
		return
	}
	props, err := s.typeProps(ctx, m, unit)
	if err != nil {
		return
	}
	s.setOwner(unit, props)
}

func (s *Source) setOwner(unit string, props map[string]any) {
	if !ownsLive(unit) {
		return
	}
	o, ok := ownerOf(props)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.owners[unit] = o
	} else {
		delete(s.owners, unit)
	}
}

// associate names each running container's unit in the tracker: by the
// container names the units' commands use, then by the cgroup its init
// runs in. A container keeps a unit it was given while that unit still
// owns something; the /proc read of an init is made once per (id, pid).
func (s *Source) associate() {
	s.mu.Lock()
	owners := make(map[string]owner, len(s.owners))
	for u, o := range s.owners {
		owners[u] = o
	}
	s.mu.Unlock()
	if len(owners) == 0 {
		return
	}
	views := s.containers.Views()
	set := map[string]string{} // id → unit
	for unit, o := range owners {
		for _, n := range o.names {
			if id, ok := s.containers.IDByName(n); ok {
				set[id] = unit
			}
		}
	}
	seen := make(map[string]bool, len(views))
	for id, v := range views {
		if !v.Running || v.Pid <= 0 || set[id] != "" {
			continue
		}
		seen[id] = true
		paths, ok := s.initCgroups[id]
		if !ok || paths.pid != v.Pid {
			paths = initCgroups{pid: v.Pid, paths: cgroupPaths(s.opts.ProcRoot, v.Pid)}
			s.initCgroups[id] = paths
		}
		for unit, o := range owners {
			if o.cgroup != "" && paths.under(o.cgroup) {
				set[id] = unit
				break
			}
		}
	}
	for id := range s.initCgroups {
		if !seen[id] {
			delete(s.initCgroups, id)
		}
	}
	for id, unit := range set {
		if v, ok := views[id]; ok && v.SystemdUnit != unit {
			if _, still := owners[v.SystemdUnit]; v.SystemdUnit == "" || !still {
				s.containers.SetSystemdUnit(id, unit)
			}
		}
	}
}

// initCgroups are the cgroup paths of one container's init.
type initCgroups struct {
	pid   int
	paths []string
}

func (c initCgroups) under(cgroup string) bool {
	cgroup = strings.TrimSuffix(cgroup, "/")
	for _, p := range c.paths {
		if p == cgroup || strings.HasPrefix(p, cgroup+"/") {
			return true
		}
	}
	return false
}

// cgroupPaths lists the cgroup paths /proc/PID/cgroup gives, one per
// hierarchy.
func cgroupPaths(procRoot string, pid int) []string {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-id:controllers:path
		if f := strings.SplitN(sc.Text(), ":", 3); len(f) == 3 {
			out = append(out, f[2])
		}
	}
	return out
}

// expireStops drops the stop series of units systemd no longer has whose
// last stop is older than the retention: template and transient units
// would otherwise grow the series without bound.
func (s *Source) expireStops(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, at := range s.stopAt {
		if !s.graph.Known(k.Unit) && now.Sub(at) > s.opts.Retention {
			delete(s.stops, k)
			delete(s.stopAt, k)
		}
	}
}
