package containerd

import (
	"fmt"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"

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
func decode(env *apitypes.Envelope) (event, error) {
	ev := event{topic: env.GetTopic(), namespace: env.GetNamespace(), at: env.GetTimestamp().AsTime()}
	body, err := typeurl.UnmarshalAny(env.GetEvent())
	if err != nil {
		return ev, fmt.Errorf("decode %s event: %w", ev.topic, err)
	}
	switch b := body.(type) {
	case *apievents.TaskStart:
		ev.container, ev.pid = b.GetContainerID(), int(b.GetPid())
	case *apievents.TaskExit:
		ev.container, ev.pid = b.GetContainerID(), int(b.GetPid())
		ev.exitCode, ev.exitedAt = int(b.GetExitStatus()), b.GetExitedAt().AsTime()
		ev.exec = b.GetID() != b.GetContainerID()
	case *apievents.TaskOOM:
		ev.container = b.GetContainerID()
	case *apievents.ContainerCreate:
		ev.container, ev.image = b.GetID(), b.GetImage()
	case *apievents.ContainerDelete:
		ev.container = b.GetID()
	default:
		return ev, fmt.Errorf("unexpected %T on topic %s", body, ev.topic)
	}
	return ev, nil
}

// oomEvidence is what a /tasks/oom event says: the container's memory
// cgroup hit an OOM. It names no victim, as Docker's oom event does not.
func oomEvidence(ev event) attribution.Evidence {
	return attribution.Evidence{Container: ev.container, Time: ev.at, Source: "containerd", Kind: attribution.KindDockerOOM,
		Detail: "containerd event: /tasks/oom in namespace " + ev.namespace + " (the container's memory cgroup hit an OOM)"}
}
