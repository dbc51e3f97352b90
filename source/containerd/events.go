package containerd

import (
	"fmt"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// The topics the source follows.
const (
	topicTaskStart       = "/tasks/start"
	topicTaskExit        = "/tasks/exit"
	topicTaskOOM         = "/tasks/oom"
	topicContainerCreate = "/containers/create"
	topicContainerDelete = "/containers/delete"
)

var topics = []string{topicTaskStart, topicTaskExit, topicTaskOOM, topicContainerCreate, topicContainerDelete}

// event is what the source reads from one envelope.
type event struct {
	topic, namespace string
	// at is the envelope's time: when containerd (or the task's shim)
	// published the event. Start and exit events of one task are stamped
	// in order; exitedAt may lie before the start's stamp for a process
	// that dies at once.
	at        time.Time
	container string
	image     string
	pid       int
	exitCode  int
	exitedAt  time.Time
	// exec marks the exit of a process exec'd into the container (an exec
	// probe, kubectl exec): its exit is not the container's death.
	exec bool
}

// decode reads an envelope of one of the followed topics.
func decode(env pbEnvelope) (event, error) {
	ev := event{topic: env.topic, namespace: env.namespace, at: env.timestamp}
	var err error
	switch env.event.typeName() {
	case "containerd.events.TaskStart":
		var b pbTaskStart
		b, err = decodeTaskStart(env.event.value)
		ev.container, ev.pid = b.containerID, int(b.pid)
	case "containerd.events.TaskExit":
		var b pbTaskExit
		b, err = decodeTaskExit(env.event.value)
		ev.container, ev.pid = b.containerID, int(b.pid)
		ev.exitCode, ev.exitedAt = int(b.exitStatus), b.exitedAt
		ev.exec = b.id != b.containerID
	case "containerd.events.TaskOOM":
		var b pbTaskOOM
		b, err = decodeTaskOOM(env.event.value)
		ev.container = b.containerID
	case "containerd.events.ContainerCreate":
		var b pbContainerCreate
		b, err = decodeContainerCreate(env.event.value)
		ev.container, ev.image = b.id, b.image
	case "containerd.events.ContainerDelete":
		var b pbContainerDelete
		b, err = decodeContainerDelete(env.event.value)
		ev.container = b.id
	default:
		return ev, fmt.Errorf("unexpected %q on topic %s", env.event.typeURL, ev.topic)
	}
	if err != nil {
		return ev, fmt.Errorf("decode %s event: %w", ev.topic, err)
	}
	return ev, nil
}

// oomEvidence is what a /tasks/oom event says: the container's memory
// cgroup hit an OOM. It names no victim, as Docker's oom event does not.
func oomEvidence(ev event) attribution.Evidence {
	return attribution.Evidence{Container: ev.container, Time: ev.at, Source: "containerd", Kind: attribution.KindDockerOOM,
		Detail: "containerd event: /tasks/oom in namespace " + ev.namespace + " (the container's memory cgroup hit an OOM)"}
}
