package testrig

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The versions of the cluster rig, pinned: Kubernetes 1.34 is the last
// line that runs on cgroup v1 (failCgroupV1: false) and with containerd
// 1.x; etcd is the version Kubernetes 1.34.4 itself requires.
const (
	KubeVersion    = "v1.34.4"
	kubeStaging    = "v0.34.4" // k8s.io/* staging modules of KubeVersion
	EtcdVersion    = "v3.6.4"
	CrictlVersion  = "v1.34.0"
	kubeBuildStamp = KubeVersion + " (version stamped) etcd " + EtcdVersion + " crictl " + CrictlVersion
)

// kubeVersionLDFlags stamp the version into the Kubernetes binaries, as
// Kubernetes' own build does (hack/lib/version.sh): without them every
// component says v0.0.0-master, the node's kubeletVersion too.
func kubeVersionLDFlags() string {
	major, rest, _ := strings.Cut(strings.TrimPrefix(KubeVersion, "v"), ".")
	minor, _, _ := strings.Cut(rest, ".")
	var flags []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		for _, kv := range []string{"gitVersion=" + KubeVersion, "gitMajor=" + major, "gitMinor=" + minor, "gitTreeState=clean"} {
			flags = append(flags, "-X "+pkg+"."+kv)
		}
	}
	return strings.Join(flags, " ")
}

// kubeBuildLockPath serialises the builds into the cache.
const kubeBuildLockPath = "/run/exit137-test/kube-build.lock"

// KubeBinaries are the programs the rig runs, built into KubeBinDir.
var KubeBinaries = []string{"kube-apiserver", "kubelet", "kubectl", "kube-scheduler", "kube-controller-manager", "etcd", "crictl"}

// KubeCacheDir is where the binaries are built and kept, outside the
// repository: $EXIT137_KUBE_CACHE or /var/cache/exit137-exporter/kube,
// then the Kubernetes version.
func KubeCacheDir() string {
	root := os.Getenv("EXIT137_KUBE_CACHE")
	if root == "" {
		root = "/var/cache/exit137-exporter/kube"
	}
	return filepath.Join(root, KubeVersion)
}

// KubeBinDir holds the built binaries.
func KubeBinDir() string { return filepath.Join(KubeCacheDir(), "bin") }

// MissingKubeBinaries lists the binaries not built yet, or all of them
// when the cache was built for other versions.
func MissingKubeBinaries() []string {
	stamp, _ := os.ReadFile(filepath.Join(KubeBinDir(), "VERSIONS"))
	if strings.TrimSpace(string(stamp)) != kubeBuildStamp {
		return KubeBinaries
	}
	var missing []string
	for _, name := range KubeBinaries {
		if _, err := os.Stat(filepath.Join(KubeBinDir(), name)); err != nil {
			missing = append(missing, name)
		}
	}
	return missing
}

// BuildKubeBinaries builds the missing binaries from the Go module
// proxy: k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces
// the k8s.io/* staging modules by directories), so a wrapper module
// beside bin/ requires it and replaces each staging module by its
// published version; etcd is a main over etcdmain in the same module
// (Kubernetes requires that etcd server version already); crictl is
// `go install`ed at its version. logf reports each step and how long it took. Nothing
// is built when every binary is there.
func BuildKubeBinaries(logf func(format string, args ...any)) error {
	if len(MissingKubeBinaries()) == 0 {
		return nil
	}
	// One build at a time into the cache (scripts/test, a rig, another
	// clone's tests); the one that waited may find everything built.
	unlock, err := flockPath(kubeBuildLockPath, func() { logf("waiting for another build of the cluster rig's binaries") })
	if err != nil {
		return err
	}
	defer unlock()
	missing := MissingKubeBinaries()
	if len(missing) == 0 {
		return nil
	}
	start := time.Now()
	logf("building %s into %s (the first build takes several minutes)", strings.Join(missing, ", "), KubeBinDir())
	module := filepath.Join(KubeCacheDir(), "module")
	if err := writeKubeModule(module); err != nil {
		return err
	}
	bin := KubeBinDir()
	step := func(what string, args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Dir = module
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOBIN="+bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: go %s: %v\n%s", what, strings.Join(args, " "), err, out)
		}
		logf("%s: done at %s", what, time.Since(start).Round(time.Second))
		return nil
	}
	if err := step("go mod tidy", "mod", "tidy"); err != nil {
		return err
	}
	for _, name := range missing {
		var err error
		switch name {
		case "etcd":
			err = step(name, "build", "-o", filepath.Join(bin, name), "./cmd/etcd")
		case "crictl":
			// A module of its own: its requirements must not move
			// Kubernetes' (GOBIN is bin).
			err = step(name, "install", "sigs.k8s.io/cri-tools/cmd/crictl@"+CrictlVersion)
		default:
			err = step(name, "build", "-ldflags="+kubeVersionLDFlags(), "-o", filepath.Join(bin, name), "k8s.io/kubernetes/cmd/"+name)
		}
		if err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "VERSIONS"), []byte(kubeBuildStamp+"\n"), 0o644); err != nil {
		return err
	}
	logf("built the cluster rig's binaries in %s", time.Since(start).Round(time.Second))
	return nil
}

// writeKubeModule writes the wrapper module: go.mod (the staging
// replaces read from Kubernetes' own go.mod), tools.go naming the
// commands for go mod tidy, and the etcd main.
func writeKubeModule(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "cmd", "etcd"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(KubeBinDir(), 0o755); err != nil {
		return err
	}
	staging, err := kubeStagingModules()
	if err != nil {
		return err
	}
	files := map[string]string{
		"go.mod":           kubeGoMod(staging),
		"tools.go":         kubeToolsGo,
		"cmd/etcd/main.go": kubeEtcdMain,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// kubeStagingModules reads the k8s.io/* modules that Kubernetes' go.mod
// replaces by its staging directories.
func kubeStagingModules() ([]string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@"+KubeVersion).Output()
	if err != nil {
		return nil, fmt.Errorf("go mod download k8s.io/kubernetes@%s: %v", KubeVersion, err)
	}
	var path string
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == `"GoMod"` {
			path = strings.Trim(strings.TrimSpace(v), `",`)
		}
	}
	gomod, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading Kubernetes' go.mod: %v", err)
	}
	return parseStagingReplaces(gomod), nil
}

// parseStagingReplaces picks the modules a go.mod replaces by
// ./staging/ directories.
func parseStagingReplaces(gomod []byte) []string {
	var mods []string
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "replace "))
		if len(f) == 3 && f[1] == "=>" && strings.HasPrefix(f[2], "./staging/") {
			mods = append(mods, f[0])
		}
	}
	return mods
}

// kubeGoMod is the wrapper's go.mod; go mod tidy completes it.
func kubeGoMod(staging []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "module exit137-kube-build\n\ngo 1.24.0\n\nrequire (\n\tk8s.io/kubernetes %s\n\tgo.etcd.io/etcd/server/v3 %s\n)\n\nreplace (\n", KubeVersion, EtcdVersion)
	for _, m := range staging {
		fmt.Fprintf(&b, "\t%s => %s %s\n", m, m, kubeStaging)
	}
	b.WriteString(")\n")
	return b.String()
}

const kubeToolsGo = `//go:build tools

// Package tools names the commands the rig builds, for go mod tidy.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
`

const kubeEtcdMain = `// Command etcd is etcd's server, built at the version Kubernetes requires.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`
