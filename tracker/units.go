package tracker

import "time"

// IDByName returns the id of the container called name (a leading slash
// is ignored), preferring a running one when a dead one of the same name
// is still known.
func (t *Tracker) IDByName(name string) (string, bool) {
	if len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	found := ""
	for id, c := range t.containers {
		if c.Name != name {
			continue
		}
		if c.running {
			return id, true
		}
		found = id
	}
	return found, found != ""
}

// ContainerOfInit returns the running container whose init has the host
// pid pid: a killed init may be reaped before its cgroup can be read. A
// stopped container's pid may have been reused by now, so it maps nothing.
func (t *Tracker) ContainerOfInit(pid int) (string, bool) {
	if pid <= 0 {
		return "", false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, c := range t.containers {
		if c.running && c.Pid == pid {
			return id, true
		}
	}
	return "", false
}

// SetSystemdUnit records the systemd unit that owns a known container (as
// the systemd source associates them); an unknown id is ignored, so that
// a late association does not bring back a removed container.
func (t *Tracker) SetSystemdUnit(id, unit string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.containers[id]; ok && unit != "" {
		c.SystemdUnit = unit
	}
}

// Retention is how long series of things that no longer exist are kept
// (--exits.retention); the systemd source expires its stop series by it.
func (t *Tracker) Retention() time.Duration { return t.cfg.Retention }
