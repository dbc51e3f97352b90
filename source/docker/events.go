package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
)

// Message is one event of the daemon's stream (GET /events), the fields
// read. Docker and Podman send one JSON object a line.
type Message struct {
	// Type is what the event is about: "container" for those asked for.
	Type string `json:"Type"`
	// Action is what happened: start, die, kill, oom, destroy...
	Action string `json:"Action"`
	Actor  Actor  `json:"Actor"`
	// Time is the event's time in seconds, TimeNano in nanoseconds (both
	// since the epoch); TimeNano is the one to use when not zero.
	Time     int64 `json:"time,omitempty"`
	TimeNano int64 `json:"timeNano,omitempty"`
}

// Actor is what an event is about: the container's id, and its
// attributes (name, image, labels, exitCode, signal...).
type Actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// ContainerEvent is Message.Type for a container's events.
const ContainerEvent = "container"

// EventOptions select the events: since and until are the daemon's
// timestamps ("seconds" or "seconds.nanoseconds", see Stamp), empty for
// none; with no until the stream stays open for live events.
type EventOptions struct {
	Since, Until string
	// Filters are the daemon's filters, each key to the values any of
	// which matches: {"type": {"container"}}.
	Filters map[string][]string
}

// Stamp is t as the daemon's events take it, at the nanosecond.
func Stamp(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// encodeFilters is the filters query parameter as docker's
// filters.ToJSON writes it: {"type":{"container":true}}, keys sorted; ""
// for no filter.
func encodeFilters(f map[string][]string) string {
	if len(f) == 0 {
		return ""
	}
	args := make(map[string]map[string]bool, len(f))
	for k, vs := range f {
		set := make(map[string]bool, len(vs))
		for _, v := range vs {
			set[v] = true
		}
		args[k] = set
	}
	b, _ := json.Marshal(args) // maps of strings to bools always marshal
	return string(b)
}

// eventQuery is the query of GET /events for opts.
func eventQuery(opts EventOptions) url.Values {
	q := url.Values{}
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	if opts.Until != "" {
		q.Set("until", opts.Until)
	}
	if f := encodeFilters(opts.Filters); f != "" {
		q.Set("filters", f)
	}
	return q
}

// Events opens the daemon's event stream: its buffered events from since,
// then (without until) live ones as they come. The stream ends at until,
// when the daemon or the connection ends it, or when ctx ends; Close
// releases it.
func (c *Client) Events(ctx context.Context, opts EventOptions) (*EventStream, error) {
	resp, err := c.do(ctx, "/events", eventQuery(opts), true)
	if err != nil {
		return nil, err
	}
	return newEventStream(ctx, resp.Body), nil
}

// maxEventLine caps an event's line; a longer one is skipped as
// malformed. Docker's events are well under a kilobyte, labels included.
const maxEventLine = 1 << 20

// EventStream reads an event stream's messages, one a line.
type EventStream struct {
	ctx  context.Context
	body io.ReadCloser
	r    *bufio.Reader
}

func newEventStream(ctx context.Context, body io.ReadCloser) *EventStream {
	return &EventStream{ctx: ctx, body: body, r: bufio.NewReaderSize(body, 16<<10)}
}

// MalformedEventError is a line of the stream that is not an event. The
// stream goes on with the next line: the error loses one event, not the
// stream's place.
type MalformedEventError struct {
	Line []byte // the line, cut to 200 bytes
	Err  error
}

func (e *MalformedEventError) Error() string {
	return fmt.Sprintf("malformed event %q: %v", e.Line, e.Err)
}

func (e *MalformedEventError) Unwrap() error { return e.Err }

// Next returns the next event. Its errors:
//   - io.EOF: the daemon ended the stream after a whole event (a drain up
//     to until ends so);
//   - *MalformedEventError: a line that is not an event; the stream goes
//     on, and Next may be called again;
//   - io.ErrUnexpectedEOF: the stream ended in the middle of an event (a
//     connection cut);
//   - ctx's error once it ended, or the connection's.
//
// Any error but a *MalformedEventError ends the stream.
func (s *EventStream) Next() (Message, error) {
	for {
		if err := s.ctx.Err(); err != nil {
			return Message{}, err
		}
		line, err := s.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			if s.ctx.Err() != nil {
				return Message{}, s.ctx.Err()
			}
			return Message{}, err
		}
		atEOF := err != nil
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 {
			if atEOF {
				return Message{}, io.EOF
			}
			continue
		}
		m, derr := decodeEvent(trimmed)
		switch {
		case derr == nil:
			return m, nil
		case atEOF:
			// The last line had no newline and is not an event: the
			// stream was cut in the middle of one.
			return Message{}, fmt.Errorf("event stream cut in the middle of an event: %w", io.ErrUnexpectedEOF)
		default:
			return Message{}, derr
		}
	}
}

// readLine reads up to and without the next newline; io.EOF with what
// was left when the stream ended without one. A line longer than
// maxEventLine is read to its end and returned as a malformed event.
func (s *EventStream) readLine() ([]byte, error) {
	chunk, err := s.r.ReadSlice('\n')
	if err == nil {
		return chunk[:len(chunk)-1], nil // valid until the next read
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return chunk, err
	}
	line := bytes.Clone(chunk)
	for {
		chunk, err = s.r.ReadSlice('\n')
		if len(line) <= maxEventLine {
			line = append(line, chunk...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			return line, err
		case len(line) > maxEventLine:
			return nil, &MalformedEventError{Line: cut(line), Err: fmt.Errorf("longer than %d bytes", maxEventLine)}
		default:
			return line[:len(line)-1], nil
		}
	}
}

// decodeEvent reads one line of the stream.
func decodeEvent(line []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(line, &m); err != nil {
		return Message{}, &MalformedEventError{Line: cut(line), Err: err}
	}
	return m, nil
}

// cut is the start of a line, for an error.
func cut(line []byte) []byte {
	if len(line) > 200 {
		return append(bytes.Clone(line[:200]), "..."...)
	}
	return bytes.Clone(line)
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }
