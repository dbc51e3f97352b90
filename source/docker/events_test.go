package docker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A die as dockerd 20.10 sends it (measured), with the legacy fields.
const dockerDie = `{"status":"die","id":"c1","from":"img","Type":"container","Action":"die",` +
	`"Actor":{"ID":"c1","Attributes":{"exitCode":"137","image":"img","name":"web"}},` +
	`"scope":"local","time":1700000000,"timeNano":1700000000123456789}`

// step is what one call of Next gives.
type step struct {
	action    string // the message's Action, when no error
	malformed bool   // a *MalformedEventError
	err       error  // a terminal error, matched by errors.Is
}

func TestEventStreamDecoding(t *testing.T) {
	long := `{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"x":"` + strings.Repeat("y", maxEventLine) + `"}}}`
	tests := []struct {
		name   string
		stream string
		want   []step
	}{
		{"a drain's end", dockerDie + "\n" + dockerDie + "\n", []step{{action: "die"}, {action: "die"}, {err: io.EOF}}},
		{"empty", "", []step{{err: io.EOF}}},
		{"blank lines between", "\n" + dockerDie + "\n\r\n  \n" + dockerDie + "\n\n", []step{{action: "die"}, {action: "die"}, {err: io.EOF}}},
		{"a last event without its newline", dockerDie, []step{{action: "die"}, {err: io.EOF}}},
		{"a malformed line keeps the stream's place", dockerDie + "\n{\"Type\":\"container\",\"Act\n" + dockerDie + "\n",
			[]step{{action: "die"}, {malformed: true}, {action: "die"}, {err: io.EOF}}},
		{"not JSON at all", "<html>502</html>\n" + dockerDie + "\n", []step{{malformed: true}, {action: "die"}, {err: io.EOF}}},
		{"a field of the wrong type", `{"Type":"container","Action":"die","timeNano":"soon"}` + "\n" + dockerDie + "\n",
			[]step{{malformed: true}, {action: "die"}, {err: io.EOF}}},
		{"two objects on a line", dockerDie + dockerDie + "\n", []step{{malformed: true}, {err: io.EOF}}},
		{"a line too long is skipped", long + "\n" + dockerDie + "\n", []step{{malformed: true}, {action: "die"}, {err: io.EOF}}},
		{"cut in the middle of an event", dockerDie + "\n" + dockerDie[:40], []step{{action: "die"}, {err: io.ErrUnexpectedEOF}}},
		{"cut in the middle of a long one", dockerDie + "\n" + long[:maxEventLine/2], []step{{action: "die"}, {err: io.ErrUnexpectedEOF}}},
	}
	for _, tt := range tests {
		s := newEventStream(context.Background(), io.NopCloser(strings.NewReader(tt.stream)))
		for i, want := range tt.want {
			m, err := s.Next()
			var bad *MalformedEventError
			switch {
			case want.err != nil:
				if !errors.Is(err, want.err) {
					t.Errorf("%s: step %d: got %+v %v, want %v", tt.name, i, m, err, want.err)
				}
			case want.malformed:
				if !errors.As(err, &bad) || !strings.HasPrefix(err.Error(), "malformed event ") || len(bad.Line) > 203 {
					t.Errorf("%s: step %d: got %+v %v, want a malformed event", tt.name, i, m, err)
				}
			case err != nil || m.Action != want.action:
				t.Errorf("%s: step %d: got %+v %v, want %s", tt.name, i, m, err, want.action)
			}
		}
	}
}

func TestMessageDecoding(t *testing.T) {
	m, err := decodeEvent([]byte(dockerDie))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Unix(0, 1700000000123456789)
	if m.Type != ContainerEvent || m.Action != "die" || m.Actor.ID != "c1" || m.Actor.Attributes["exitCode"] != "137" ||
		m.Actor.Attributes["name"] != "web" || m.Time != 1700000000 || !eventTime(m).Equal(want) {
		t.Errorf("decoded %+v", m)
	}
	// Podman 4.3's kill (measured): no signal, podId and containerExitCode.
	podman := `{"status":"kill","id":"e6bb","from":"localhost/exit137-helper:test","Type":"container","Action":"kill",` +
		`"Actor":{"ID":"e6bb","Attributes":{"containerExitCode":"0","image":"localhost/exit137-helper:test","name":"t-kill","podId":""}},` +
		`"scope":"local","time":1764532583,"timeNano":1764532583190333772}`
	m, err = decodeEvent([]byte(podman))
	if err != nil || !podmanEvent(m) || m.Action != "kill" {
		t.Errorf("podman kill decoded %+v %v", m, err)
	}
	if _, err := decodeEvent([]byte(`{"Action":`)); err == nil || !strings.Contains(err.Error(), `malformed event "{\"Action\":"`) {
		t.Errorf("a cut object: %v", err)
	}
}

func TestEventStreamStopsAtContextEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	s := newEventStream(ctx, r)
	go func() { _, _ = io.WriteString(w, dockerDie+"\n"+dockerDie+"\n") }()
	if m, err := s.Next(); err != nil || m.Action != "die" {
		t.Fatalf("%+v %v", m, err)
	}
	cancel()
	if _, err := s.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after the context ended: %v, want context.Canceled", err)
	}
}

// TestEventsOverHTTP: the stream as the client reads it from a daemon,
// with the session's query, ended by until, by a cut and by the context.
func TestEventsOverHTTP(t *testing.T) {
	clearDockerEnv(t)
	cutNow := make(chan struct{})
	f := &fakeAPI{version: "1.41", answer: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, dockerDie+"\nnot an event\n"+dockerDie+"\n")
		w.(http.Flusher).Flush()
		if r.URL.Query().Get("until") != "" {
			return
		}
		select {
		case <-cutNow:
			// A cut in the middle of an event: the connection is closed.
			_, _ = io.WriteString(w, dockerDie[:30])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.Close()
		case <-r.Context().Done():
		}
	}}
	c, err := NewClient(serveUnix(t, f))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	since := time.Unix(1700000000, 5)

	read := func(s *EventStream) (actions []string, err error) {
		for {
			m, err := s.Next()
			var bad *MalformedEventError
			switch {
			case err == nil:
				actions = append(actions, m.Action)
			case errors.As(err, &bad):
				actions = append(actions, "malformed")
			default:
				return actions, err
			}
		}
	}
	s, err := c.Events(ctx, eventOptions(since, since.Add(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	actions, err := read(s)
	s.Close()
	if !errors.Is(err, io.EOF) || strings.Join(actions, " ") != "die malformed die" {
		t.Errorf("drain: %v %v", actions, err)
	}
	log := f.log()
	if got := log[len(log)-1]; got != "/v1.41/events?filters=%7B%22type%22%3A%7B%22container%22%3Atrue%7D%7D&since=1700000000.000000005&until=1700000001.000000005" {
		t.Errorf("drain asked %s", got)
	}

	s, err = c.Events(ctx, eventOptions(since, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	close(cutNow)
	actions, err = read(s)
	s.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || strings.Join(actions, " ") != "die malformed die" {
		t.Errorf("cut: %v %v, want io.ErrUnexpectedEOF", actions, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	f.setAnswer(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	s, err = c.Events(ctx, eventOptions(since, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := s.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("live stream at the context's end: %v", err)
	}
	s.Close()

	f.setAnswer(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"message":"invalid filter 'typ'"}`)
	})
	if _, err := c.Events(context.Background(), EventOptions{}); err == nil || err.Error() != "GET /events: 400 Bad Request: invalid filter 'typ'" {
		t.Errorf("a refused stream: %v", err)
	}
}
