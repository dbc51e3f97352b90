package systemd

import (
	"context"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// handle applies one signal. It returns an error when the session must
// start over: the manager left the bus or was replaced.
func (s *Source) handle(ctx context.Context, m manager, sig *godbus.Signal) error {
	if len(sig.Body) == 0 {
		return nil
	}
	switch sig.Name {
	case "org.freedesktop.DBus.NameOwnerChanged":
		return errors.New("the systemd manager left or changed on the bus")
	case managerIface + ".Reloading":
		if reloading, _ := sig.Body[0].(bool); !reloading {
			// daemon-reload changes edges: load them again.
			return s.load(ctx, m)
		}
	case managerIface + ".UnitRemoved":
		if name, ok := sig.Body[0].(string); ok {
			s.mu.Lock()
			s.graph.Removed(name, s.now())
			delete(s.owners, name)
			s.mu.Unlock()
		}
	case "org.freedesktop.DBus.Properties.PropertiesChanged":
		s.unitChanged(ctx, m, sig)
	}
	return nil
}

// unitChanged records a unit's state change and, when it is the start of
// a stop of a unit that follows others, waits for its parents' signals.
func (s *Source) unitChanged(ctx context.Context, m manager, sig *godbus.Signal) {
	name, ok := unitName(sig.Path)
	if !ok || len(sig.Body) < 2 {
		return
	}
	changed, _ := sig.Body[1].(map[string]godbus.Variant)
	at := s.now()
	sample := Sample{At: at}
	sample.Active, _ = variant[string](changed, "ActiveState")
	sample.Sub, _ = variant[string](changed, "SubState")
	if job, ok := variant[[]any](changed, "Job"); ok && len(job) == 2 {
		sample.Job, _ = job[0].(uint32)
	}
	if sample.Active == "" {
		return
	}

	s.mu.Lock()
	known := s.graph.Known(name)
	s.mu.Unlock()
	if !known {
		if d, err := s.fetchDeps(ctx, m, name); err == nil {
			s.mu.Lock()
			s.graph.SetDeps(name, d)
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	history := s.graph.History(name)
	stopped := s.graph.Observe(name, sample)
	parents := s.graph.Parents(name)
	s.mu.Unlock()
	if sample.up() && (len(history) == 0 || !history[len(history)-1].up()) {
		// Up (again): its commands and cgroup may be new.
		s.learnOwner(ctx, m, name)
		s.associate()
	}
	if !stopped || len(parents) == 0 {
		return
	}
	st := s.resolve(ctx, m, name, at, parents)
	s.after(SettleDelay, func() { s.decide(st) })
}

// resolve gathers, at the stop, what the decision needs later: the
// containers the unit owns (a --rm container may be gone by then) and
// the parents' Restart= settings.
func (s *Source) resolve(ctx context.Context, m manager, unit string, at time.Time, parents []Edge) stop {
	st := stop{unit: unit, at: at, restart: map[string]string{}}
	for _, e := range parents {
		if props, err := s.typeProps(ctx, m, e.Parent); err == nil {
			st.restart[e.Parent], _ = props["Restart"].(string)
		}
	}
	props, err := s.typeProps(ctx, m, unit)
	if err != nil {
		return st
	}
	cgroup, _ := props["ControlGroup"].(string)
	names := ContainerNames(append(commands(props["ExecStart"]), commands(props["ExecStop"])...)...)
	st.containers = s.owned(names, cgroup)
	s.setOwner(unit, props)
	return st
}

func (s *Source) typeProps(ctx context.Context, m manager, unit string) (map[string]any, error) {
	t, ok := unitType(unit)
	if !ok {
		return nil, errors.New("unit type has no processes")
	}
	call, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return m.GetUnitTypePropertiesContext(call, unit, t)
}

// unitType is the D-Bus interface suffix of unit types that run
// processes in a cgroup of their own.
func unitType(unit string) (string, bool) {
	switch ext := filepath.Ext(unit); ext {
	case ".service", ".scope", ".slice", ".socket", ".mount", ".swap":
		return strings.ToUpper(ext[1:2]) + ext[2:], true
	}
	return "", false
}

// commands reads an Exec* property, a(sasbttttuii): per command its path,
// argv and status. The path replaces argv[0], which may differ (@).
func commands(v any) [][]string {
	list, _ := v.([][]any)
	var out [][]string
	for _, c := range list {
		if len(c) < 2 {
			continue
		}
		path, _ := c[0].(string)
		argv, _ := c[1].([]string)
		if path == "" || len(argv) == 0 {
			continue
		}
		out = append(out, append([]string{path}, argv[1:]...))
	}
	return out
}

func variant[T any](m map[string]godbus.Variant, key string) (T, bool) {
	v, ok := m[key]
	if !ok {
		var zero T
		return zero, false
	}
	t, ok := v.Value().(T)
	return t, ok
}

// unitName undoes systemd's object path escaping (_XX for any byte that
// is not alphanumeric) of /org/freedesktop/systemd1/unit/NAME.
func unitName(path godbus.ObjectPath) (string, bool) {
	escaped, ok := strings.CutPrefix(string(path), unitPrefix)
	if !ok || escaped == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(escaped); i++ {
		if escaped[i] == '_' && i+2 < len(escaped) {
			if c, err := hex.DecodeString(escaped[i+1 : i+3]); err == nil {
				b.Write(c)
				i += 2
				continue
			}
		}
		b.WriteByte(escaped[i])
	}
	return b.String(), true
}
