// Command kuberig is scripts/kube-rig: the end-to-end tests' single-node
// Kubernetes (testrig.StartKube) for a person to look around in.
//
//	kuberig build            build the pinned binaries into the cache (nothing if they are there)
//	kuberig up [-controllers] start the rig, print how to reach it, run until Ctrl-C or down
//	kuberig down             stop the rig that up started
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// pidFile names the process of a running `up`, for down.
const pidFile = "/run/exit137-test/kube-rig.pid"

// envFile holds the running rig's addresses, to source in another shell.
const envFile = "/run/exit137-test/kube-rig.env"

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: scripts/kube-rig build | up [-controllers] | down\n")
	}
	flag.Parse()
	switch flag.Arg(0) {
	case "build":
		build()
	case "up":
		fs := flag.NewFlagSet("up", flag.ExitOnError)
		controllers := fs.Bool("controllers", false, "also run kube-scheduler and kube-controller-manager (DaemonSets, service accounts)")
		_ = fs.Parse(flag.Args()[1:])
		up(*controllers)
	case "down":
		if err := down(); err != nil {
			fmt.Fprintln(os.Stderr, "kube-rig down:", err)
			os.Exit(1)
		}
	default:
		flag.Usage()
		os.Exit(2)
	}
}

func build() {
	start := time.Now()
	if err := testrig.BuildKubeBinaries(func(format string, args ...any) {
		fmt.Printf(format+"\n", args...)
	}); err != nil {
		fmt.Fprintln(os.Stderr, "kube-rig build:", err)
		os.Exit(1)
	}
	fmt.Printf("binaries in %s (%s)\n", testrig.KubeBinDir(), time.Since(start).Round(time.Second))
}

func up(controllers bool) {
	r := testrig.NewRunner("kube-rig")
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		fmt.Println("\nstopping the rig")
		r.Exit(0)
	}()
	r.Cleanup(testrig.RemoveBuilds)
	start := time.Now()
	k := testrig.StartKube(r, testrig.KubeOptions{Controllers: controllers})
	image := k.ImportHelperImage(r)
	env := strings.Join([]string{
		"export KUBECONFIG=" + k.Kubeconfig,
		"export CRI_CONFIG_FILE=" + k.CrictlConfig,         // crictl
		"export CONTAINERD_ADDRESS=" + k.ContainerdAddress, // ctr
		"export CONTAINERD_NAMESPACE=" + testrig.KubeNamespace,
		"export PATH=" + testrig.KubeBinDir() + ":$PATH",
	}, "\n") + "\n"
	for path, data := range map[string]string{pidFile: strconv.Itoa(os.Getpid()) + "\n", envFile: env} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			r.Fatal(err)
		}
		r.Cleanup(func() { os.Remove(path) })
	}
	fmt.Printf(`
The cluster rig is up (%s): node %s, API server %s.
In another shell:
  source %s
  kubectl get nodes
  crictl ps -a
  ctr containers ls
Pods run on the host network with spec.nodeName: %s (unless -controllers),
image %s with imagePullPolicy: Never.
Ctrl-C or scripts/kube-rig down stops it and removes everything.
`, time.Since(start).Round(100*time.Millisecond), k.Node, k.APIServer, envFile, k.Node, image)
	for { // until the signal's goroutine exits
		time.Sleep(time.Hour)
	}
}

// down sends SIGTERM to the running up and waits until it has cleaned up.
func down() error {
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return errors.New("no rig is up (" + filepath.Base(pidFile) + " is missing)")
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s holds %q, not a pid", pidFile, data)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping pid %d: %v", pid, err)
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			fmt.Println("the rig is down")
			return nil
		}
	}
	return fmt.Errorf("pid %d still runs after 2m", pid)
}
