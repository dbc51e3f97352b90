package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/collector"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/source/containerd"
	"github.com/exit137-exporter/exit137-exporter/source/kubernetes"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// The container runtimes followed, and the Kubernetes API of a node.
const (
	runtimeAuto       = "auto"
	runtimeDocker     = "docker"
	runtimeContainerd = "containerd"
)

var (
	runtimeName = kingpin.Flag("runtime",
		"Container runtime to follow: docker (dockerd, or Podman's service), containerd (a kubelet's CRI containers), or auto: containerd when its socket exists, Docker unless the host shows containerd alone.").
		Default(runtimeAuto).Enum(runtimeAuto, runtimeDocker, runtimeContainerd)
	containerdAddress = kingpin.Flag("containerd.address", "containerd's socket.").
				Default("/run/containerd/containerd.sock").String()
	containerdNamespaces = kingpin.Flag("containerd.namespaces",
		"containerd namespaces to follow, comma-separated (Docker's moby is the docker source's).").
		Default(containerd.DefaultNamespace).String()
	kubernetesNode = kingpin.Flag("kubernetes.node",
		"This node's name: the Kubernetes API is watched for the kubelet's kills of its pods (probe, eviction, preemption, deletion); empty: no API.").
		Envar("NODE_NAME").String()
	kubernetesKubeconfig = kingpin.Flag("kubernetes.kubeconfig", "A kubeconfig for the API; empty: the pod's in-cluster service account.").
				String()
)

// runtimes says which runtime sources to start, from --runtime and the
// sockets present now.
func runtimes(dockerHost string, dockerOff bool) (docker, cri bool) {
	return chooseRuntimes(*runtimeName, dockerOff, dockerHost != "" || socketExists("/var/run/docker.sock"),
		socketExists(strings.TrimPrefix(*containerdAddress, "unix://")))
}

// chooseRuntimes is runtimes' rule. On auto, Docker is followed unless the
// host shows containerd alone (a Kubernetes node): a Docker host whose
// daemon is not up yet still gets a source that waits for it, and says so
// in source_up.
func chooseRuntimes(mode string, dockerOff, dockerSocket, containerdSocket bool) (docker, cri bool) {
	switch mode {
	case runtimeDocker:
		return !dockerOff, false
	case runtimeContainerd:
		return false, true
	}
	return !dockerOff && (dockerSocket || !containerdSocket), containerdSocket
}

func socketExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// startContainerd follows the kubelet's containers in containerd.
func startContainerd(ctx context.Context, deps *collector.Deps, t *tracker.Tracker, logger *slog.Logger) error {
	var namespaces []string
	for _, ns := range strings.Split(*containerdNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			namespaces = append(namespaces, ns)
		}
	}
	src, err := containerd.New(containerd.Options{
		Address:    *containerdAddress,
		Namespaces: namespaces,
		OOMKills:   oomKillReader(deps.Cgroups, deps.ProcRoot),
	}, t, deps.Sources.Source("containerd"), logger)
	if err != nil {
		return err
	}
	go src.Run(ctx)
	return nil
}

// kubernetesAPI is the Kubernetes source once started: the tracker asks
// it at every death whether the API could be read (it is made after the
// tracker, which it looks containers up in).
type kubernetesAPI struct{ src *kubernetes.Source }

func (k *kubernetesAPI) probe(at time.Time) []attribution.Evidence {
	if k.src == nil {
		return nil
	}
	return k.src.Probe(at)
}

// start watches the API for this node's pods, when --kubernetes.node is set.
func (k *kubernetesAPI) start(ctx context.Context, t *tracker.Tracker, sources *source.Registry, logger *slog.Logger) error {
	if *kubernetesNode == "" {
		if *kubernetesKubeconfig != "" {
			return errors.New("--kubernetes.kubeconfig without --kubernetes.node: the API source needs the node's name")
		}
		return nil
	}
	k.src = kubernetes.New(kubernetes.Options{Node: *kubernetesNode, Kubeconfig: *kubernetesKubeconfig},
		t, t, sources.Source("kubernetes"), logger)
	go k.src.Run(ctx)
	return nil
}
