package docker

import (
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

func TestEvidenceFromEvents(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 5, time.UTC)
	msg := func(action string, attrs map[string]string) Message {
		return Message{Action: action, TimeNano: at.UnixNano(), Actor: Actor{ID: "c1", Attributes: attrs}}
	}
	tests := []struct {
		msg    Message
		kind   attribution.Kind
		signal int
		ok     bool
	}{
		{msg("oom", nil), attribution.KindDockerOOM, 0, true},
		{msg("kill", map[string]string{"signal": "9"}), attribution.KindDockerKill, 9, true},
		{msg("kill", map[string]string{"signal": "15"}), attribution.KindDockerKill, 15, true},
		{msg("stop", nil), attribution.KindDockerStop, 0, true},
		{msg("die", map[string]string{"exitCode": "137"}), "", 0, false},
		{msg("exec_start: sh", nil), "", 0, false},
	}
	for _, tc := range tests {
		e, ok := Evidence(tc.msg)
		if ok != tc.ok || e.Kind != tc.kind || e.Signal != tc.signal {
			t.Errorf("%s: got %+v %v, want kind %s signal %d ok %v", tc.msg.Action, e, ok, tc.kind, tc.signal, tc.ok)
		}
		if ok && (!e.Time.Equal(at) || e.Container != "c1" || e.Source != "docker") {
			t.Errorf("%s: time/container/source wrong: %+v", tc.msg.Action, e)
		}
	}
}

func TestEventTimeFallsBackToSeconds(t *testing.T) {
	if got := eventTime(Message{Time: 1700000000}); !got.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("got %v", got)
	}
}

func TestParseTime(t *testing.T) {
	if !parseTime("0001-01-01T00:00:00Z").IsZero() || !parseTime("").IsZero() || !parseTime("garbage").IsZero() {
		t.Fatal("Docker's never, empty and garbage must be the zero time")
	}
	want := time.Date(2026, 11, 24, 16, 51, 47, 461000000, time.UTC)
	if got := parseTime("2026-11-24T16:51:47.461Z"); !got.Equal(want) {
		t.Fatalf("got %v want %v", got, want)
	}
}
