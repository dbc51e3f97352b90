package containerd

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// criPod is a host-network pod made through the CRI, as a kubelet makes
// one: its sandbox, and containers of one name, a new id each attempt,
// with the labels the kubelet gives them.
type criPod struct {
	t       *testing.T
	rt      cri.RuntimeServiceClient
	id      string
	config  *cri.PodSandboxConfig
	attempt uint32
}

func runCRIPod(t *testing.T, address, namespace, name string) *criPod {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &criPod{t: t, rt: cri.NewRuntimeServiceClient(conn), config: &cri.PodSandboxConfig{
		Metadata: &cri.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: "uid-" + name},
		Labels:   map[string]string{labelPodName: name, labelPodNamespace: namespace, labelPodUID: "uid-" + name},
		Linux: &cri.LinuxPodSandboxConfig{SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE}}},
	}}
	resp, err := p.rt.RunPodSandbox(context.Background(), &cri.RunPodSandboxRequest{Config: p.config})
	if err != nil {
		t.Fatalf("run pod sandbox: %v", err)
	}
	p.id = resp.GetPodSandboxId()
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = p.rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: p.id})
		_, _ = p.rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: p.id})
	})
	return p
}

// start creates and starts the next attempt of the container, running
// the helper with args, and returns its id.
func (p *criPod) start(container string, args ...string) string {
	p.t.Helper()
	return p.startLimited(container, 0, args...)
}

// startLimited is start with a memory limit (0: none).
func (p *criPod) startLimited(container string, memoryLimit int64, args ...string) string {
	p.t.Helper()
	ctx := context.Background()
	config := &cri.ContainerConfig{Metadata: &cri.ContainerMetadata{Name: container, Attempt: p.attempt},
		Labels: map[string]string{labelPodName: p.config.Metadata.Name, labelPodNamespace: p.config.Metadata.Namespace,
			labelPodUID: p.config.Metadata.Uid, labelContainerName: container},
		Image: &cri.ImageSpec{Image: testrig.HelperImageRef}, Command: []string{"/helper"}, Args: args}
	if memoryLimit > 0 {
		config.Linux = &cri.LinuxContainerConfig{Resources: &cri.LinuxContainerResources{MemoryLimitInBytes: memoryLimit}}
	}
	created, err := p.rt.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: p.id, SandboxConfig: p.config, Config: config})
	if err != nil {
		p.t.Fatalf("create container: %v", err)
	}
	p.attempt++
	id := created.GetContainerId()
	if _, err := p.rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: id}); err != nil {
		p.t.Fatalf("start container %s: %v", id, err)
	}
	return id
}

// awaitExited waits until the CRI reports the container exited.
func (p *criPod) awaitExited(id string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := p.rt.ContainerStatus(context.Background(), &cri.ContainerStatusRequest{ContainerId: id})
		if err == nil && st.GetStatus().GetState() == cri.ContainerState_CONTAINER_EXITED {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("container %s did not exit: %v %v", id, st.GetStatus().GetState(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// On a real containerd's CRI plugin, as a kubelet drives it: a crash loop
// is many container ids of one namespace/pod/container name, each death
// counted once; an exec probe's exit and the sandbox's never; an OOM kill
// is oom by containerd's /tasks/oom; a container killed during a cut, its
// task deleted by the CRI plugin, is counted from the CRI's status.
func TestRealCRICountsEachDeathOnce(t *testing.T) {
	testrig.SkipInShortLoop(t)
	c := testrig.StartContainerd(t)
	c.ImportHelperImage(t, testrig.KubeNamespace)
	h := newHarnessAt(t, Options{Address: c.Address})
	h.connect()
	pod := runCRIPod(t, c.Address, "shop", "web-0")
	name := "shop/web-0/app"

	for range 3 {
		pod.awaitExited(pod.start("app", "-exit", "1"))
	}
	running := pod.start("app")
	exec, err := pod.rt.ExecSync(context.Background(), &cri.ExecSyncRequest{ContainerId: running, Cmd: []string{"/helper", "-exit", "3"}, Timeout: 10})
	if err != nil || exec.GetExitCode() != 3 {
		t.Fatalf("exec probe: exit %d, %v; want exit 3", exec.GetExitCode(), err)
	}
	pod.awaitExited(pod.startLimited("app", 32<<20, "-alloc", "200"))
	h.awaitExits(map[string]uint64{name + " 1 none": 3, name + " 137 oom": 1})

	h.disconnect()
	if _, err := pod.rt.StopContainer(context.Background(), &cri.StopContainerRequest{ContainerId: running, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	pod.awaitExited(running)
	// The premise: the CRI plugin deleted the task, so only the CRI's
	// status tells the reconcile this exit.
	if ls := c.Ctr(t, testrig.KubeNamespace, "task", "ls"); strings.Contains(ls, running) {
		t.Fatalf("the CRI plugin kept the exited task:\n%s", ls)
	}
	h.connect()
	want := map[string]uint64{name + " 1 none": 3, name + " 137 oom": 1, name + " 137 unknown": 1}
	h.awaitExits(want)

	// The pod goes: its sandbox's death is not counted, and nothing is
	// counted again.
	if _, err := pod.rt.StopPodSandbox(context.Background(), &cri.StopPodSandboxRequest{PodSandboxId: pod.id}); err != nil {
		t.Fatal(err)
	}
	h.awaitExits(want)
	views := h.tracker.Views()
	if len(views) == 0 {
		t.Fatal("the tracker knows no container of the pod")
	}
	for id, v := range views {
		if id == pod.id || v.Name != name || v.Namespace != "shop" || v.Pod != "web-0" || v.PodUID != "uid-web-0" ||
			v.Container != "app" || v.Image != testrig.HelperImageRef {
			t.Errorf("container %s known as %+v, want the app container of shop/web-0", id, v.Meta)
		}
	}
}

// A fast crash loop while the connection is cut again and again: every
// death counted exactly once, whether its events came live, were buffered
// during a reconcile, or were lost in a cut.
func TestRealCrashLoopAcrossCuts(t *testing.T) {
	testrig.SkipInShortLoop(t)
	c := testrig.StartContainerd(t)
	c.ImportHelperImage(t, testrig.KubeNamespace)
	h := newHarnessAt(t, Options{Address: c.Address})
	pod := runCRIPod(t, c.Address, "shop", "loop-0")
	const deaths = 24
	h.connect()
	// The cutter ends the session every 150 ms and starts the next one
	// after 0 to 200 ms, until the crash loop is over.
	over, cutsDone := make(chan struct{}), make(chan int)
	go func() {
		cuts := 0
		for {
			select {
			case <-over:
				cutsDone <- cuts
				return
			case <-time.After(150 * time.Millisecond):
				h.leave()
				<-h.done
				time.Sleep(time.Duration(cuts%3) * 100 * time.Millisecond)
				h.start()
				cuts++
			}
		}
	}()
	for i := range deaths {
		id := pod.start("app", "-exit", "1")
		if i%2 == 0 {
			pod.awaitExited(id) // the next start after this death, as a kubelet restarts
		}
	}
	close(over)
	cuts := <-cutsDone
	h.disconnect()
	h.connect()
	h.awaitExits(map[string]uint64{"shop/loop-0/app 1 none": deaths})
	t.Logf("%d deaths across %d cuts", deaths, cuts)
}
