package kmsg

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
)

// scopePrefixes are the systemd scope names container runtimes create:
// docker-<id>.scope (Docker's systemd driver, also under kubepods),
// cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope (Podman).
var scopePrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-"}

// ContainerIDFromCgroup finds the 64-hex container id in a cgroup path:
//
//	/docker/<id>                                       cgroupfs driver
//	/anything/<id>                                     cgroupfs driver, --cgroup-parent /anything
//	/system.slice/docker-<id>.scope                    systemd driver (any parent slice)
//	/kubepods/burstable/pod<uid>/<id>                  Kubernetes, cgroupfs
//	/kubepods.slice/.../cri-containerd-<id>.scope      Kubernetes, systemd (also crio-, docker-)
//	/machine.slice/libpod-<id>.scope                   Podman, systemd
//	/libpod_parent/libpod-<id>                         Podman, cgroupfs
//
// A path below the container's cgroup (a process that made its own
// sub-cgroup) maps to the container. When several components qualify
// (docker-in-docker), the outermost wins: it is the container the host's
// runtime knows.
func ContainerIDFromCgroup(path string) (string, bool) {
	for comp := range strings.SplitSeq(path, "/") {
		if cgroupfs.IsContainerID(comp) {
			return comp, true
		}
		if name, ok := strings.CutSuffix(comp, ".scope"); ok {
			for _, p := range scopePrefixes {
				if id, ok := strings.CutPrefix(name, p); ok && cgroupfs.IsContainerID(id) {
					return id, true
				}
			}
		}
		// Podman's cgroupfs manager names the cgroup libpod-<id>, no scope.
		if id, ok := strings.CutPrefix(comp, "libpod-"); ok && cgroupfs.IsContainerID(id) {
			return id, true
		}
	}
	return "", false
}

// ContainerOfPID reads <procRoot>/<pid>/cgroup (procRoot "" is /proc) and
// returns the container id its cgroup path names, if any. It is meant for
// an OOM victim seen in the kernel log: read at once, the victim (or its
// zombie) is usually still there. A pid may have been reused by another
// process by the time it is read; call it only for fresh pids.
func ContainerOfPID(procRoot string, pid int) (string, bool) {
	if pid <= 0 {
		return "", false
	}
	if procRoot == "" {
		procRoot = "/proc"
	}
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", false
	}
	return ContainerIDFromProcCgroup(data)
}

// ContainerIDFromProcCgroup finds the container id in the text of a
// /proc/<pid>/cgroup file, "hierarchy-ID:controller-list:cgroup-path" per
// line: cgroup v1 (one line per hierarchy), v2 ("0::/path") or hybrid.
// The memory hierarchy's path is preferred (it is the cgroup the OOM
// killer acted on), then the v2 one, then any other.
func ContainerIDFromProcCgroup(data []byte) (string, bool) {
	var v2, other string
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		_, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		controllers, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok {
			continue
		}
		id, found := ContainerIDFromCgroup(string(path))
		if !found {
			continue
		}
		switch {
		case hasController(controllers, "memory"):
			return id, true
		case len(controllers) == 0:
			if v2 == "" {
				v2 = id
			}
		default:
			if other == "" {
				other = id
			}
		}
	}
	if v2 != "" {
		return v2, true
	}
	return other, other != ""
}

func hasController(list []byte, name string) bool {
	for c := range bytes.SplitSeq(list, []byte{','}) {
		if string(c) == name {
			return true
		}
	}
	return false
}
