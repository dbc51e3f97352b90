package testrig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// HelperImageRef is HelperImage as containerd and the CRI name it.
const HelperImageRef = "docker.io/library/" + HelperImage

// KubeNamespace is the containerd namespace of the CRI plugin.
const KubeNamespace = "k8s.io"

// Containerd is a second containerd of the test's own, beside the one
// dockerd runs (which it never touches): Debian's /usr/bin/containerd
// with its root, state, socket, runc root and logs in one directory, the
// CRI plugin set up as measured on the project's machines (see
// shared/reference), and the helper image as the sandbox image. Stop
// kills its tasks, then containerd and any shim left, by pid, unmounts
// what it mounted, removes its containers' cgroups and its directory.
type Containerd struct {
	// Dir holds everything; Address is the gRPC socket (ctr -a, the
	// containerd client, the kubelet's containerRuntimeEndpoint).
	Dir, Address string
	runcRoot     string
	proc         *proc

	mu       sync.Mutex
	imported map[string]bool // namespaces holding the helper image
	stopped  bool
	stopOnce sync.Once
}

// containerdConf is containerd 1.6's configuration for a second instance:
// nothing on the host's paths (/var/lib/containerd, /run/containerd,
// /opt/containerd), no ttrpc, debug or metrics listener. The CRI plugin
// must not give the sandbox its -998 oom_score_adj (no CAP_SYS_RESOURCE
// here: "can't get final child's PID from pipe: EOF"); pods use the host
// network, so the CNI directories stay empty.
const containerdConf = `version = 2
root = "DIR/root"
state = "DIR/state"

[grpc]
  address = "DIR/containerd.sock"
[ttrpc]
  address = ""
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "DIR/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "SANDBOX"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "DIR/cni/bin"
    conf_dir = "DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
      Root = "DIR/runc"
`

// StartContainerd checks that containerd can run here (root, Debian's
// containerd, ctr, runc and the runc shim) and starts a second
// containerd in a directory of its own; it stops when the test ends,
// pass or fail.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	// A short path: a unix socket's path holds 107 bytes.
	dir, err := os.MkdirTemp("", "e137-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	var c *Containerd
	t.Cleanup(func() {
		if c != nil {
			c.Stop(t)
		}
		removeDir(t, dir)
	})
	c = startContainerd(t, dir)
	return c
}

// startContainerd starts containerd in dir; stopping it is the caller's.
func startContainerd(t testing.TB, dir string) *Containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		Need(t, "containerd tests run as root")
	}
	for _, bin := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			Need(t, "%s is not installed (Debian's containerd, which docker.io brings): %v", bin, err)
		}
	}
	c := &Containerd{
		Dir:      dir,
		Address:  filepath.Join(dir, "containerd.sock"),
		runcRoot: filepath.Join(dir, "runc"),
		imported: map[string]bool{},
	}
	for _, sub := range []string{"cni/bin", "cni/net.d", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := strings.NewReplacer("DIR", dir, "SANDBOX", HelperImageRef).Replace(containerdConf)
	confPath := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.proc = startProcess(t, filepath.Join(dir, "containerd.log"), nil, "containerd", "--config", confPath)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if conn, err := net.Dial("unix", c.Address); err == nil {
			conn.Close()
			if _, err := c.TryCtr("", "version"); err == nil {
				return c
			}
		}
		if c.proc.exited() || time.Now().After(deadline) {
			msg := tailFile(filepath.Join(dir, "containerd.log"), 40)
			c.Stop(t)
			t.Fatalf("containerd did not answer on %s within 30s:\n%s", c.Address, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostNetworkCNI is a network configuration whose plugin is never run:
// the CRI reports its network ready once a configuration loads, and
// calls the plugin only for pods off the host network, which the rig
// does not run. With it the node is Ready, as on a real cluster, so the
// scheduler and the node lifecycle controller treat it as one.
const hostNetworkCNI = `{"cniVersion": "0.4.0", "name": "exit137-host-network-only", "plugins": [{"type": "exit137-no-such-plugin"}]}
`

// acceptHostNetworkPods writes hostNetworkCNI into the CNI directory.
func (c *Containerd) acceptHostNetworkPods(t testing.TB) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.Dir, "cni", "net.d", "10-host-network-only.conflist"), []byte(hostNetworkCNI), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TryCtr runs ctr against this containerd in a namespace ("" for ctr's
// default) and returns its output.
func (c *Containerd) TryCtr(namespace string, args ...string) (string, error) {
	// A containerd that is gone fails at once, not after ctr's 10s.
	all := []string{"-a", c.Address, "--connect-timeout", "2s"}
	if namespace != "" {
		all = append(all, "-n", namespace)
	}
	return runBounded(2*time.Minute, nil, "ctr", append(all, args...)...)
}

// Ctr is TryCtr that fails the test on error.
func (c *Containerd) Ctr(t testing.TB, namespace string, args ...string) string {
	t.Helper()
	out, err := c.TryCtr(namespace, args...)
	if err != nil {
		t.Fatalf("ctr -n %s %s: %v\n%s", namespace, strings.Join(args, " "), err, out)
	}
	return out
}

// ImportImage imports an OCI archive (WriteOCIArchive) into a namespace
// and unpacks it for the default snapshotter.
func (c *Containerd) ImportImage(t testing.TB, namespace, archive string) {
	t.Helper()
	c.Ctr(t, namespace, "images", "import", archive)
}

// ImportHelperImage imports the helper image (the helper binary as
// /helper, its entrypoint) into a namespace, once, and returns its ref.
// In KubeNamespace it is also the pods' sandbox (pause) image: with no
// arguments the helper sleeps until it is stopped.
func (c *Containerd) ImportHelperImage(t testing.TB, namespace string) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.imported[namespace] {
		return HelperImageRef
	}
	archive := filepath.Join(c.Dir, "helper-image.tar")
	if _, err := os.Stat(archive); err != nil {
		writeHelperArchive(t, archive)
	}
	c.ImportImage(t, namespace, archive)
	c.imported[namespace] = true
	return HelperImageRef
}

// writeHelperArchive writes the helper image's OCI archive to path.
func writeHelperArchive(t testing.TB, path string) {
	t.Helper()
	bin, err := os.ReadFile(BuildBinary(t, "internal/testrig/helper"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img := OCIImage{Ref: HelperImageRef, Files: []OCIFile{{Path: "helper", Mode: 0o755, Data: bin}}, Entrypoint: []string{"/helper"}}
	if err := WriteOCIArchive(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Run starts the helper image as a task with `ctr run -d` in a namespace
// (no network but loopback, output to Dir/logs/<namespace>-<id>.log) and
// removes it when the test ends. ctrArgs go before the image (say
// --memory-limit, --label), helperArgs after /helper.
func (c *Containerd) Run(t testing.TB, namespace, id string, ctrArgs []string, helperArgs ...string) {
	t.Helper()
	ref := c.ImportHelperImage(t, namespace)
	logPath := filepath.Join(c.Dir, "logs", namespace+"-"+id+".log")
	args := []string{"run", "-d", "--runc-root", c.runcRoot, "--log-uri", "file://" + logPath, "--label", OwnLabel}
	args = append(args, ctrArgs...)
	args = append(args, ref, id, "/helper")
	args = append(args, helperArgs...)
	t.Cleanup(func() {
		if !c.isStopped() { // Stop removed every container
			c.removeContainer(namespace, id)
		}
	})
	c.Ctr(t, namespace, args...)
}

func (c *Containerd) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

// WaitTaskStatus waits until ctr lists a task with a status (RUNNING,
// STOPPED, ...).
func (c *Containerd) WaitTaskStatus(t testing.TB, namespace, id, status string, within time.Duration) {
	t.Helper()
	var out string
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, _ = c.TryCtr(namespace, "tasks", "ls")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == id && f[2] == status {
				return
			}
		}
	}
	t.Fatalf("task %s in %s not %s within %s:\n%s", id, namespace, status, within, out)
}

// TaskPID is the host pid of a task's init.
func (c *Containerd) TaskPID(t testing.TB, namespace, id string) int {
	t.Helper()
	for _, line := range strings.Split(c.Ctr(t, namespace, "tasks", "ls"), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == id {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("ctr tasks ls: pid %q of %s", f[1], id)
			}
			return pid
		}
	}
	t.Fatalf("no task %s in namespace %s", id, namespace)
	return 0
}

// Log is what a task started by Run wrote.
func (c *Containerd) Log(namespace, id string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "logs", namespace+"-"+id+".log"))
	return string(b)
}

// Stop removes every container of every namespace (their tasks killed
// first), stops containerd and any shim of its own by pid, unmounts what
// is mounted under Dir, removes the containers' cgroups and Dir. It runs
// once, also as the test's cleanup; the kubelet must be stopped before,
// or it starts the pods again.
func (c *Containerd) Stop(t testing.TB) { c.stopOnce.Do(func() { c.stop(t) }) }

func (c *Containerd) stop(t testing.TB) {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	if c.proc != nil && !c.proc.exited() {
		c.removeAllContainers(t)
	}
	stopByPID(c.proc, 10*time.Second)
	for _, pid := range pidsMentioning(c.Address) {
		t.Logf("containerd: killing shim %d left behind", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	unmountUnder(c.Dir)
	removeDir(t, c.Dir)
}

// removeAllContainers removes every container in every namespace.
func (c *Containerd) removeAllContainers(t testing.TB) {
	out, err := c.TryCtr("", "namespaces", "ls", "-q")
	if err != nil {
		t.Logf("containerd: listing namespaces: %v: %s", err, out)
		return
	}
	for _, ns := range strings.Fields(out) {
		ids, err := c.TryCtr(ns, "containers", "ls", "-q")
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(ids) {
			c.removeContainer(ns, id)
		}
	}
}

// removeContainer kills and deletes a container's task, then the
// container and its snapshot, then its cgroup and the parents that
// emptied (ctr puts a task at /<namespace>/<id>).
func (c *Containerd) removeContainer(namespace, id string) {
	cgroup := c.cgroupsPath(namespace, id)
	_, _ = c.TryCtr(namespace, "tasks", "kill", "-a", "-s", "SIGKILL", id)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, err := c.TryCtr(namespace, "tasks", "delete", "-f", id)
		if err == nil || strings.Contains(out, "not found") {
			break
		}
	}
	_, _ = c.TryCtr(namespace, "containers", "delete", id)
	removeCgroupPath(cgroup)
}

// cgroupsPath is the cgroup a container's spec puts its task in.
func (c *Containerd) cgroupsPath(namespace, id string) string {
	out, err := c.TryCtr(namespace, "containers", "info", id)
	if err != nil {
		return ""
	}
	var info struct {
		Spec struct {
			Linux struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		} `json:"Spec"`
	}
	if json.Unmarshal([]byte(out), &info) != nil {
		return ""
	}
	return info.Spec.Linux.CgroupsPath
}

// removeCgroupPath removes a cgroupfs-driver path (/parent/child) in
// every hierarchy with its children, and then its parents while they are
// empty. rmdir fails on a cgroup that has a process or a child, so what
// is still in use, by the rig or anyone else, stays.
func removeCgroupPath(path string) {
	if !strings.HasPrefix(path, "/") || strings.Contains(path, ":") {
		return // not the cgroupfs driver's form
	}
	for _, root := range cgroupRoots() {
		removeCgroups([]string{filepath.Join(root, path)})
		for p := filepath.Dir(path); p != "/"; p = filepath.Dir(p) {
			if syscall.Rmdir(filepath.Join(root, p)) != nil {
				break
			}
		}
	}
}

// cgroupRoots are the hierarchies mounted under /sys/fs/cgroup.
func cgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	var roots []string
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range entries {
		dir := filepath.Join("/sys/fs/cgroup", e.Name())
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			roots = append(roots, dir)
		}
	}
	return roots
}

// pidsMentioning lists the processes with s in one of their arguments:
// the shims of one containerd carry its socket as -address, the cluster
// rig's programs their directory.
func pidsMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	mounts := mountsUnder(dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// mountsUnder lists the mount points at or below dir, in mount order.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if p := unescapeMount(f[4]); p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	return points
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeDir removes a rig's directory, retrying while a process that was
// just stopped still writes into it.
func removeDir(t testing.TB, dir string) {
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err = os.RemoveAll(dir); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Logf("removing %s: %v (still mounted: %q)", dir, err, mountsUnder(dir))
	}
}

// runBounded runs a command with a time bound and returns its combined
// output.
func runBounded(within time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: no answer within %s", name, within)
	}
	return strings.TrimSpace(buf.String()), err
}
