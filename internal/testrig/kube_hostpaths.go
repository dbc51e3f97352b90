package testrig

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The kubelet writes two places whatever its root directory: the device
// plugins' registration socket and the links to the containers' logs
// (both paths are constants in Kubernetes 1.34).
const (
	kubeletDevicePluginSocket = "/var/lib/kubelet/device-plugins/kubelet.sock"
	kubeletContainerLogLinks  = "/var/log/containers"
)

// kubeletHostDirs are the directories holding them, parents first.
var kubeletHostDirs = []string{"/var/lib/kubelet", filepath.Dir(kubeletDevicePluginSocket), kubeletContainerLogLinks}

// missingDirs lists the dirs that do not exist yet: the ones the rig
// will have made, and removes.
func missingDirs(dirs []string) []string {
	var missing []string
	for _, d := range dirs {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			missing = append(missing, d)
		}
	}
	return missing
}

// removeKubeletHostPaths removes what the rig's kubelet left outside
// rigDir: its device plugin socket (no other kubelet runs beside the rig:
// kubeLockPath), the log links into rigDir, and the directories in made
// once they are empty, children first.
func removeKubeletHostPaths(rigDir string, made []string) {
	_ = os.Remove(kubeletDevicePluginSocket)
	entries, _ := os.ReadDir(kubeletContainerLogLinks)
	for _, e := range entries {
		link := filepath.Join(kubeletContainerLogLinks, e.Name())
		if target, err := os.Readlink(link); err == nil && strings.HasPrefix(target, rigDir+"/") {
			_ = os.Remove(link)
		}
	}
	for i := len(made) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(made[i])
	}
}

// sweepStaleKubeRigs removes what a rig whose test process was killed
// left: its programs (each names the rig's directory in its arguments)
// run on in sessions of their own, its pods in /kubepods. Called under
// kubeLockPath, so no live rig is among them.
func sweepStaleKubeRigs(t testing.TB) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "e137-kube-*"))
	for _, dir := range dirs {
		for _, pid := range pidsMentioning(dir) {
			t.Logf("killing pid %d of a rig an interrupted run left in %s", pid, dir)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		unmountUnder(dir)
		removeDir(t, dir)
		removeKubeletHostPaths(dir, nil)
	}
	for _, root := range cgroupRoots() {
		removeTestCgroup(t, filepath.Join(root, "kubepods"))
	}
}
