package kmsg

import "strings"

// scopePrefixes are the systemd scope names container runtimes create:
// docker-<id>.scope (Docker's systemd driver, also under kubepods),
// cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope (Podman).
var scopePrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-"}

// ContainerIDFromCgroup finds the 64-hex container id in a cgroup path:
//
//	/docker/<id>                                       cgroupfs driver
//	/system.slice/docker-<id>.scope                    systemd driver
//	/kubepods/burstable/pod<uid>/<id>                  Kubernetes, cgroupfs
//	/kubepods.slice/.../cri-containerd-<id>.scope      Kubernetes, systemd (also crio-, docker-)
//
// A path below the container's cgroup (a process that made its own
// sub-cgroup) maps to the container. When several components qualify
// (docker-in-docker), the outermost wins: it is the container the host's
// runtime knows.
func ContainerIDFromCgroup(path string) (string, bool) {
	for comp := range strings.SplitSeq(path, "/") {
		if isContainerID(comp) {
			return comp, true
		}
		if name, ok := strings.CutSuffix(comp, ".scope"); ok {
			for _, p := range scopePrefixes {
				if id, ok := strings.CutPrefix(name, p); ok && isContainerID(id) {
					return id, true
				}
			}
		}
	}
	return "", false
}

// isContainerID reports whether s is 64 lower-case hex digits.
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
