package collector

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/exit137-exporter/exit137-exporter/source/systemd"
)

type fixedStops map[systemd.StopKey]uint64

func (f fixedStops) PartOfStops() map[systemd.StopKey]uint64 { return f }

func TestSystemdCollector(t *testing.T) {
	c := &systemdCollector{stops: fixedStops{
		{Unit: "app.service", PartOf: "front.service"}:     3,
		{Unit: "sidecar.service", PartOf: "front.service"}: 1,
	}}
	want := `
# HELP exit137_systemd_partof_stops_total Unit stops that systemd propagated from another unit by PartOf= or BindsTo= (its stop, restart, or for BindsTo= its failure), by the stopped unit and the unit it followed; any unit, whether it runs a container or not.
# TYPE exit137_systemd_partof_stops_total counter
exit137_systemd_partof_stops_total{partof="front.service",unit="app.service"} 3
exit137_systemd_partof_stops_total{partof="front.service",unit="sidecar.service"} 1
`
	if err := testutil.CollectAndCompare(kmsgDiskPromCollector{c}, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestSystemdCollectorWithTheSourceOff(t *testing.T) {
	c, err := factories["systemd"](Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(nil); !errors.Is(err, ErrNoData) {
		t.Errorf("--systemd.bus=none: Update = %v, want ErrNoData", err)
	}
}
