package cgroupfs

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reading files
//
// A scrape reads five or six small files for every container, so the
// per-file overhead of os.ReadFile (an *os.File with its finalizer, two
// fstat calls to size a fresh buffer, a full path walk from / for every
// file, a NUL-terminated copy of each path) is most of the cost. Instead
// the cgroup directory is opened once with O_PATH, each file is opened
// relative to it with openat(2) using a pre-built NUL-terminated name, and
// read with read(2) into a pooled buffer that the parsers scan in place.
// Steady state is one allocation per Memory call (the backing array of
// the optional fields).

// bufSize covers every memory file we read: a kernel 6.x v2 memory.stat is
// about 1.5 KiB, v1 about 1.4 KiB. Larger files still work; they grow a
// temporary buffer up to maxFileSize.
const (
	bufSize     = 8 << 10
	pathSize    = 512
	maxFileSize = 1 << 20
)

type scratch struct {
	path [pathSize]byte
	data [bufSize]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// fileName is a cgroup file name with its NUL-terminated bytes built once,
// so that opening it does not allocate.
type fileName struct {
	name string
	z    []byte
}

func newFileName(name string) *fileName {
	return &fileName{name: name, z: append([]byte(name), 0)}
}

var (
	// v1
	fileUsageInBytes    = newFileName("memory.usage_in_bytes")
	fileLimitInBytes    = newFileName("memory.limit_in_bytes")
	fileMaxUsageInBytes = newFileName("memory.max_usage_in_bytes")
	fileFailcnt         = newFileName("memory.failcnt")
	fileOOMControl      = newFileName("memory.oom_control")
	// v1 and v2
	fileStat = newFileName("memory.stat")
	// v2
	fileCurrent = newFileName("memory.current")
	fileMax     = newFileName("memory.max")
	filePeak    = newFileName("memory.peak")
	fileEvents  = newFileName("memory.events")
)

// dirReader reads files of one cgroup directory.
type dirReader struct {
	fs    FS
	rel   string // the cgroup's path relative to the memory root
	dirfd int
	s     *scratch
}

// openDir opens the cgroup directory rel (relative to the memory root).
// The caller must call close.
func (f FS) openDir(rel string) (dirReader, error) {
	r := dirReader{fs: f, rel: rel, dirfd: -1, s: scratchPool.Get().(*scratch)}
	var fd int
	var err error
	const flags = unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC
	if n := len(f.memRoot) + 1 + len(rel); n < pathSize {
		p := r.s.path[:0]
		p = append(p, f.memRoot...)
		p = append(p, '/')
		p = append(p, rel...)
		p = append(p, 0)
		fd, err = openat(unix.AT_FDCWD, &p[0], flags)
	} else {
		fd, err = unix.Open(f.memRoot+"/"+rel, flags, 0)
	}
	if err != nil {
		scratchPool.Put(r.s)
		if errors.Is(err, syscall.ENOENT) {
			return dirReader{}, &Error{File: rel, Err: &goneError{syscall.ENOENT}}
		}
		return dirReader{}, &Error{File: rel, Err: err}
	}
	r.dirfd = fd
	return r, nil
}

func (r *dirReader) close() {
	if r.dirfd >= 0 {
		unix.Close(r.dirfd)
		r.dirfd = -1
	}
	if r.s != nil {
		scratchPool.Put(r.s)
		r.s = nil
	}
}

// read returns the content of one file of the directory. The slice is
// only valid until the next read. A missing file gives found == false and
// no error when optional is set.
func (r *dirReader) read(n *fileName, optional bool) (data []byte, found bool, err error) {
	fd, err := openat(r.dirfd, &n.z[0], unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		if err == syscall.ENOENT {
			if optional {
				// Optional files are read before required ones, so a
				// cgroup removed right now still fails on the next read.
				return nil, false, nil
			}
			return nil, false, r.missing(n)
		}
		return nil, false, r.fileErr(n, err)
	}
	buf := r.s.data[:]
	total := 0
	for {
		if total == len(buf) {
			if len(buf) >= maxFileSize {
				unix.Close(fd)
				return nil, false, r.fileErr(n, errors.New("file larger than 1 MiB"))
			}
			nb := make([]byte, 2*len(buf))
			copy(nb, buf)
			buf = nb
		}
		m, err := unix.Read(fd, buf[total:])
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			unix.Close(fd)
			if err == syscall.ENODEV {
				// kernfs returns ENODEV for reads of an open file whose
				// cgroup has just been removed.
				return nil, false, &Error{File: r.rel, Err: &goneError{syscall.ENODEV}}
			}
			return nil, false, r.fileErr(n, err)
		}
		if m == 0 {
			break
		}
		total += m
	}
	unix.Close(fd)
	return buf[:total], true, nil
}

// missing tells a vanished cgroup from a file missing in a live one.
func (r *dirReader) missing(n *fileName) error {
	if _, err := os.Stat(r.fs.memRoot + "/" + r.rel); err != nil && errors.Is(err, fs.ErrNotExist) {
		return &Error{File: r.rel, Err: &goneError{syscall.ENOENT}}
	}
	return &Error{File: r.path(n), Err: ErrMissingFile}
}

func (r *dirReader) path(n *fileName) string {
	if r.rel == "." {
		return n.name
	}
	return r.rel + "/" + n.name
}

func (r *dirReader) fileErr(n *fileName, err error) error {
	return &Error{File: r.path(n), Err: err}
}

// parseErr attaches the file name to an error from a Parse function.
func (r *dirReader) parseErr(n *fileName, err error) error {
	var e *Error
	if errors.As(err, &e) {
		e.File = r.path(n)
		return e
	}
	return r.fileErr(n, err)
}

// openat is openat(2) without the allocation unix.Openat makes to
// NUL-terminate the name.
func openat(dirfd int, name *byte, flags int) (int, error) {
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)), uintptr(flags), 0, 0, 0)
		if e == 0 {
			return int(fd), nil
		}
		if e != syscall.EINTR {
			return -1, e
		}
	}
}

// goneError says that a cgroup directory has been removed. It matches
// fs.ErrNotExist (ErrNotExist) whatever the errno behind it.
type goneError struct{ errno syscall.Errno }

func (e *goneError) Error() string {
	return "cgroup is gone (container exited?): " + e.errno.Error()
}
func (e *goneError) Is(target error) bool { return target == fs.ErrNotExist }
func (e *goneError) Unwrap() error        { return e.errno }
