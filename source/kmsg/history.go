package kmsg

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// History reads what the kernel log still holds, from its oldest record
// to now, and returns the kernel OOM evidence for one container (every
// container when id is empty; a short id matches as a prefix), in log
// order. It is for after-the-fact explanations: the ring buffer is small
// and old kills may be gone. It does not wait for new records. A kill
// whose summary the kernel rate-limited away names no container (a pid is
// not looked up after the fact: it may be another process's by now), so
// it is returned only when id is empty.
func History(path, id string) ([]attribution.Evidence, error) {
	if path == "" {
		path = DefaultPath
	}
	var out []attribution.Evidence
	s := New(Options{Path: path}, source.SinkFunc(func(e attribution.Evidence) {
		if strings.HasPrefix(e.Container, id) {
			out = append(out, e)
		}
	}), nil, nil)
	// All of it is replayed: no pid is looked up.
	s.catchingUp = true
	// Raw, non-blocking reads: EAGAIN (or EOF, for a plain file) is the
	// end of what the log holds.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, readBufferSize)
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case err == nil && n > 0:
			s.feed(buf[:n])
		case err == nil, errors.Is(err, unix.EAGAIN):
			s.feed([]byte{'\n'}) // a last unterminated line
			s.flush()
			return out, nil
		case errors.Is(err, unix.EPIPE):
			// Records were overwritten while we read; go on from the
			// oldest one left.
		case errors.Is(err, unix.EINTR):
		default:
			s.flush()
			return out, fmt.Errorf("read %s: %w", path, err)
		}
	}
}
