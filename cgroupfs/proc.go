package cgroupfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A process's memory cgroup, read from /proc/<pid>/cgroup, finds a
// container wherever its runtime put it: under a custom --cgroup-parent
// (memory/mygroup/<id>, my.slice/docker-<id>.scope), podman's
// libpod_parent/libpod-<id> or machine.slice/libpod-<id>.scope, a
// Kubernetes pod's cgroup.

// ParseProcCgroup returns the memory cgroup path in the contents of a
// /proc/<pid>/cgroup file, relative to the memory root ("" for the root
// cgroup itself). v2 selects the unified hierarchy's "0::/path" line;
// otherwise (v1 and hybrid hosts, whose memory controller is v1) the line
// whose controller list holds memory: "4:memory:/path" or
// "4:cpu,memory:/path". The path is as the kernel printed it, relative to
// the reader's cgroup namespace; one outside that namespace ("/../x") or
// a v2 cgroup that was removed ("/x (deleted)") is an error, and so is
// content without the line.
func ParseProcCgroup(data []byte, v2 bool) (string, error) {
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		// "hierarchy-ID:controller-list:cgroup-path"; the path may hold
		// colons, the first two fields do not.
		id, rest, ok1 := bytes.Cut(line, []byte{':'})
		controllers, path, ok2 := bytes.Cut(rest, []byte{':'})
		if !ok1 || !ok2 || len(path) == 0 || path[0] != '/' {
			return "", &Error{File: "cgroup", Line: n, Text: string(line), Err: ErrInvalidValue}
		}
		if v2 {
			if string(id) != "0" || len(controllers) != 0 {
				continue
			}
		} else if !hasController(controllers, "memory") {
			continue
		}
		p := string(path)
		if strings.HasSuffix(p, deletedSuffix) {
			return "", &Error{File: "cgroup", Line: n, Text: p, Err: errCgroupDeleted}
		}
		if p == "/.." || strings.HasPrefix(p, "/../") {
			return "", &Error{File: "cgroup", Line: n, Text: p, Err: errOutsideNamespace}
		}
		return strings.TrimPrefix(filepath.Clean(p), "/"), nil
	}
	hierarchy := "v1 memory"
	if v2 {
		hierarchy = "v2 (0::)"
	}
	return "", &Error{File: "cgroup", Text: hierarchy, Err: errNoMemoryLine}
}

const deletedSuffix = " (deleted)"

var (
	errCgroupDeleted    = &notExistError{"the process's cgroup was removed"}
	errOutsideNamespace = errors.New("the cgroup lies outside the exporter's cgroup namespace (run it in the host's: --cgroupns host)")
	errNoMemoryLine     = errors.New("no line for the memory hierarchy")
	errExited           = &notExistError{"the process has exited (a zombie's v1 cgroup paths read /)"}
	errRootCgroup       = errors.New("the process is in the root cgroup, not a container's")
)

// hasController reports whether the comma-separated list holds name.
func hasController(list []byte, name string) bool {
	for len(list) > 0 {
		var c []byte
		c, list, _ = bytes.Cut(list, []byte{','})
		if string(c) == name {
			return true
		}
	}
	return false
}

// PathOfPID returns the memory cgroup of process pid, relative to
// MemoryRoot and usable with [FS.Memory], read from
// procRoot/<pid>/cgroup (procRoot is the host's /proc, or where it is
// mounted into the exporter's container). A process that does not exist,
// and one that has exited (a zombie: its v1 cgroup paths read "/") or
// whose cgroup was removed, give an error matching ErrNotExist that says
// so; a live process in the root cgroup is an error too.
func (f FS) PathOfPID(procRoot string, pid int) (string, error) {
	if f.mode == 0 {
		return "", errNotInitialised
	}
	if pid <= 0 {
		return "", &Error{Text: strconv.Itoa(pid), Err: errors.New("not a process id")}
	}
	file := filepath.Join(procRoot, strconv.Itoa(pid), "cgroup")
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return "", &Error{File: file, Err: &notExistError{"no such process"}}
		}
		return "", &Error{File: file, Err: unwrapPathError(err)}
	}
	path, err := ParseProcCgroup(data, f.mode.V2())
	var e *Error
	if errors.As(err, &e) {
		e.File = file
		return "", e
	}
	if path == "" {
		if zombie(procRoot, pid) {
			return "", &Error{File: file, Err: errExited}
		}
		return "", &Error{File: file, Err: errRootCgroup}
	}
	return path, nil
}

// zombie reports whether the process's state (the field after the comm
// in /proc/<pid>/stat) is Z or X; a process gone since counts too.
func zombie(procRoot string, pid int) bool {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	return data[i+2] == 'Z' || data[i+2] == 'X'
}

// ContainerPathOfPID returns the memory cgroup of container id from its
// init's pid (see [FS.PathOfPID]): the deepest element of the process's
// path that names the id (docker/<id>, mygroup/<id>,
// my.slice/docker-<id>.scope, libpod_parent/libpod-<id>,
// kubepods/.../<id>), so that an init that moved itself into a child
// cgroup still gives the container's. A path that does not name the id
// is an error: the pid was reused by another process.
func (f FS) ContainerPathOfPID(procRoot, id string, pid int) (string, error) {
	if !IsContainerID(id) {
		return "", &Error{Text: id, Err: errors.New("not a 64-hex container id")}
	}
	path, err := f.PathOfPID(procRoot, pid)
	if err != nil {
		return "", err
	}
	for p := path; p != "." && p != ""; p = filepath.Dir(p) {
		if strings.Contains(filepath.Base(p), id) {
			return p, nil
		}
	}
	return "", &Error{File: filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"), Text: path, Err: &notExistError{"the cgroup of pid " + strconv.Itoa(pid) +
		" does not name container " + id[:12] + " (the pid was reused?)"}}
}

// ContainerPathFor returns the memory cgroup of container id, relative to
// MemoryRoot: Docker's layouts first ([FS.ContainerPath]), then, when
// neither exists and pid (its init's host pid, 0 when unknown) is given,
// the cgroup of that process ([FS.ContainerPathOfPID]), which finds a
// custom --cgroup-parent and podman's cgroups. When both fail the error
// matches ErrNotExist when the pid's did (the process is gone).
func (f FS) ContainerPathFor(procRoot, id string, pid int) (string, error) {
	path, err := f.ContainerPath(id)
	if err == nil || pid <= 0 || !errors.Is(err, ErrNotExist) {
		return path, err
	}
	path, perr := f.ContainerPathOfPID(procRoot, id, pid)
	if perr != nil {
		return "", fmt.Errorf("%v; by pid %d: %w", err, pid, perr)
	}
	return path, nil
}
