package testrig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// KubeNode is the name the rig's kubelet registers.
const KubeNode = "exit137-node"

// kubeLockPath serialises the cluster rigs across test processes and
// scripts/kube-rig: every kubelet puts its pods under the host's
// /kubepods cgroups.
const kubeLockPath = "/run/exit137-test/kube.lock"

// KubeOptions chooses what the cluster rig runs.
type KubeOptions struct {
	// Controllers starts kube-scheduler and kube-controller-manager too,
	// for DaemonSets and other controllers' pods, and turns the
	// ServiceAccount admission plugin on (the controller manager creates
	// the service accounts and the root CA config map it needs). Without
	// them a pod must set spec.nodeName and the plugin is off.
	Controllers bool
	// Kubelet changes the kubelet's configuration before it first starts.
	Kubelet func(cfg map[string]any)
}

// Kube is a single-node Kubernetes on loopback, under one temporary
// directory: etcd, kube-apiserver (token auth, Node and RBAC
// authorization), a containerd of its own, the kubelet and, as chosen,
// the scheduler and the controller manager. Pods use the host network
// (no CNI plugin runs) and images are imported, never pulled.
type Kube struct {
	Dir string
	// APIServer is the server's URL; Token is the admin's bearer token
	// (group system:masters); Kubeconfig is an admin kubeconfig file and
	// CACert the CA that signed the server's certificate.
	APIServer, Token, Kubeconfig, CACert string
	// Node is the kubelet's node name.
	Node       string
	Containerd *Containerd
	// ContainerdAddress is the CRI and containerd socket; CrictlConfig
	// points crictl at it (crictl --config, CRI_CONFIG_FILE).
	ContainerdAddress, CrictlConfig string

	pki           kubePKI
	opts          KubeOptions
	bin           string
	kubeletConfig map[string]any
	kubeletHealth string
	madeHostDirs  []string // by the kubelet, outside Dir

	mu       sync.Mutex
	procs    map[string]*proc // by program name
	stopOnce sync.Once
}

// StartKube starts the cluster rig and stops it when the test ends. The
// binaries are built first when the cache lacks them (several minutes;
// scripts/kube-rig build does it ahead).
func StartKube(t testing.TB, opts KubeOptions) *Kube {
	t.Helper()
	if os.Geteuid() != 0 {
		Need(t, "the cluster rig runs as root")
	}
	lockFile(t, kubeLockPath)
	sweepStaleKubeRigs(t)
	if err := BuildKubeBinaries(t.Logf); err != nil {
		Need(t, "building the cluster rig's binaries: %v", err)
	}
	start := time.Now()
	dir, err := os.MkdirTemp("", "e137-kube-")
	if err != nil {
		t.Fatal(err)
	}
	k := &Kube{Dir: dir, Node: KubeNode, opts: opts, bin: KubeBinDir(), procs: map[string]*proc{}}
	t.Cleanup(func() { k.Stop(t) })
	for _, sub := range []string{"pki", "logs", "kubelet", "pod-logs", "volume-plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if k.pki, err = writeKubePKI(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	k.CACert = k.pki.CACert
	k.Containerd = startContainerd(t, filepath.Join(dir, "containerd"))
	k.ContainerdAddress = k.Containerd.Address
	k.CrictlConfig = filepath.Join(dir, "crictl.yaml")
	crictl := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%[1]s\ntimeout: 30\n", k.ContainerdAddress)
	if err := os.WriteFile(k.CrictlConfig, []byte(crictl), 0o644); err != nil {
		t.Fatal(err)
	}
	k.Containerd.ImportHelperImage(t, KubeNamespace) // the sandbox image
	k.Containerd.acceptHostNetworkPods(t)
	etcd := k.startEtcd(t)
	k.startAPIServer(t, etcd)
	if opts.Controllers {
		k.startControllers(t)
	}
	k.kubeletConfig = k.defaultKubeletConfig(t)
	if opts.Kubelet != nil {
		opts.Kubelet(k.kubeletConfig)
	}
	k.madeHostDirs = missingDirs(kubeletHostDirs)
	k.startKubelet(t)
	k.waitNodeReady(t, 2*time.Minute)
	t.Logf("cluster rig up in %s: API server %s, containerd %s, kubeconfig %s",
		time.Since(start).Round(10*time.Millisecond), k.APIServer, k.ContainerdAddress, k.Kubeconfig)
	return k
}

// Stop stops everything by pid, in order: the kubelet (or it would
// restart what follows), the controllers, every container through
// containerd, containerd, the API server, etcd; then it removes the
// kubelet's cgroups and what it wrote outside Dir, unmounts what is
// mounted under Dir (the kubelet's volumes and its root's own bind
// mount) and removes Dir. It runs once, also as the test's cleanup.
func (k *Kube) Stop(t testing.TB) { k.stopOnce.Do(func() { k.stop(t) }) }

func (k *Kube) stop(t testing.TB) {
	start := time.Now()
	defer func() { t.Logf("cluster rig stopped and removed in %s", time.Since(start).Round(10*time.Millisecond)) }()
	for _, name := range []string{"kubelet", "kube-scheduler", "kube-controller-manager"} {
		k.stopProcess(name)
	}
	if k.Containerd != nil {
		k.Containerd.Stop(t)
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		k.stopProcess(name)
	}
	removeCgroupPath("/kubepods")
	removeKubeletHostPaths(k.Dir, k.madeHostDirs)
	unmountUnder(k.Dir)
	removeDir(t, k.Dir)
}

func (k *Kube) stopProcess(name string) {
	k.mu.Lock()
	p := k.procs[name]
	delete(k.procs, name)
	k.mu.Unlock()
	stopByPID(p, 15*time.Second)
}

// start runs one of the rig's binaries, logging to Dir/logs/<name>.log.
func (k *Kube) start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := startProcess(t, k.logPath(name), nil, filepath.Join(k.bin, name), args...)
	k.mu.Lock()
	k.procs[name] = p
	k.mu.Unlock()
	return p
}

func (k *Kube) logPath(name string) string { return filepath.Join(k.Dir, "logs", name+".log") }

// Log is what one of the rig's programs logged (kubelet, kube-apiserver,
// etcd, kube-scheduler, kube-controller-manager).
func (k *Kube) Log(name string) string {
	b, _ := os.ReadFile(k.logPath(name))
	return string(b)
}

// waitUp polls ready until it holds, failing the test with the tail of
// the program's log when the program ends or within passes.
func (k *Kube) waitUp(t testing.TB, name string, p *proc, within time.Duration, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ready() {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("%s did not come up within %s:\n%s", name, within, tailFile(k.logPath(name), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startEtcd starts etcd on two free loopback ports with its own data
// directory and returns its client URL.
func (k *Kube) startEtcd(t testing.TB) string {
	t.Helper()
	client, peer := "http://"+FreeAddr(t), "http://"+FreeAddr(t)
	p := k.start(t, "etcd",
		"--name=rig",
		"--data-dir="+filepath.Join(k.Dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=rig="+peer,
		"--unsafe-no-fsync", // a test's data: speed over durability
		"--log-level=warn")
	k.waitUp(t, "etcd", p, time.Minute, func() bool { return httpOK(plainHTTP, client+"/health", "") })
	return client
}

// startAPIServer starts kube-apiserver on a free loopback port with a
// static token file: the admin (system:masters) and the kubelet (its
// node's identity, for the Node authorizer).
func (k *Kube) startAPIServer(t testing.TB, etcd string) {
	t.Helper()
	k.Token = randHex(16)
	kubeletToken := randHex(16)
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n%s,system:node:%s,kubelet,\"system:nodes\"\n", k.Token, kubeletToken, k.Node)
	tokenFile := filepath.Join(k.Dir, "pki", "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(freePort(t))
	k.APIServer = "https://127.0.0.1:" + port
	args := []string{
		"--etcd-servers=" + etcd,
		"--bind-address=127.0.0.1", "--secure-port=" + port,
		"--cert-dir=" + filepath.Join(k.Dir, "pki", "apiserver"),
		"--tls-cert-file=" + k.pki.ServerCert, "--tls-private-key-file=" + k.pki.ServerKey,
		"--client-ca-file=" + k.pki.CACert,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-key-file=" + k.pki.SAPub,
		"--service-account-signing-key-file=" + k.pki.SAKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--profiling=false",
	}
	if !k.opts.Controllers {
		// No controller manager makes the default service account it
		// would wait for.
		args = append(args, "--disable-admission-plugins=ServiceAccount")
	}
	p := k.start(t, "kube-apiserver", args...)
	client := k.httpClient(t)
	k.waitUp(t, "kube-apiserver", p, 2*time.Minute, func() bool { return httpOK(client, k.APIServer+"/readyz", k.Token) })
	k.Kubeconfig = k.writeKubeconfig(t, "admin", k.Token)
	k.writeKubeconfig(t, "kubelet", kubeletToken)
}

// startControllers starts kube-scheduler and kube-controller-manager
// with the admin's kubeconfig, on free loopback ports.
func (k *Kube) startControllers(t testing.TB) {
	t.Helper()
	k.start(t, "kube-scheduler",
		"--kubeconfig="+k.Kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(freePort(t)))
	k.start(t, "kube-controller-manager",
		"--kubeconfig="+k.Kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(freePort(t)),
		"--use-service-account-credentials=false",
		"--service-account-private-key-file="+k.pki.SAKey,
		"--root-ca-file="+k.pki.CACert)
}

// writeKubeconfig writes Dir/<name>.kubeconfig for a bearer token.
func (k *Kube) writeKubeconfig(t testing.TB, name, token string) string {
	t.Helper()
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: rig
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: rig
  context:
    cluster: rig
    user: %s
current-context: rig
`, k.APIServer, k.pki.CACert, name, token, name)
	path := filepath.Join(k.Dir, name+".kubeconfig")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// defaultKubeletConfig is the KubeletConfiguration measured on the
// project's machines (see shared/reference): cgroup v1 allowed, the
// cgroupfs driver, no iptables, served on loopback only, everything it
// writes under Dir. Its own oom_score_adj stays 0 (-999 needs
// CAP_SYS_RESOURCE); only memory.available evicts, so a full disk on a
// test machine does not; image garbage collection is off, so the
// imported images stay.
func (k *Kube) defaultKubeletConfig(t testing.TB) map[string]any {
	t.Helper()
	healthzPort := freePort(t)
	k.kubeletHealth = fmt.Sprintf("http://127.0.0.1:%d/healthz", healthzPort)
	return map[string]any{
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"kind":                     "KubeletConfiguration",
		"containerRuntimeEndpoint": "unix://" + k.ContainerdAddress,
		"cgroupDriver":             "cgroupfs",
		"failCgroupV1":             false,
		"failSwapOn":               false,
		"makeIPTablesUtilChains":   false,
		"address":                  "127.0.0.1",
		"port":                     freePort(t),
		"readOnlyPort":             0,
		"healthzBindAddress":       "127.0.0.1",
		"healthzPort":              healthzPort,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": true},
			"webhook":   map[string]any{"enabled": false},
		},
		"authorization":               map[string]any{"mode": "AlwaysAllow"},
		"podLogsDir":                  filepath.Join(k.Dir, "pod-logs"),
		"volumePluginDir":             filepath.Join(k.Dir, "volume-plugins"),
		"oomScoreAdj":                 0,
		"evictionHard":                map[string]any{"memory.available": "100Mi"},
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"clusterDomain":               "cluster.local",
	}
}

// startKubelet writes the configuration and starts the kubelet, waiting
// for its healthz.
func (k *Kube) startKubelet(t testing.TB) {
	t.Helper()
	data, err := json.MarshalIndent(k.kubeletConfig, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(k.Dir, "kubelet.json")
	if err := os.WriteFile(config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	p := k.start(t, "kubelet",
		"--config="+config,
		"--kubeconfig="+filepath.Join(k.Dir, "kubelet.kubeconfig"),
		"--root-dir="+filepath.Join(k.Dir, "kubelet"),
		"--cert-dir="+filepath.Join(k.Dir, "pki", "kubelet"),
		"--hostname-override="+k.Node,
		"--v=2")
	k.waitUp(t, "kubelet", p, 2*time.Minute, func() bool { return httpOK(plainHTTP, k.kubeletHealth, "") })
}

// RestartKubelet stops the kubelet, lets mutate change its configuration
// (a map of the KubeletConfiguration's fields) and starts it again; the
// pods' containers run on in containerd meanwhile.
func (k *Kube) RestartKubelet(t testing.TB, mutate func(cfg map[string]any)) {
	t.Helper()
	start := time.Now()
	k.stopProcess("kubelet")
	if mutate != nil {
		mutate(k.kubeletConfig)
	}
	k.startKubelet(t)
	k.waitNodeReady(t, 2*time.Minute)
	t.Logf("kubelet restarted in %s", time.Since(start).Round(10*time.Millisecond))
}

// waitNodeReady waits until the node is registered and Ready.
func (k *Kube) waitNodeReady(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := k.TryKubectl("get", "node", k.Node, "-o", "json")
		var node corev1.Node
		if err == nil && json.Unmarshal([]byte(out), &node) == nil {
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not Ready within %s: %s\n--- kubelet:\n%s", k.Node, within, out, tailFile(k.logPath("kubelet"), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TryKubectl runs kubectl as the admin and returns its output.
func (k *Kube) TryKubectl(args ...string) (string, error) {
	return runBounded(2*time.Minute, nil, filepath.Join(k.bin, "kubectl"), append([]string{"--kubeconfig=" + k.Kubeconfig}, args...)...)
}

// Kubectl is TryKubectl that fails the test on error.
func (k *Kube) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := k.TryKubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Crictl runs crictl against the rig's CRI and returns its output.
func (k *Kube) Crictl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runBounded(time.Minute, nil, filepath.Join(k.bin, "crictl"), append([]string{"--config=" + k.CrictlConfig}, args...)...)
	if err != nil {
		t.Fatalf("crictl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Apply applies manifests (YAML, documents separated by ---).
func (k *Kube) Apply(t testing.TB, manifests string) {
	t.Helper()
	f, err := os.CreateTemp(k.Dir, "apply-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	if _, err := io.WriteString(f, manifests); err != nil {
		t.Fatal(err)
	}
	f.Close()
	k.Kubectl(t, "apply", "-f", f.Name())
}

// ImportImage imports an OCI archive (WriteOCIArchive) for the kubelet's
// pods; its index names the image.
func (k *Kube) ImportImage(t testing.TB, archive string) {
	t.Helper()
	k.Containerd.ImportImage(t, KubeNamespace, archive)
}

// ImportHelperImage returns the helper image's ref, imported for pods
// (it is the sandbox image too). Pods name it with imagePullPolicy Never.
func (k *Kube) ImportHelperImage(t testing.TB) string {
	t.Helper()
	return k.Containerd.ImportHelperImage(t, KubeNamespace)
}

// Pod returns a pod as the API has it.
func (k *Kube) Pod(t testing.TB, namespace, name string) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	if err := json.Unmarshal([]byte(k.Kubectl(t, "-n", namespace, "get", "pod", name, "-o", "json")), &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

// WaitPod polls a pod until cond holds and returns it; what names the
// condition in the failure, which shows the pod's status and the
// kubelet's last lines.
func (k *Kube) WaitPod(t testing.TB, namespace, name string, within time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := k.TryKubectl("-n", namespace, "get", "pod", name, "-o", "json")
		var pod corev1.Pod
		if err == nil && json.Unmarshal([]byte(out), &pod) == nil && cond(&pod) {
			return &pod
		}
		if time.Now().After(deadline) {
			status, _ := json.MarshalIndent(pod.Status, "", "  ")
			t.Fatalf("pod %s/%s: no %s within %s (%v)\nstatus: %s\n--- kubelet:\n%s", namespace, name, what, within, err, status, tailFile(k.logPath("kubelet"), 30))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// httpClient trusts the rig's CA.
func (k *Kube) httpClient(t testing.TB) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(k.pki.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

// plainHTTP asks the rig's loopback HTTP endpoints (etcd, the kubelet's
// healthz) whether they are up.
var plainHTTP = &http.Client{Timeout: 5 * time.Second}

// freePort is a free 127.0.0.1 port.
func freePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// httpOK reports whether a GET answers 200, with a bearer token if any.
func httpOK(client *http.Client, url, token string) bool {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// lockFile takes an exclusive flock on path until the test ends.
func lockFile(t testing.TB, path string) {
	t.Helper()
	start := time.Now()
	unlock, err := flockPath(path, func() { t.Logf("waiting for %s: another rig runs", path) })
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Logf("waited %s for %s", waited.Round(time.Second), path)
	}
	t.Cleanup(unlock)
}

// flockPath blocks until it holds an exclusive flock on path, calling
// waiting first if another holds it; the returned func releases it.
func flockPath(path string, waiting func()) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		waiting()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, err
		}
	}
	return func() { f.Close() }, nil // closing releases the lock
}
