package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

const (
	managerName  = "org.freedesktop.systemd1"
	managerPath  = godbus.ObjectPath("/org/freedesktop/systemd1")
	managerIface = "org.freedesktop.systemd1.Manager"
	unitIface    = "org.freedesktop.systemd1.Unit"
	unitPrefix   = "/org/freedesktop/systemd1/unit/"
	// signalBuffer holds a daemon-reload's or a mass stop's burst while
	// the graph is being reloaded.
	signalBuffer = 4096
	callTimeout  = 5 * time.Second
)

// manager is the part of go-systemd's connection the source calls.
type manager interface {
	ListUnitsContext(ctx context.Context) ([]sdbus.UnitStatus, error)
	GetUnitPropertiesContext(ctx context.Context, unit string) (map[string]any, error)
	GetUnitTypePropertiesContext(ctx context.Context, unit, unitType string) (map[string]any, error)
}

// busAddress resolves the bus to dial. The user bus is never
// autolaunched: a missing session bus is an error, not a new daemon.
func busAddress(bus string) (string, error) {
	switch bus {
	case SystemBus:
		if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
			return a, nil
		}
		return "unix:path=/var/run/dbus/system_bus_socket", nil
	case UserBus:
		if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
			return a, nil
		}
		if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
			return "unix:path=" + filepath.Join(dir, "bus"), nil
		}
		return "", errors.New("no session bus: DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR are unset")
	}
	return "", fmt.Errorf("unknown bus %q (want %s or %s)", bus, SystemBus, UserBus)
}

func dial(ctx context.Context, bus string) (*godbus.Conn, error) {
	addr, err := busAddress(bus)
	if err != nil {
		return nil, err
	}
	conn, err := godbus.Dial(addr, godbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	// EXTERNAL with the numeric uid needs no user lookup (static binary).
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// session is one connection: subscribe, load the graph, then follow the
// signals until the bus or the manager goes away.
func (s *Source) session(ctx context.Context) (subscribed bool, err error) {
	methods, err := sdbus.NewConnection(func() (*godbus.Conn, error) { return dial(ctx, s.opts.Bus) })
	if err != nil {
		return false, err
	}
	defer methods.Close()
	signals, err := dial(ctx, s.opts.Bus)
	if err != nil {
		return false, err
	}
	defer signals.Close()
	ch := make(chan *godbus.Signal, signalBuffer)
	signals.Signal(ch)
	for _, match := range [][]godbus.MatchOption{
		{godbus.WithMatchSender(managerName), godbus.WithMatchInterface(managerIface), godbus.WithMatchMember("Reloading")},
		{godbus.WithMatchSender(managerName), godbus.WithMatchInterface(managerIface), godbus.WithMatchMember("UnitRemoved")},
		{godbus.WithMatchSender(managerName), godbus.WithMatchInterface("org.freedesktop.DBus.Properties"),
			godbus.WithMatchMember("PropertiesChanged"), godbus.WithMatchArg(0, unitIface)},
		{godbus.WithMatchSender("org.freedesktop.DBus"), godbus.WithMatchMember("NameOwnerChanged"),
			godbus.WithMatchArg(0, managerName)},
	} {
		if err := signals.AddMatchSignalContext(ctx, match...); err != nil {
			return false, fmt.Errorf("add match: %w", err)
		}
	}
	// Without a subscriber the manager sends no change signals.
	call, cancel := context.WithTimeout(ctx, callTimeout)
	err = signals.Object(managerName, managerPath).CallWithContext(call, managerIface+".Subscribe", 0).Err
	cancel()
	if err != nil {
		return false, fmt.Errorf("subscribe to the systemd manager: %w", err)
	}
	// A new session may face a new manager: start from a clean graph.
	s.mu.Lock()
	s.graph = NewGraph()
	s.mu.Unlock()
	if err := s.load(ctx, methods); err != nil {
		return false, err
	}
	s.health.SetUp(true, s.logger, nil)
	s.logger.Info("following the systemd manager", "evidence_source", SourceName, "bus", s.opts.Bus)

	s.associate()

	prune := time.NewTicker(removedForgets)
	defer prune.Stop()
	associate := time.NewTicker(associateEvery)
	defer associate.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-associate.C:
			s.associate()
		case <-prune.C:
			s.mu.Lock()
			s.graph.Prune(s.now())
			s.mu.Unlock()
			s.expireStops(s.now())
		case sig, ok := <-ch:
			if !ok {
				return true, errors.New("D-Bus connection closed")
			}
			if err := s.handle(ctx, methods, sig); err != nil {
				return true, err
			}
		}
	}
}

// load lists the loaded units and stores their edges. It records no
// states: the listing is newer than the signals still queued, and mixing
// the two would invent transitions; states come from the signals alone.
func (s *Source) load(ctx context.Context, m manager) error {
	began := time.Now()
	call, cancel := context.WithTimeout(ctx, callTimeout)
	units, err := m.ListUnitsContext(call)
	cancel()
	if err != nil {
		return fmt.Errorf("list units: %w", err)
	}
	all := make(map[string]Deps, len(units))
	s.mu.Lock()
	s.owners = map[string]owner{}
	s.mu.Unlock()
	for _, u := range units {
		d, err := s.fetchDeps(ctx, m, u.Name)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// Unloaded since the listing: nothing to follow.
			s.logger.Debug("unit properties", "evidence_source", SourceName, "unit", u.Name, "err", err)
			continue
		}
		all[u.Name] = d
		if u.ActiveState != "inactive" && u.ActiveState != "failed" {
			s.learnOwner(ctx, m, u.Name)
		}
	}
	s.mu.Lock()
	s.graph.Replace(all)
	s.mu.Unlock()
	s.logger.Debug("unit graph loaded", "evidence_source", SourceName, "units", len(all), "took", time.Since(began))
	return nil
}

func (s *Source) fetchDeps(ctx context.Context, m manager, unit string) (Deps, error) {
	call, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	props, err := m.GetUnitPropertiesContext(call, unit)
	if err != nil {
		return Deps{}, err
	}
	list := func(k string) []string { v, _ := props[k].([]string); return v }
	return Deps{PartOf: list("PartOf"), BindsTo: list("BindsTo"), ConsistsOf: list("ConsistsOf"), BoundBy: list("BoundBy")}, nil
}
