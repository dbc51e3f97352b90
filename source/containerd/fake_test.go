package containerd

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeContainerd serves the part of containerd's API the source uses, in
// one namespace, as containerd 1.6 does: events published to the
// subscribers registered at the time (no replay), event bodies typed
// "containerd.events.X", the container and task lists, and the CRI's
// container status. cut ends every subscription; lateSubscribe delays a
// subscription's registration after the call, as a loaded daemon may.
type fakeContainerd struct {
	mu            sync.Mutex
	containers    map[string]*containersapi.Container
	tasks         map[string]*task.Process
	criStatus     map[string]*cri.ContainerStatus
	subscribers   map[chan *apitypes.Envelope]bool
	subscriptions int
	cutCh         chan struct{}
	lateSubscribe time.Duration
	// onList runs while the fake answers the container list: what happens
	// during a reconcile.
	onList func()
}

func newFakeContainerd(t *testing.T) (*fakeContainerd, string) {
	f := &fakeContainerd{containers: map[string]*containersapi.Container{}, tasks: map[string]*task.Process{},
		criStatus: map[string]*cri.ContainerStatus{}, subscribers: map[chan *apitypes.Envelope]bool{}, cutCh: make(chan struct{})}
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	eventsapi.RegisterEventsServer(srv, fakeEvents{f: f})
	containersapi.RegisterContainersServer(srv, fakeContainers{f: f})
	tasksapi.RegisterTasksServer(srv, fakeTasks{f: f})
	cri.RegisterRuntimeServiceServer(srv, fakeCRI{f: f})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return f, sock
}

// containerdAny types a body as containerd 1.6 does: its full name, no
// prefix.
func containerdAny(m proto.Message) *anypb.Any {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return &anypb.Any{TypeUrl: string(m.ProtoReflect().Descriptor().FullName()), Value: b}
}

func envelope(ns, topic string, at time.Time, body *anypb.Any) *apitypes.Envelope {
	return &apitypes.Envelope{Timestamp: timestamppb.New(at), Namespace: ns, Topic: topic, Event: body}
}

// emit publishes an event to the subscribers registered now.
func (f *fakeContainerd) emit(topic string, at time.Time, body proto.Message) {
	f.publish(envelope(DefaultNamespace, topic, at, containerdAny(body)))
}

func (f *fakeContainerd) publish(env *apitypes.Envelope) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subscribers {
		ch <- env
	}
}

// cut ends every subscription with an error, as a lost connection does.
func (f *fakeContainerd) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.cutCh)
	f.cutCh = make(chan struct{})
}

func (f *fakeContainerd) subscribed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subscriptions
}

// The services, each its own type: their method names overlap.
type (
	fakeEvents struct {
		eventsapi.UnimplementedEventsServer
		f *fakeContainerd
	}
	fakeContainers struct {
		containersapi.UnimplementedContainersServer
		f *fakeContainerd
	}
	fakeTasks struct {
		tasksapi.UnimplementedTasksServer
		f *fakeContainerd
	}
	fakeCRI struct {
		cri.UnimplementedRuntimeServiceServer
		f *fakeContainerd
	}
)

func (s fakeEvents) Subscribe(_ *eventsapi.SubscribeRequest, stream eventsapi.Events_SubscribeServer) error {
	f := s.f
	f.mu.Lock()
	late, cut := f.lateSubscribe, f.cutCh
	f.mu.Unlock()
	time.Sleep(late)
	ch := make(chan *apitypes.Envelope, 1024)
	f.mu.Lock()
	f.subscribers[ch] = true
	f.subscriptions++
	f.mu.Unlock()
	defer func() { f.mu.Lock(); delete(f.subscribers, ch); f.mu.Unlock() }()
	for {
		select {
		case env := <-ch:
			if err := stream.Send(env); err != nil {
				return err
			}
		case <-cut:
			return status.Error(codes.Unavailable, "cut")
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (s fakeEvents) Publish(ctx context.Context, req *eventsapi.PublishRequest) (*emptypb.Empty, error) {
	f := s.f
	md, _ := metadata.FromIncomingContext(ctx)
	ns := md.Get("containerd-namespace")
	if len(ns) == 0 {
		return nil, status.Error(codes.FailedPrecondition, "namespace is required")
	}
	f.publish(&apitypes.Envelope{Timestamp: timestamppb.Now(), Namespace: ns[0], Topic: req.GetTopic(), Event: req.GetEvent()})
	return &emptypb.Empty{}, nil
}

func (s fakeContainers) ListStream(_ *containersapi.ListContainersRequest, stream containersapi.Containers_ListStreamServer) error {
	f := s.f
	if f.onList != nil {
		f.onList()
	}
	f.mu.Lock()
	var list []*containersapi.Container
	for _, c := range f.containers {
		list = append(list, c)
	}
	f.mu.Unlock()
	for _, c := range list {
		if err := stream.Send(&containersapi.ListContainerMessage{Container: c}); err != nil {
			return err
		}
	}
	return nil
}

func (s fakeContainers) Get(_ context.Context, req *containersapi.GetContainerRequest) (*containersapi.GetContainerResponse, error) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[req.GetID()]
	if !ok {
		return nil, status.Error(codes.NotFound, "container not found")
	}
	return &containersapi.GetContainerResponse{Container: c}, nil
}

func (s fakeTasks) List(context.Context, *tasksapi.ListTasksRequest) (*tasksapi.ListTasksResponse, error) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &tasksapi.ListTasksResponse{}
	for _, p := range f.tasks {
		resp.Tasks = append(resp.Tasks, p)
	}
	return resp, nil
}

func (s fakeCRI) ContainerStatus(_ context.Context, req *cri.ContainerStatusRequest) (*cri.ContainerStatusResponse, error) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.criStatus[req.GetContainerId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "container not found")
	}
	return &cri.ContainerStatusResponse{Status: st}, nil
}

// What a kubelet's runtime does, step by step: each step changes the
// lists and publishes the event, as containerd does.

func (f *fakeContainerd) create(id string, labels map[string]string, at time.Time) {
	f.mu.Lock()
	f.containers[id] = &containersapi.Container{ID: id, Image: "docker.io/library/app:1", Labels: labels, CreatedAt: timestamppb.New(at)}
	f.mu.Unlock()
	f.emit(topicContainerCreate, at, &apievents.ContainerCreate{ID: id, Image: "docker.io/library/app:1"})
}

func (f *fakeContainerd) start(id string, pid int, at time.Time) {
	f.mu.Lock()
	f.tasks[id] = &task.Process{ID: id, ContainerID: id, Pid: uint32(pid), Status: task.Status_RUNNING}
	f.mu.Unlock()
	f.emit(topicTaskStart, at, &apievents.TaskStart{ContainerID: id, Pid: uint32(pid)})
}

// run creates and starts a container, its events stamped by now.
func (f *fakeContainerd) run(id string, labels map[string]string, pid int, now func() time.Time) {
	f.create(id, labels, now())
	f.start(id, pid, now())
}

// exit ends a task; a CRI container's task is deleted and its status
// kept, as the CRI plugin does.
func (f *fakeContainerd) exit(id string, code int, exitedAt, at time.Time) {
	f.mu.Lock()
	p := f.tasks[id]
	if isCRIContainer(f.containers[id].GetLabels()) {
		delete(f.tasks, id)
		f.criStatus[id] = &cri.ContainerStatus{Id: id, State: cri.ContainerState_CONTAINER_EXITED,
			FinishedAt: exitedAt.UnixNano(), ExitCode: int32(code), Reason: "Error"}
	} else {
		p.Status, p.ExitStatus, p.ExitedAt = task.Status_STOPPED, uint32(code), timestamppb.New(exitedAt)
	}
	f.mu.Unlock()
	f.emit(topicTaskExit, at, &apievents.TaskExit{ContainerID: id, ID: id, Pid: p.GetPid(), ExitStatus: uint32(code),
		ExitedAt: timestamppb.New(exitedAt)})
}

func (f *fakeContainerd) execExit(id, execID string, code int, at time.Time) {
	f.emit(topicTaskExit, at, &apievents.TaskExit{ContainerID: id, ID: execID, Pid: 999, ExitStatus: uint32(code),
		ExitedAt: timestamppb.New(at)})
}

func (f *fakeContainerd) remove(id string, at time.Time) {
	f.mu.Lock()
	delete(f.containers, id)
	delete(f.tasks, id)
	delete(f.criStatus, id)
	f.mu.Unlock()
	f.emit(topicContainerDelete, at, &apievents.ContainerDelete{ID: id})
}
