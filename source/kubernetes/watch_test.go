package kubernetes

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// cutReader yields its text, then err instead of EOF.
type cutReader struct {
	r   io.Reader
	err error
}

func (c cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		err = c.err
	}
	return n, err
}

func TestReadWatch(t *testing.T) {
	const (
		added    = `{"type":"ADDED","object":{"kind":"Pod","metadata":{"resourceVersion":"101"}}}`
		bookmark = `{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"150"}}}`
		expired  = `{"type":"ERROR","object":{"kind":"Status","status":"Failure","reason":"Expired","code":410,"message":"too old"}}`
	)
	tests := []struct {
		name   string
		stream io.Reader
		want   []string // each event's type, "err" for a decode error
	}{
		{name: "events a line each, then the server's end",
			stream: strings.NewReader(added + "\n" + bookmark + "\n" + expired + "\n"), want: []string{"ADDED", "BOOKMARK", "ERROR"}},
		{name: "events not split by lines", stream: strings.NewReader(added + bookmark), want: []string{"ADDED", "BOOKMARK"}},
		{name: "cut off in an event: ends", stream: strings.NewReader(added + "\n" + bookmark[:20]), want: []string{"ADDED"}},
		{name: "connection reset: ends",
			stream: cutReader{strings.NewReader(added + "\n"), errors.New("read: connection reset by peer")}, want: []string{"ADDED"}},
		{name: "not JSON: an error", stream: strings.NewReader(added + "\n<html>"), want: []string{"ADDED", "err"}},
		{name: "not a watch event: an error", stream: strings.NewReader(`{"type":1}` + "\n" + added), want: []string{"err"}},
		{name: "empty", stream: strings.NewReader("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make(chan watchEvent)
			go func() { readWatch(tt.stream, out, nil); close(out) }()
			var got []string
			for ev := range out {
				if ev.err != nil {
					got = append(got, "err")
				} else {
					got = append(got, ev.Type)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// A watch stopped while nobody reads its events does not hang.
func TestReadWatchStop(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		readWatch(strings.NewReader(`{"type":"ADDED","object":{}}`), make(chan watchEvent), stop)
		close(done)
	}()
	close(stop)
	<-done
}
