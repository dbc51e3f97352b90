package containerd

import (
	"strings"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/task"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// viaWire is m as the source reads it: encoded by the generated code,
// decoded by the source's own decoder.
func viaWire[T any](t *testing.T, m proto.Message, decode func([]byte) (T, error)) T {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	v, err := decode(b)
	if err != nil {
		t.Fatalf("decode %T: %v", m, err)
	}
	return v
}

// The source's decoders read what the generated code writes: every field
// the source uses, each other field skipped.
func TestDecodeGeneratedMessages(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 5, time.UTC)
	before := time.Date(1969, 7, 20, 20, 17, 40, 999, time.UTC) // seconds < 0
	ts := timestamppb.New
	anyOf := func(m proto.Message) *anypb.Any {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	labels := map[string]string{labelCRIKind: criKindContainer, labelPodName: "web-0", "empty": "", "": "no key", "ü": "ünïcode"}
	// A container with every field set, and a spec of some size.
	fullContainer := &containersapi.Container{ID: id1, Labels: labels, Image: "docker.io/library/app:1",
		Runtime:     &containersapi.Container_Runtime{Name: "io.containerd.runc.v2", Options: anyOf(wrapperspb.String("opts"))},
		Spec:        anyOf(wrapperspb.Bytes([]byte(strings.Repeat("spec", 5000)))),
		Snapshotter: "overlayfs", SnapshotKey: id1, CreatedAt: ts(at), UpdatedAt: ts(at.Add(time.Hour)),
		Extensions: map[string]*anypb.Any{"x": anyOf(wrapperspb.UInt64(7))}, Sandbox: idSandbox}
	wantContainer := pbContainer{id: id1, image: "docker.io/library/app:1", labels: labels, createdAt: at}

	t.Run("Envelope", func(t *testing.T) {
		body := anyOf(&apievents.TaskExit{ContainerID: id1, ID: id1, Pid: 42, ExitStatus: 137, ExitedAt: ts(before)})
		got := viaWire(t, &apitypes.Envelope{Timestamp: ts(at), Namespace: "k8s.io", Topic: topicTaskExit, Event: body}, decodeEnvelope)
		if !got.timestamp.Equal(at) || got.timestamp.Location() != time.UTC || got.namespace != "k8s.io" || got.topic != topicTaskExit ||
			got.event.typeURL != body.GetTypeUrl() || string(got.event.value) != string(body.GetValue()) {
			t.Errorf("%+v", got)
		}
		if empty := viaWire(t, &apitypes.Envelope{}, decodeEnvelope); empty.timestamp != epoch || empty.topic != "" || empty.event.typeURL != "" {
			t.Errorf("an empty envelope: %+v, want the epoch as AsTime gives it", empty)
		}
	})
	t.Run("event bodies", func(t *testing.T) {
		if got := viaWire(t, &apievents.TaskStart{ContainerID: id1, Pid: 42}, decodeTaskStart); got != (pbTaskStart{id1, 42}) {
			t.Errorf("TaskStart: %+v", got)
		}
		exit := viaWire(t, &apievents.TaskExit{ContainerID: id1, ID: "probe-1", Pid: 4294967295, ExitStatus: 255, ExitedAt: ts(before)}, decodeTaskExit)
		if exit != (pbTaskExit{containerID: id1, id: "probe-1", pid: 4294967295, exitStatus: 255, exitedAt: before}) {
			t.Errorf("TaskExit: %+v", exit)
		}
		if exit := viaWire(t, &apievents.TaskExit{ContainerID: id1, ID: id1}, decodeTaskExit); exit.exitedAt != epoch {
			t.Errorf("TaskExit with no exited_at: %+v, want the epoch", exit)
		}
		if got := viaWire(t, &apievents.TaskOOM{ContainerID: id1}, decodeTaskOOM); got != (pbTaskOOM{id1}) {
			t.Errorf("TaskOOM: %+v", got)
		}
		create := &apievents.ContainerCreate{ID: id1, Image: "docker.io/library/app:1",
			Runtime: &apievents.ContainerCreate_Runtime{Name: "io.containerd.runc.v2", Options: anyOf(wrapperspb.String("x"))}}
		if got := viaWire(t, create, decodeContainerCreate); got != (pbContainerCreate{id1, "docker.io/library/app:1"}) {
			t.Errorf("ContainerCreate: %+v", got)
		}
		if got := viaWire(t, &apievents.ContainerDelete{ID: id1}, decodeContainerDelete); got != (pbContainerDelete{id1}) {
			t.Errorf("ContainerDelete: %+v", got)
		}
	})
	t.Run("containers", func(t *testing.T) {
		for name, got := range map[string]pbContainer{
			"Container": viaWire(t, fullContainer, decodeContainer),
			"GetContainerResponse": viaWire(t, &containersapi.GetContainerResponse{Container: fullContainer}, func(b []byte) (pbContainer, error) {
				return decodeContainerMessage("GetContainerResponse", b)
			}),
			"ListContainerMessage": viaWire(t, &containersapi.ListContainerMessage{Container: fullContainer}, func(b []byte) (pbContainer, error) {
				return decodeContainerMessage("ListContainerMessage", b)
			}),
		} {
			if !equalContainers(got, wantContainer) {
				t.Errorf("%s: %+v\nwant %+v", name, got, wantContainer)
			}
		}
		none := viaWire(t, &containersapi.GetContainerResponse{}, func(b []byte) (pbContainer, error) { return decodeContainerMessage("GetContainerResponse", b) })
		if !equalContainers(none, pbContainer{createdAt: epoch}) {
			t.Errorf("no container: %+v, want an empty one created at the epoch", none)
		}
	})
	t.Run("tasks", func(t *testing.T) {
		resp := &tasksapi.ListTasksResponse{Tasks: []*task.Process{
			{ContainerID: id1, ID: id1, Pid: 42, Status: task.Status_RUNNING, Stdin: "/in", Stdout: "/out", Terminal: true},
			{ContainerID: id2, ID: id2, Pid: 43, Status: task.Status_STOPPED, ExitStatus: 137, ExitedAt: ts(at)},
			{ContainerID: id3, ID: id3, Status: task.Status_CREATED},
			{},
		}}
		got := viaWire(t, resp, decodeListTasksResponse)
		want := []pbProcess{
			{id: id1, pid: 42, status: taskStatusRunning, exitedAt: epoch},
			{id: id2, pid: 43, status: taskStatusStopped, exitStatus: 137, exitedAt: at},
			{id: id3, status: taskStatusCreated, exitedAt: epoch},
			{exitedAt: epoch},
		}
		if len(got) != len(want) {
			t.Fatalf("%d tasks, want %d: %+v", len(got), len(want), got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("task %d: %+v, want %+v", i, got[i], want[i])
			}
		}
		for st := task.Status_UNKNOWN; st <= task.Status_PAUSING; st++ {
			if got := viaWire(t, &task.Process{Status: st}, decodeProcess); int32(got.status) != int32(st) {
				t.Errorf("status %v read as %d", st, got.status)
			}
		}
		if got := viaWire(t, &tasksapi.ListTasksResponse{}, decodeListTasksResponse); len(got) != 0 {
			t.Errorf("no task: %+v", got)
		}
	})
	t.Run("CRI status", func(t *testing.T) {
		full := &cri.ContainerStatus{Id: id1, Metadata: &cri.ContainerMetadata{Name: "app", Attempt: 3},
			State: cri.ContainerState_CONTAINER_EXITED, CreatedAt: 1, StartedAt: 2, FinishedAt: at.UnixNano(), ExitCode: -1,
			Image: &cri.ImageSpec{Image: "app:1"}, ImageRef: "sha256:x", Reason: "OOMKilled", Message: "m",
			Labels: labels, Annotations: labels, Mounts: []*cri.Mount{{ContainerPath: "/a", HostPath: "/b"}}, LogPath: "/log"}
		got := viaWire(t, &cri.ContainerStatusResponse{Status: full, Info: map[string]string{"info": "{}"}}, decodeContainerStatusResponse)
		want := pbContainerStatus{state: criExited, finishedAt: at.UnixNano(), exitCode: -1, reason: "OOMKilled"}
		if got == nil || *got != want {
			t.Errorf("%+v, want %+v", got, want)
		}
		for st := cri.ContainerState_CONTAINER_CREATED; st <= cri.ContainerState_CONTAINER_UNKNOWN; st++ {
			if got := viaWire(t, &cri.ContainerStatus{State: st}, decodeContainerStatus); int32(got.state) != int32(st) {
				t.Errorf("state %v read as %d", st, got.state)
			}
		}
		if got := viaWire(t, &cri.ContainerStatusResponse{}, decodeContainerStatusResponse); got != nil {
			t.Errorf("no status: %+v, want nil", got)
		}
	})
	t.Run("UInt64Value", func(t *testing.T) {
		for _, v := range []uint64{0, 1, 1 << 63} {
			if got := viaWire(t, wrapperspb.UInt64(v), decodeUInt64Value); got != v {
				t.Errorf("%d read as %d", v, got)
			}
		}
	})
}

func equalContainers(a, b pbContainer) bool {
	if a.id != b.id || a.image != b.image || a.createdAt != b.createdAt || len(a.labels) != len(b.labels) {
		return false
	}
	for k, v := range b.labels {
		if w, ok := a.labels[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The generated code reads what the source's encoders write.
func TestEncodeAsGenerated(t *testing.T) {
	filters := []string{`topic=="/exit137-exporter/barrier/1"`, "", `namespace=="k8s.io",topic=="/tasks/exit"`}
	body := pbAny{typeURL: uint64ValueURL, value: encodeUInt64Value(7)}
	cases := []struct {
		name string
		b    []byte
		into proto.Message
		want proto.Message
	}{
		{"SubscribeRequest", encodeSubscribeRequest(filters), &eventsapi.SubscribeRequest{}, &eventsapi.SubscribeRequest{Filters: filters}},
		{"SubscribeRequest, no filter", encodeSubscribeRequest(nil), &eventsapi.SubscribeRequest{}, &eventsapi.SubscribeRequest{}},
		{"PublishRequest", encodePublishRequest("/exit137-exporter/barrier/1", body), &eventsapi.PublishRequest{},
			&eventsapi.PublishRequest{Topic: "/exit137-exporter/barrier/1", Event: func() *anypb.Any {
				a, _ := anypb.New(wrapperspb.UInt64(7))
				return a
			}()}},
		{"PublishRequest, the barrier numbered 0", encodePublishRequest("/t", pbAny{typeURL: uint64ValueURL, value: encodeUInt64Value(0)}),
			&eventsapi.PublishRequest{}, &eventsapi.PublishRequest{Topic: "/t", Event: &anypb.Any{TypeUrl: uint64ValueURL}}},
		{"GetContainerRequest", encodeGetContainerRequest(id1), &containersapi.GetContainerRequest{}, &containersapi.GetContainerRequest{ID: id1}},
		{"ContainerStatusRequest", encodeContainerStatusRequest(id1), &cri.ContainerStatusRequest{}, &cri.ContainerStatusRequest{ContainerId: id1}},
	}
	for _, c := range cases {
		if err := proto.Unmarshal(c.b, c.into); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !proto.Equal(c.into, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.into, c.want)
		}
		// Byte for byte what the generated code writes.
		if want, _ := (proto.MarshalOptions{Deterministic: true}).Marshal(c.want); string(want) != string(c.b) {
			t.Errorf("%s: % x, the generated code writes % x", c.name, c.b, want)
		}
	}
	// The barrier's body is a UInt64Value to anypb, as it was when anypb
	// made it.
	var req eventsapi.PublishRequest
	if err := proto.Unmarshal(encodePublishRequest("/t", body), &req); err != nil {
		t.Fatal(err)
	}
	var n wrapperspb.UInt64Value
	if err := req.GetEvent().UnmarshalTo(&n); err != nil || n.GetValue() != 7 {
		t.Errorf("the barrier's body: %v %v", n.GetValue(), err)
	}
}

func TestAnyTypeName(t *testing.T) {
	for url, want := range map[string]string{
		"containerd.events.TaskExit":                      "containerd.events.TaskExit",
		"types.containerd.io/containerd.events.TaskExit":  "containerd.events.TaskExit",
		"type.googleapis.com/google.protobuf.UInt64Value": "google.protobuf.UInt64Value",
		"a/b/c.D": "c.D",
		"":        "",
		"x/":      "",
	} {
		if got := (pbAny{typeURL: url}).typeName(); got != want {
			t.Errorf("%q: %q, want %q", url, got, want)
		}
	}
}

// Fields the decoders do not know, or of a wire type they do not expect,
// are skipped; what they know is read all the same.
func TestDecodeSkipsUnknownFields(t *testing.T) {
	b, err := proto.Marshal(&apievents.TaskExit{ContainerID: id1, ID: id1, Pid: 42, ExitStatus: 137})
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 99, protowire.VarintType)
	b = protowire.AppendVarint(b, 1<<40)
	b = protowire.AppendTag(b, 100, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 7)
	b = protowire.AppendTag(b, 101, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 7)
	b = protowire.AppendTag(b, 102, protowire.BytesType)
	b = protowire.AppendString(b, "\xff not UTF-8, not read")
	b = protowire.AppendTag(b, 103, protowire.StartGroupType)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, 103, protowire.EndGroupType)
	// A known number of another wire type: not the field.
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, "not a pid")
	b = protowire.AppendTag(b, 1, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 1)
	got, err := decodeTaskExit(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := (pbTaskExit{containerID: id1, id: id1, pid: 42, exitStatus: 137, exitedAt: epoch}); got != want {
		t.Errorf("%+v, want %+v", got, want)
	}
	// protobuf's own reader agrees.
	var m apievents.TaskExit
	if err := proto.Unmarshal(b, &m); err != nil || m.GetPid() != 42 || m.GetContainerID() != id1 {
		t.Errorf("proto.Unmarshal: %v %v", &m, err)
	}
}

// Malformed bytes are an error naming the message, never a panic or a
// message read in part.
func TestDecodeRejectsMalformed(t *testing.T) {
	tag := func(num protowire.Number, typ protowire.Type, rest ...byte) []byte {
		return append(protowire.AppendTag(nil, num, typ), rest...)
	}
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(num, protowire.BytesType), s)
	}
	msg := func(num protowire.Number, m []byte) []byte {
		return protowire.AppendBytes(tag(num, protowire.BytesType), m)
	}
	envelope, _ := proto.Marshal(&apitypes.Envelope{Topic: topicTaskExit, Namespace: "k8s.io", Timestamp: timestamppb.Now()})
	decoders := map[string]func([]byte) error{
		"containerd.types.Envelope":                   func(b []byte) error { _, err := decodeEnvelope(b); return err },
		"containerd.services.containers.v1.Container": func(b []byte) error { _, err := decodeContainer(b); return err },
		"containerd.services.tasks.v1.ListTasksResponse": func(b []byte) error {
			_, err := decodeListTasksResponse(b)
			return err
		},
		"runtime.v1.ContainerStatusResponse": func(b []byte) error { _, err := decodeContainerStatusResponse(b); return err },
		"containerd.events.TaskExit":         func(b []byte) error { _, err := decodeTaskExit(b); return err },
		"containerd.events.ContainerCreate":  func(b []byte) error { _, err := decodeContainerCreate(b); return err },
		"google.protobuf.UInt64Value":        func(b []byte) error { _, err := decodeUInt64Value(b); return err },
	}
	malformed := []struct {
		name string
		b    []byte
	}{
		{"a tag cut short", []byte{0x80}},
		{"field number 0", []byte{0x00, 0x01}},
		{"a varint cut short", tag(2, protowire.VarintType, 0xff)},
		{"a varint of 11 bytes", tag(2, protowire.VarintType, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"a length past the end", tag(1, protowire.BytesType, 10, 'a')},
		{"a fixed64 cut short", tag(9, protowire.Fixed64Type, 1, 2, 3)},
		{"a group never ended", tag(9, protowire.StartGroupType)},
		{"an end of group alone", tag(9, protowire.EndGroupType)},
		{"wire type 6", tag(9, 6)},
		{"a good message cut short", envelope[:len(envelope)-1]},
	}
	for name, decode := range decoders {
		for _, c := range malformed {
			err := decode(c.b)
			if err == nil || !strings.Contains(err.Error(), "malformed "+name) {
				t.Errorf("%s, %s: %v, want an error naming %s", name, c.name, err, name)
			}
		}
	}
	// Malformed within a field the decoder reads: the error names both.
	nested := []struct {
		name, outer, inner string
		err                error
	}{
		{"an envelope's timestamp", "containerd.types.Envelope", "google.protobuf.Timestamp",
			func() error { _, err := decodeEnvelope(msg(1, []byte{0x08})); return err }()},
		{"an envelope's event", "containerd.types.Envelope", "google.protobuf.Any",
			func() error { _, err := decodeEnvelope(msg(4, str(1, "\xff"))); return err }()},
		{"a container's label", "containerd.services.containers.v1.Container", "map entry",
			func() error { _, err := decodeContainer(msg(2, []byte{0x0a, 0x05})); return err }()},
		{"a listed task", "containerd.services.tasks.v1.ListTasksResponse", "containerd.v1.types.Process",
			func() error { _, err := decodeListTasksResponse(msg(1, tag(3, protowire.VarintType))); return err }()},
		{"the CRI's status", "runtime.v1.ContainerStatusResponse", "runtime.v1.ContainerStatus",
			func() error { _, err := decodeContainerStatusResponse(msg(1, str(10, "\xc3"))); return err }()},
		{"an exit's exited_at", "containerd.events.TaskExit", "google.protobuf.Timestamp",
			func() error { _, err := decodeTaskExit(msg(5, []byte{0x10, 0x80})); return err }()},
	}
	for _, c := range nested {
		if c.err == nil || !strings.Contains(c.err.Error(), "malformed "+c.outer) || !strings.Contains(c.err.Error(), c.inner) {
			t.Errorf("%s: %v, want an error naming %s and %s", c.name, c.err, c.outer, c.inner)
		}
	}
	// A string that is not UTF-8, as proto3's reader rejects it.
	for name, err := range map[string]error{
		"topic": func() error { _, err := decodeEnvelope(str(3, "/tasks/\xffexit")); return err }(),
		"id":    func() error { _, err := decodeTaskExit(str(2, "\xe2\x82")); return err }(),
		"image": func() error { _, err := decodeContainerCreate(str(2, "\xc0\x80")); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("%s not UTF-8: %v", name, err)
		}
	}
	// The empty message is no error: every field takes its default.
	for name, decode := range decoders {
		if err := decode(nil); err != nil {
			t.Errorf("%s, empty: %v", name, err)
		}
	}
}
