package cgroupfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Container is one Docker container's memory cgroup.
type Container struct {
	ID   string // full 64-hex container id
	Path string // relative to FS.MemoryRoot, e.g. "docker/<id>" (the cgroupfs driver) or "system.slice/docker-<id>.scope" (systemd)
}

const (
	cgroupfsParent = "docker"
	systemdParent  = "system.slice"
	scopePrefix    = "docker-"
	scopeSuffix    = ".scope"
)

// DockerContainers lists the containers found under the memory root in
// both layouts Docker uses: docker/<64 hex> (cgroupfs driver) and
// system.slice/docker-<64 hex>.scope (systemd driver). Entries whose name
// is not a full 64-hex id (docker/buildkit, docker.service, ...) are
// ignored, and so is a parent directory that does not exist. The result is
// sorted by ID. Containers under a custom --cgroup-parent are not found.
func (f FS) DockerContainers() ([]Container, error) {
	if f.mode == 0 {
		return nil, errNotInitialised
	}
	var out []Container
	names, err := f.readDirNames(cgroupfsParent)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if IsContainerID(n) {
			out = append(out, Container{ID: n, Path: cgroupfsParent + "/" + n})
		}
	}
	names, err = f.readDirNames(systemdParent)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if id, ok := strings.CutPrefix(n, scopePrefix); ok {
			if id, ok = strings.CutSuffix(id, scopeSuffix); ok && IsContainerID(id) {
				out = append(out, Container{ID: id, Path: systemdParent + "/" + n})
			}
		}
	}
	slices.SortFunc(out, func(a, b Container) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// readDirNames returns the names of the subdirectories of rel, or none
// when rel does not exist.
func (f FS) readDirNames(rel string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(f.memRoot, rel))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, &Error{File: rel, Err: unwrapPathError(err)}
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// ContainerPath returns the path, relative to MemoryRoot, of the cgroup of
// the container with the given full id, trying the cgroupfs layout and
// then the systemd one. When neither exists the error matches ErrNotExist.
func (f FS) ContainerPath(id string) (string, error) {
	if f.mode == 0 {
		return "", errNotInitialised
	}
	if !IsContainerID(id) {
		return "", &Error{Text: id, Err: errors.New("not a 64-hex container id")}
	}
	for _, rel := range [...]string{
		cgroupfsParent + "/" + id,
		systemdParent + "/" + scopePrefix + id + scopeSuffix,
	} {
		st, err := os.Stat(filepath.Join(f.memRoot, rel))
		if err == nil && st.IsDir() {
			return rel, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", &Error{File: rel, Err: unwrapPathError(err)}
		}
	}
	return "", &Error{Text: id, Err: errNoContainerCgroup}
}

var errNoContainerCgroup = &notExistError{"no memory cgroup for this container (tried docker/<id> and system.slice/docker-<id>.scope)"}

// ShortID is the 12-digit form of a container id, as Docker prints it.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// IsContainerID reports whether s is a full Docker container id: 64
// lower-case hex digits.
func IsContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// notExistError is an error with its own message that matches
// fs.ErrNotExist.
type notExistError struct{ msg string }

func (e *notExistError) Error() string        { return e.msg }
func (e *notExistError) Is(target error) bool { return target == fs.ErrNotExist }

var errNotInitialised = errors.New("cgroupfs: FS not initialised; use NewFS")
