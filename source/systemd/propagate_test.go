package systemd

import (
	"testing"
	"time"
)

// s is a parent's sample at ms relative to the child's stop.
func s(ms int, active, sub string, job uint32) Sample {
	return Sample{At: at(ms), Active: active, Sub: sub, Job: job}
}

// history builds a parent's history as Observe would record it.
func history(samples ...Sample) []Sample {
	g := NewGraph()
	for _, x := range samples {
		g.Observe("front.service", x)
	}
	return g.History("front.service")
}

// The parents' sequences are the ones a real systemd 252 user manager
// sent, with their measured offsets from the child's stop (at 0).
func TestParentAction(t *testing.T) {
	running := s(-10000, "active", "running", 0)
	cases := []struct {
		name string
		h    []Sample
		rel  Relation
		want Action
	}{
		{"systemctl stop front", history(running, s(-9, "active", "running", 95),
			s(-1, "deactivating", "stop-sigterm", 95), s(0, "inactive", "dead", 95)), PartOf, Stopped},
		{"systemctl restart front", history(running, s(-1, "active", "running", 95),
			s(0, "deactivating", "stop-sigterm", 95), s(1, "inactive", "dead", 95), s(16, "active", "running", 0)), PartOf, Restarted},
		{"crash, Restart=on-failure", history(running, s(-181, "failed", "failed", 0),
			s(-181, "activating", "auto-restart", 0), s(-26, "activating", "auto-restart", 172),
			s(0, "inactive", "dead", 172), s(0, "active", "running", 172), s(0, "active", "running", 0)), PartOf, CrashRestarted},
		{"crash with a long RestartSec: the restart is what counts", history(running, s(-30000, "failed", "failed", 0),
			s(-30000, "activating", "auto-restart", 0), s(-2, "activating", "auto-restart", 9),
			s(1, "inactive", "dead", 9), s(2, "active", "running", 0)), PartOf, CrashRestarted},
		{"crash without restart: PartOf= does not follow", history(running, s(-100, "failed", "failed", 0)), PartOf, NoAction},
		{"crash without restart: BindsTo= does", history(running, s(-2, "failed", "failed", 0)), BindsTo, Failed},
		{"the parent's first signal is its crash", history(s(-2, "failed", "failed", 0)), BindsTo, Failed},
		{"BindsTo= follows a stop too", history(running, s(-3, "active", "running", 4), s(-1, "inactive", "dead", 4)), BindsTo, Stopped},
		{"the parent's signals arrive after the child's", history(running, s(2, "active", "running", 5),
			s(3, "deactivating", "stop-sigterm", 5)), PartOf, Stopped},
		{"After= ordering: the parent waits for the child, only its job is queued", history(running,
			s(-5, "active", "running", 12), s(1500, "deactivating", "stop-sigterm", 12)), PartOf, Stopped},
		{"direct stop of the child: the parent did nothing", history(running), PartOf, NoAction},
		{"the parent stopped long before", history(running, s(-5000, "inactive", "dead", 0)), PartOf, NoAction},
		{"the parent stopped only after the settle delay", history(running, s(int(SettleDelay/time.Millisecond)+200, "inactive", "dead", 0)), PartOf, NoAction},
		{"the parent merely started", history(s(-10000, "inactive", "dead", 0), s(-50, "inactive", "dead", 3),
			s(-40, "activating", "start", 3), s(-30, "active", "running", 0)), PartOf, NoAction},
		{"no history", nil, PartOf, NoAction},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, lag := ParentAction(tc.h, tc.rel, at(0))
			if got != tc.want {
				t.Errorf("ParentAction = %v, want %v (history %+v)", got, tc.want, tc.h)
			}
			if got != NoAction && (lag < -LookBehind || lag > SettleDelay) {
				t.Errorf("lag %v outside the window", lag)
			}
		})
	}
}

func TestDetail(t *testing.T) {
	cases := []struct {
		a       Action
		restart string
		rel     Relation
		want    string
	}{
		{Stopped, "", PartOf, "front.service stopped → app.service stopped (PartOf=front.service)"},
		{Restarted, "no", PartOf, "front.service restarted → app.service stopped (PartOf=front.service)"},
		{CrashRestarted, "on-failure", PartOf, "front.service restarted (Restart=on-failure after a crash) → app.service stopped (PartOf=front.service)"},
		{CrashRestarted, "", PartOf, "front.service restarted after a crash → app.service stopped (PartOf=front.service)"},
		{Failed, "no", BindsTo, "front.service failed → app.service stopped (BindsTo=front.service)"},
	}
	for _, tc := range cases {
		if got := Detail(tc.a, "front.service", tc.restart, "app.service", tc.rel); got != tc.want {
			t.Errorf("Detail(%v) = %q, want %q", tc.a, got, tc.want)
		}
	}
}
