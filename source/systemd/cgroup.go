package systemd

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// InCgroup reports whether process pid runs inside the cgroup at path (a
// unit's ControlGroup, e.g. /system.slice/app.service) in any hierarchy
// that /proc/PID/cgroup lists: a container started with --cgroup-parent
// set to the unit's cgroup or slice, or whose init the unit moved there.
func InCgroup(procRoot string, pid int, path string) bool {
	if pid <= 0 || path == "" || path == "/" {
		return false
	}
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return false
	}
	path = strings.TrimSuffix(path, "/")
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-id:controllers:path
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) != 3 {
			continue
		}
		if p := fields[2]; p == path || strings.HasPrefix(p, path+"/") {
			return true
		}
	}
	return false
}
