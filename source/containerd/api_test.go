package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/containerd/api/types/task"
	"google.golang.org/protobuf/types/known/timestamppb"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The client against a gRPC server: grpc-go's, serving the generated
// types.
func TestRPCAgainstGRPCServer(t *testing.T) {
	f, sock := newFakeContainerd(t)
	conn, err := newRPCConn("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.close()
	ctx := namespaced(context.Background(), DefaultNamespace)
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	f.mu.Lock()
	f.containers[id1] = &containersapi.Container{ID: id1, Image: "app:1", Labels: podLabels("app"), CreatedAt: timestamppb.New(created)}
	f.tasks[id1] = &task.Process{ID: id1, ContainerID: id1, Pid: 42, Status: task.Status_RUNNING}
	f.criStatus[id1] = &cri.ContainerStatus{Id: id1, State: cri.ContainerState_CONTAINER_EXITED, FinishedAt: 5, ExitCode: 2}
	f.mu.Unlock()

	t.Run("unary", func(t *testing.T) {
		c, err := conn.getContainer(ctx, id1)
		if err != nil || !equalContainers(c, pbContainer{id: id1, image: "app:1", labels: podLabels("app"), createdAt: created}) {
			t.Errorf("get: %+v %v", c, err)
		}
		tasks, err := conn.listTasks(ctx)
		if err != nil || len(tasks) != 1 || tasks[0] != (pbProcess{id: id1, pid: 42, status: taskStatusRunning, exitedAt: epoch}) {
			t.Errorf("tasks: %+v %v", tasks, err)
		}
		st, err := conn.containerStatus(ctx, id1)
		if err != nil || st == nil || *st != (pbContainerStatus{state: criExited, finishedAt: 5, exitCode: 2}) {
			t.Errorf("CRI status: %+v %v", st, err)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		f.mu.Lock()
		for i := range 300 {
			id := fmt.Sprintf("%064d", i)
			f.containers[id] = &containersapi.Container{ID: id, Labels: map[string]string{"n": strings.Repeat("x", 1000)}}
		}
		f.mu.Unlock()
		list, err := conn.listContainers(ctx)
		if err != nil || len(list) != 301 {
			t.Fatalf("%d containers, %v", len(list), err)
		}
		f.mu.Lock()
		for id := range f.containers {
			if id != id1 {
				delete(f.containers, id)
			}
		}
		f.mu.Unlock()
	})
	t.Run("statuses", func(t *testing.T) {
		if _, err := conn.getContainer(ctx, id2); codeOf(err) != codeNotFound || !strings.Contains(err.Error(), "container not found") {
			t.Errorf("a container not found: %v", err)
		}
		if _, err := conn.containerStatus(ctx, id2); codeOf(err) != codeNotFound {
			t.Errorf("a CRI status not found: %v", err)
		}
		if _, err := conn.call(ctx, "/runtime.v1.RuntimeService/Version", nil); codeOf(err) != codeUnimplemented {
			t.Errorf("a method not served: %v", err)
		}
		if _, err := conn.call(ctx, "/no.such.Service/Method", nil); codeOf(err) != codeUnimplemented {
			t.Errorf("a service not served: %v", err)
		}
		if _, err := conn.call(ctx, methodGetContainer, []byte{0xff}); codeOf(err) != codeInternal {
			t.Errorf("a request the server cannot read: %v", err)
		}
		// Publish needs the namespace's metadata.
		if err := conn.publish(context.Background(), "/t", pbAny{}); codeOf(err) != 9 { // FailedPrecondition
			t.Errorf("publish with no namespace: %v", err)
		}
	})
	t.Run("events, and a stream's end", func(t *testing.T) {
		sub, err := conn.subscribe(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		// Publish until the subscription is registered.
		got := make(chan pbEnvelope, 1)
		go func() {
			env, err := sub.recv()
			if err != nil {
				t.Error(err)
			}
			got <- env
		}()
		var env pbEnvelope
	wait:
		for {
			if err := conn.publish(ctx, "/exit137-exporter/test", pbAny{typeURL: uint64ValueURL, value: encodeUInt64Value(3)}); err != nil {
				t.Fatal(err)
			}
			select {
			case env = <-got:
				break wait
			case <-time.After(50 * time.Millisecond):
			}
		}
		if n, err := decodeUInt64Value(env.event.value); env.topic != "/exit137-exporter/test" || env.namespace != DefaultNamespace || n != 3 || err != nil {
			t.Errorf("%+v %d %v", env, n, err)
		}
		// An event of the fake's, then the cut: the stream ends with its status.
		for len(got) > 0 {
			<-got
		}
		f.emit(topicTaskExit, created, &apievents.TaskExit{ContainerID: id1, ID: id1, Pid: 42, ExitStatus: 137})
		env, err = sub.recv()
		if ev, derr := decode(env); err != nil || derr != nil || ev.exitCode != 137 || ev.container != id1 || !ev.at.Equal(created) {
			t.Errorf("the exit: %+v %v %v", ev, err, derr)
		}
		f.cut()
		if _, err := sub.recv(); codeOf(err) != codeUnavailable || !strings.Contains(err.Error(), "cut") {
			t.Errorf("at the cut: %v, want Unavailable", err)
		}
		if _, err := sub.recv(); codeOf(err) != codeUnavailable {
			t.Errorf("after the cut: %v, want the same", err)
		}
	})
	t.Run("a stream ended by its context", func(t *testing.T) {
		sctx, cancel := context.WithCancel(context.Background())
		sub, err := conn.subscribe(sctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		// recv returns once the context ends; a hang is the test's timeout.
		time.AfterFunc(100*time.Millisecond, cancel)
		if _, err := sub.recv(); codeOf(err) != codeCanceled || !errors.Is(err, context.Canceled) {
			t.Errorf("%v, want Canceled", err)
		}
	})
	// Every call, streams and unary calls at once among them, went over
	// one connection.
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if len(conn.conns) != 1 {
		t.Errorf("%d connections, want 1", len(conn.conns))
	}
}

// close ends the calls under way, and no call connects again.
func TestRPCConnClose(t *testing.T) {
	_, sock := newFakeContainerd(t)
	conn, err := newRPCConn(sock)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := conn.subscribe(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, conn.close) // a hang is the test's timeout
	if _, err := sub.recv(); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("%v, want an error", err)
	}
	if _, err := conn.listTasks(namespaced(context.Background(), DefaultNamespace)); codeOf(err) != codeUnavailable {
		t.Errorf("a call after the close: %v, want Unavailable", err)
	}
}

// A socket no one listens on: the call fails at once, Unavailable.
func TestRPCNoServer(t *testing.T) {
	conn, err := newRPCConn(t.TempDir() + "/none.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.close()
	if _, err := conn.subscribe(context.Background(), nil); codeOf(err) != codeUnavailable {
		t.Errorf("subscribe: %v, want Unavailable", err)
	}
	if _, err := conn.listTasks(context.Background()); codeOf(err) != codeUnavailable {
		t.Errorf("list tasks: %v, want Unavailable", err)
	}
}
