package kubernetes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The types of a watch's events.
const (
	eventDeleted  = "DELETED"
	eventBookmark = "BOOKMARK"
	eventError    = "ERROR"
)

// watchEvent is one event of a watch stream, {"type": …, "object": …}:
// ADDED, MODIFIED, DELETED and BOOKMARK carry the object, ERROR a Status.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
	// err: the stream could not be decoded; its last event.
	err error
}

// watch is one open watch.
type watch struct {
	// events is closed when the stream ends.
	events <-chan watchEvent
	stop   func()
}

// readWatch decodes the events of a watch stream into out until the
// stream ends or stop closes. A stream cut off (the server's timeout, a
// dropped connection) just ends, to be reopened where it was; one that is
// not JSON ends with an event holding the error.
func readWatch(r io.Reader, out chan<- watchEvent, stop <-chan struct{}) {
	dec := json.NewDecoder(r)
	for {
		var ev watchEvent
		err := dec.Decode(&ev)
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case err == nil:
		case errors.As(err, &syntax) || errors.As(err, &typ):
			ev = watchEvent{err: fmt.Errorf("unable to decode an event from the watch stream: %w", err)}
		default:
			return
		}
		select {
		case out <- ev:
		case <-stop:
			return
		}
		if ev.err != nil {
			return
		}
	}
}
