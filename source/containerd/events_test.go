package containerd

import (
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

func TestDecode(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 5, time.UTC)
	exited := at.Add(-3 * time.Millisecond)
	cases := []struct {
		name  string
		topic string
		body  proto.Message
		want  event
	}{
		{"start", topicTaskStart, &apievents.TaskStart{ContainerID: id1, Pid: 42},
			event{container: id1, pid: 42}},
		{"the init's exit", topicTaskExit,
			&apievents.TaskExit{ContainerID: id1, ID: id1, Pid: 42, ExitStatus: 137, ExitedAt: timestamppb.New(exited)},
			event{container: id1, pid: 42, exitCode: 137, exitedAt: exited}},
		{"an exec probe's exit is an exec", topicTaskExit,
			&apievents.TaskExit{ContainerID: id1, ID: "probe-7", Pid: 77, ExitStatus: 1, ExitedAt: timestamppb.New(exited)},
			event{container: id1, pid: 77, exitCode: 1, exitedAt: exited, exec: true}},
		{"oom", topicTaskOOM, &apievents.TaskOOM{ContainerID: id1}, event{container: id1}},
		{"create", topicContainerCreate, &apievents.ContainerCreate{ID: id1, Image: "docker.io/library/app:1"},
			event{container: id1, image: "docker.io/library/app:1"}},
		{"delete", topicContainerDelete, &apievents.ContainerDelete{ID: id1}, event{container: id1}},
	}
	for _, c := range cases {
		// containerd 1.6 types a body by its full name; typeurl's own
		// marshalling adds no prefix either, but a prefixed URL is read too.
		prefixed, err := anypb.New(c.body)
		if err != nil {
			t.Fatal(err)
		}
		for form, body := range map[string]*anypb.Any{"containerd 1.6": containerdAny(c.body), "prefixed": prefixed} {
			got, err := decode(viaWire(t, envelope("k8s.io", c.topic, at, body), decodeEnvelope))
			if err != nil {
				t.Fatalf("%s (%s): %v", c.name, form, err)
			}
			want := c.want
			want.topic, want.namespace, want.at = c.topic, "k8s.io", at
			if got != want {
				t.Errorf("%s (%s):\n got %+v\nwant %+v", c.name, form, got, want)
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	unknown := &anypb.Any{TypeUrl: "containerd.events.NoSuchEvent", Value: []byte{1}}
	if _, err := decode(viaWire(t, envelope("k8s.io", topicTaskExit, time.Now(), unknown), decodeEnvelope)); err == nil {
		t.Error("an unknown body type decoded")
	}
	other, err := typeurl.MarshalAnyToProto(&apievents.ImageCreate{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decode(viaWire(t, envelope("k8s.io", "/images/create", time.Now(), other), decodeEnvelope)); err == nil {
		t.Error("an event of a topic not followed decoded")
	}
}

func TestOOMEvidence(t *testing.T) {
	at := time.Now()
	e := oomEvidence(event{topic: topicTaskOOM, namespace: "k8s.io", at: at, container: id1})
	if e.Container != id1 || !e.Time.Equal(at) || e.Source != "containerd" || e.Kind != attribution.KindDockerOOM || e.Pid != 0 {
		t.Fatalf("%+v", e)
	}
}
