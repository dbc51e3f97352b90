package containerd

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The messages the source sends and reads, encoded by hand in protobuf's
// wire format. Their field numbers are those of containerd's API
// (github.com/containerd/containerd/api v1.10: types/event.proto,
// types/task/task.proto, events/task.proto, events/container.proto,
// services/events/v1, services/containers/v1, services/tasks/v1), of the
// CRI (k8s.io/cri-api runtime/v1) and of google.protobuf's Any,
// Timestamp and UInt64Value. A decoder reads the fields the source uses
// and skips any other, as every protobuf reader skips the fields it does
// not know; a field of an unexpected wire type is skipped too, as
// protobuf's own reader does. It rejects a string that is not UTF-8, as
// protobuf's reader of proto3 does. A message field given twice is read
// from its last occurrence (protobuf merges them; no encoder writes one
// twice).

// epoch is the time of an absent timestamp: what the generated AsTime
// gives for one.
var epoch = time.Unix(0, 0).UTC()

// pbAny is a google.protobuf.Any: a message, and its type's URL.
type pbAny struct {
	typeURL string
	value   []byte
}

// typeName is the full name of an Any's message type: its URL's last
// path element. containerd 1.6 writes a bare "containerd.events.TaskExit";
// a URL with a prefix ("types.containerd.io/containerd.events.TaskExit")
// names the same.
func (a pbAny) typeName() string {
	return a.typeURL[strings.LastIndexByte(a.typeURL, '/')+1:]
}

// pbEnvelope is a containerd.types.Envelope: an event as a subscriber
// receives it.
type pbEnvelope struct {
	timestamp        time.Time
	namespace, topic string
	event            pbAny
}

// pbContainer is what the source reads of a
// containerd.services.containers.v1.Container.
type pbContainer struct {
	id, image string
	labels    map[string]string
	createdAt time.Time
}

// taskStatus is a containerd.v1.types.Status: a task's state.
type taskStatus int32

const (
	taskStatusUnknown taskStatus = iota
	taskStatusCreated
	taskStatusRunning
	taskStatusStopped
	taskStatusPaused
	taskStatusPausing
)

// pbProcess is what the source reads of a containerd.v1.types.Process: a
// task as the task list tells it.
type pbProcess struct {
	id         string
	pid        uint32
	status     taskStatus
	exitStatus uint32
	exitedAt   time.Time
}

// criState is a runtime.v1.ContainerState.
type criState int32

const (
	criCreated criState = iota
	criRunning
	criExited
	criUnknown
)

// pbContainerStatus is what the source reads of a
// runtime.v1.ContainerStatus: the CRI's account of a container's latest
// run.
type pbContainerStatus struct {
	state      criState
	finishedAt int64 // ns since the epoch
	exitCode   int32
	reason     string
}

// The bodies of the events the source follows (containerd.events.X).
type (
	pbTaskStart struct {
		containerID string
		pid         uint32
	}
	pbTaskExit struct {
		containerID, id string
		pid, exitStatus uint32
		exitedAt        time.Time
	}
	pbTaskOOM         struct{ containerID string }
	pbContainerCreate struct{ id, image string }
	pbContainerDelete struct{ id string }
)

// Encoding. proto3 leaves out a field of its type's zero value, but for
// a message field that is set, and the elements of a repeated field.

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// encodeAny encodes a google.protobuf.Any.
func encodeAny(a pbAny) []byte {
	b := appendString(nil, 1, a.typeURL)
	if len(a.value) > 0 {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, a.value)
	}
	return b
}

// encodeUInt64Value encodes a google.protobuf.UInt64Value.
func encodeUInt64Value(v uint64) []byte {
	if v == 0 {
		return nil
	}
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// uint64ValueURL is the type URL anypb gives a UInt64Value.
const uint64ValueURL = "type.googleapis.com/google.protobuf.UInt64Value"

// encodeSubscribeRequest encodes a
// containerd.services.events.v1.SubscribeRequest.
func encodeSubscribeRequest(filters []string) []byte {
	var b []byte
	for _, f := range filters {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, f)
	}
	return b
}

// encodePublishRequest encodes a
// containerd.services.events.v1.PublishRequest.
func encodePublishRequest(topic string, event pbAny) []byte {
	return appendMessage(appendString(nil, 1, topic), 2, encodeAny(event))
}

// encodeGetContainerRequest encodes a
// containerd.services.containers.v1.GetContainerRequest.
func encodeGetContainerRequest(id string) []byte { return appendString(nil, 1, id) }

// encodeContainerStatusRequest encodes a runtime.v1.ContainerStatusRequest
// (not verbose).
func encodeContainerStatusRequest(id string) []byte { return appendString(nil, 1, id) }

// Decoding.

// field is one field of an encoded message: a varint's value, or a
// length-delimited field's bytes; other wire types are skipped.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

func (f field) is(num protowire.Number, typ protowire.Type) bool { return f.num == num && f.typ == typ }

// str reads a string field.
func (f field) str(dst *string) error {
	if !utf8.Valid(f.b) {
		return errors.New("invalid UTF-8")
	}
	*dst = string(f.b)
	return nil
}

// fields calls take for each field of the message b, of type name; take
// keeps the fields it knows.
func fields(name string, b []byte, take func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("malformed %s: %w", name, protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("malformed %s: field %d: %w", name, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := take(f); err != nil {
			return fmt.Errorf("malformed %s: field %d: %w", name, num, err)
		}
	}
	return nil
}

// decodeTimestamp decodes a google.protobuf.Timestamp, in UTC as AsTime
// gives it.
func decodeTimestamp(b []byte) (time.Time, error) {
	var secs, nanos int64
	err := fields("google.protobuf.Timestamp", b, func(f field) error {
		switch {
		case f.is(1, protowire.VarintType):
			secs = int64(f.u)
		case f.is(2, protowire.VarintType):
			nanos = int64(int32(f.u))
		}
		return nil
	})
	return time.Unix(secs, nanos).UTC(), err
}

// decodeAny decodes a google.protobuf.Any.
func decodeAny(b []byte) (pbAny, error) {
	var a pbAny
	err := fields("google.protobuf.Any", b, func(f field) error {
		switch {
		case f.is(1, protowire.BytesType):
			return f.str(&a.typeURL)
		case f.is(2, protowire.BytesType):
			a.value = f.b
		}
		return nil
	})
	return a, err
}

// decodeUInt64Value decodes a google.protobuf.UInt64Value.
func decodeUInt64Value(b []byte) (uint64, error) {
	var v uint64
	err := fields("google.protobuf.UInt64Value", b, func(f field) error {
		if f.is(1, protowire.VarintType) {
			v = f.u
		}
		return nil
	})
	return v, err
}

// decodeEnvelope decodes a containerd.types.Envelope.
func decodeEnvelope(b []byte) (pbEnvelope, error) {
	env := pbEnvelope{timestamp: epoch}
	err := fields("containerd.types.Envelope", b, func(f field) (err error) {
		switch {
		case f.is(1, protowire.BytesType):
			env.timestamp, err = decodeTimestamp(f.b)
		case f.is(2, protowire.BytesType):
			err = f.str(&env.namespace)
		case f.is(3, protowire.BytesType):
			err = f.str(&env.topic)
		case f.is(4, protowire.BytesType):
			env.event, err = decodeAny(f.b)
		}
		return err
	})
	return env, err
}

// decodeStringMapEntry decodes an entry of a map<string, string>.
func decodeStringMapEntry(b []byte) (key, value string, err error) {
	err = fields("map entry", b, func(f field) error {
		switch {
		case f.is(1, protowire.BytesType):
			return f.str(&key)
		case f.is(2, protowire.BytesType):
			return f.str(&value)
		}
		return nil
	})
	return key, value, err
}

// decodeContainer decodes a containerd.services.containers.v1.Container.
func decodeContainer(b []byte) (pbContainer, error) {
	c := pbContainer{createdAt: epoch}
	err := fields("containerd.services.containers.v1.Container", b, func(f field) (err error) {
		switch {
		case f.is(1, protowire.BytesType):
			err = f.str(&c.id)
		case f.is(2, protowire.BytesType):
			var k, v string
			if k, v, err = decodeStringMapEntry(f.b); err != nil {
				return err
			}
			if c.labels == nil {
				c.labels = map[string]string{}
			}
			c.labels[k] = v
		case f.is(3, protowire.BytesType):
			err = f.str(&c.image)
		case f.is(8, protowire.BytesType):
			c.createdAt, err = decodeTimestamp(f.b)
		}
		return err
	})
	return c, err
}

// decodeContainerMessage decodes a message whose field 1 is a container:
// a containerd.services.containers.v1.GetContainerResponse, or a
// ListContainerMessage of ListStream. An absent container is an empty
// one, as the generated getters give it.
func decodeContainerMessage(name string, b []byte) (pbContainer, error) {
	c := pbContainer{createdAt: epoch}
	err := fields(name, b, func(f field) (err error) {
		if f.is(1, protowire.BytesType) {
			c, err = decodeContainer(f.b)
		}
		return err
	})
	return c, err
}

// decodeProcess decodes a containerd.v1.types.Process.
func decodeProcess(b []byte) (pbProcess, error) {
	p := pbProcess{exitedAt: epoch}
	err := fields("containerd.v1.types.Process", b, func(f field) (err error) {
		switch {
		case f.is(2, protowire.BytesType):
			err = f.str(&p.id)
		case f.is(3, protowire.VarintType):
			p.pid = uint32(f.u)
		case f.is(4, protowire.VarintType):
			p.status = taskStatus(int32(f.u))
		case f.is(9, protowire.VarintType):
			p.exitStatus = uint32(f.u)
		case f.is(10, protowire.BytesType):
			p.exitedAt, err = decodeTimestamp(f.b)
		}
		return err
	})
	return p, err
}

// decodeListTasksResponse decodes a
// containerd.services.tasks.v1.ListTasksResponse.
func decodeListTasksResponse(b []byte) ([]pbProcess, error) {
	var tasks []pbProcess
	err := fields("containerd.services.tasks.v1.ListTasksResponse", b, func(f field) error {
		if f.is(1, protowire.BytesType) {
			p, err := decodeProcess(f.b)
			if err != nil {
				return err
			}
			tasks = append(tasks, p)
		}
		return nil
	})
	return tasks, err
}

// decodeContainerStatus decodes a runtime.v1.ContainerStatus.
func decodeContainerStatus(b []byte) (pbContainerStatus, error) {
	var st pbContainerStatus
	err := fields("runtime.v1.ContainerStatus", b, func(f field) error {
		switch {
		case f.is(3, protowire.VarintType):
			st.state = criState(int32(f.u))
		case f.is(6, protowire.VarintType):
			st.finishedAt = int64(f.u)
		case f.is(7, protowire.VarintType):
			st.exitCode = int32(f.u)
		case f.is(10, protowire.BytesType):
			return f.str(&st.reason)
		}
		return nil
	})
	return st, err
}

// decodeContainerStatusResponse decodes a
// runtime.v1.ContainerStatusResponse; the status is nil when it has none.
func decodeContainerStatusResponse(b []byte) (*pbContainerStatus, error) {
	var st *pbContainerStatus
	err := fields("runtime.v1.ContainerStatusResponse", b, func(f field) error {
		if f.is(1, protowire.BytesType) {
			s, err := decodeContainerStatus(f.b)
			if err != nil {
				return err
			}
			st = &s
		}
		return nil
	})
	return st, err
}

// decodeTaskStart decodes a containerd.events.TaskStart.
func decodeTaskStart(b []byte) (pbTaskStart, error) {
	var e pbTaskStart
	err := fields("containerd.events.TaskStart", b, func(f field) error {
		switch {
		case f.is(1, protowire.BytesType):
			return f.str(&e.containerID)
		case f.is(2, protowire.VarintType):
			e.pid = uint32(f.u)
		}
		return nil
	})
	return e, err
}

// decodeTaskExit decodes a containerd.events.TaskExit.
func decodeTaskExit(b []byte) (pbTaskExit, error) {
	e := pbTaskExit{exitedAt: epoch}
	err := fields("containerd.events.TaskExit", b, func(f field) (err error) {
		switch {
		case f.is(1, protowire.BytesType):
			err = f.str(&e.containerID)
		case f.is(2, protowire.BytesType):
			err = f.str(&e.id)
		case f.is(3, protowire.VarintType):
			e.pid = uint32(f.u)
		case f.is(4, protowire.VarintType):
			e.exitStatus = uint32(f.u)
		case f.is(5, protowire.BytesType):
			e.exitedAt, err = decodeTimestamp(f.b)
		}
		return err
	})
	return e, err
}

// decodeTaskOOM decodes a containerd.events.TaskOOM.
func decodeTaskOOM(b []byte) (pbTaskOOM, error) {
	var e pbTaskOOM
	err := fields("containerd.events.TaskOOM", b, func(f field) error {
		if f.is(1, protowire.BytesType) {
			return f.str(&e.containerID)
		}
		return nil
	})
	return e, err
}

// decodeContainerCreate decodes a containerd.events.ContainerCreate.
func decodeContainerCreate(b []byte) (pbContainerCreate, error) {
	var e pbContainerCreate
	err := fields("containerd.events.ContainerCreate", b, func(f field) error {
		switch {
		case f.is(1, protowire.BytesType):
			return f.str(&e.id)
		case f.is(2, protowire.BytesType):
			return f.str(&e.image)
		}
		return nil
	})
	return e, err
}

// decodeContainerDelete decodes a containerd.events.ContainerDelete.
func decodeContainerDelete(b []byte) (pbContainerDelete, error) {
	var e pbContainerDelete
	err := fields("containerd.events.ContainerDelete", b, func(f field) error {
		if f.is(1, protowire.BytesType) {
			return f.str(&e.id)
		}
		return nil
	})
	return e, err
}
