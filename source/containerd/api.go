package containerd

import (
	"context"
	"errors"
	"io"
)

// The methods of containerd's services, and of the CRI's RuntimeService
// on the same socket, that the source calls.
const (
	methodSubscribe       = "/containerd.services.events.v1.Events/Subscribe"
	methodPublish         = "/containerd.services.events.v1.Events/Publish"
	methodGetContainer    = "/containerd.services.containers.v1.Containers/Get"
	methodListContainers  = "/containerd.services.containers.v1.Containers/ListStream"
	methodListTasks       = "/containerd.services.tasks.v1.Tasks/List"
	methodContainerStatus = "/runtime.v1.RuntimeService/ContainerStatus"
)

// namespaced returns ctx speaking for a containerd namespace.
func namespaced(ctx context.Context, ns string) context.Context {
	return withMetadata(ctx, "containerd-namespace", ns)
}

// eventStream is a subscription's stream of events.
type eventStream struct{ s *rpcStream }

// subscribe subscribes to the events the filters match.
func (c *rpcConn) subscribe(ctx context.Context, filters []string) (eventStream, error) {
	s, err := c.open(ctx, methodSubscribe, encodeSubscribeRequest(filters))
	return eventStream{s}, err
}

// recv returns the next event.
func (e eventStream) recv() (pbEnvelope, error) {
	b, err := e.s.recv()
	if err != nil {
		return pbEnvelope{}, err
	}
	env, err := decodeEnvelope(b)
	if err != nil {
		e.s.close()
	}
	return env, err
}

// publish publishes an event in ctx's namespace.
func (c *rpcConn) publish(ctx context.Context, topic string, event pbAny) error {
	_, err := c.call(ctx, methodPublish, encodePublishRequest(topic, event))
	return err // the response is a google.protobuf.Empty
}

// getContainer reads a container's record.
func (c *rpcConn) getContainer(ctx context.Context, id string) (pbContainer, error) {
	b, err := c.call(ctx, methodGetContainer, encodeGetContainerRequest(id))
	if err != nil {
		return pbContainer{}, err
	}
	return decodeContainerMessage("containerd.services.containers.v1.GetContainerResponse", b)
}

// listContainers lists the containers of ctx's namespace, streamed: a
// node's container specs together can outgrow a single message.
func (c *rpcConn) listContainers(ctx context.Context) ([]pbContainer, error) {
	s, err := c.open(ctx, methodListContainers, nil) // ListContainersRequest{}
	if err != nil {
		return nil, err
	}
	defer s.close()
	var list []pbContainer
	for {
		b, err := s.recv()
		if errors.Is(err, io.EOF) {
			return list, nil
		}
		if err != nil {
			return nil, err
		}
		ct, err := decodeContainerMessage("containerd.services.containers.v1.ListContainerMessage", b)
		if err != nil {
			return nil, err
		}
		list = append(list, ct)
	}
}

// listTasks lists the tasks of ctx's namespace.
func (c *rpcConn) listTasks(ctx context.Context) ([]pbProcess, error) {
	b, err := c.call(ctx, methodListTasks, nil) // ListTasksRequest{}
	if err != nil {
		return nil, err
	}
	return decodeListTasksResponse(b)
}

// containerStatus asks the CRI for a container's status; nil when the
// answer holds none.
func (c *rpcConn) containerStatus(ctx context.Context, id string) (*pbContainerStatus, error) {
	b, err := c.call(ctx, methodContainerStatus, encodeContainerStatusRequest(id))
	if err != nil {
		return nil, err
	}
	return decodeContainerStatusResponse(b)
}
