package cgroupfs

import (
	"bytes"
	"errors"
	"strconv"
)

// Sentinel errors carried in [Error.Err]; test with errors.Is.
var (
	// ErrInvalidValue: a value is not a decimal unsigned integer (or "max"
	// where a limit is expected), or a file holds more than one value.
	ErrInvalidValue = errors.New("invalid value")
	// ErrEmpty: a single-value file holds nothing.
	ErrEmpty = errors.New("empty file")
	// ErrMissingKey: a keyed file lacks a key that must be there (for
	// example inactive_file in memory.stat).
	ErrMissingKey = errors.New("key not found")
	// ErrMissingFile: a file every kernel writes is missing although its
	// cgroup directory exists. On cgroup v2 this usually means the memory
	// controller is not enabled in the parent's cgroup.subtree_control.
	// It deliberately does not match fs.ErrNotExist: the container is
	// there, we just cannot read it, and the caller should say so.
	ErrMissingFile = errors.New("required file missing (memory controller not enabled for this cgroup?)")
)

// Error describes a problem with one cgroup file or value.
//
// Errors from the Parse functions have no File; [FS.Memory] fills it in,
// giving messages such as
//
//	cgroupfs: docker/<id>/memory.stat line 3: "inactive_file x": invalid value
type Error struct {
	File string // relative to the memory root, e.g. "docker/<id>/memory.stat"; absolute in NewFS errors
	Line int    // 1-based line of the bad input; 0 when not about one line
	Text string // the offending line, or the key that was looked for
	Err  error  // a sentinel above, or a syscall.Errno from open/read
}

func (e *Error) Error() string {
	s := "cgroupfs:"
	if e.File != "" {
		s += " " + e.File
	}
	if e.Line > 0 {
		s += " line " + strconv.Itoa(e.Line)
	}
	if e.Text != "" || e.Line > 0 {
		t := e.Text
		if len(t) > 80 {
			t = t[:80] + "..."
		}
		s += ": " + strconv.Quote(t)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// v1Unlimited is the smallest value treated as "no limit" on cgroup v1.
// The kernel reports an unset limit as PAGE_COUNTER_MAX*PAGE_SIZE:
// 0x7FFFFFFFFFFFF000 (9223372036854771712) with 4 KiB pages, but
// 0x7FFFFFFFFFFF0000 with the 64 KiB pages of some arm64 and ppc64le
// kernels, and LONG_MAX in a few files. No real limit is anywhere near
// 2^62 bytes (4 EiB), so everything from there up means unlimited.
const v1Unlimited = 1 << 62

// ParseUint parses a single-value cgroup file such as memory.current or
// memory.usage_in_bytes: one decimal number, optionally followed by a
// newline. Surrounding blanks are tolerated; anything else is an error.
func ParseUint(data []byte) (uint64, error) {
	v := trimSpace(data)
	if len(v) == 0 {
		return 0, &Error{Err: ErrEmpty}
	}
	n, ok := parseDecimal(v)
	if !ok {
		return 0, &Error{Line: 1, Text: string(v), Err: ErrInvalidValue}
	}
	return n, nil
}

// ParseLimit parses a limit file: v2 memory.max ("max" or a number) or v1
// memory.limit_in_bytes (a number; the huge "no limit" value becomes
// Unlimited).
func ParseLimit(data []byte) (Limit, error) {
	v := trimSpace(data)
	if string(v) == "max" {
		return Limit{Unlimited: true}, nil
	}
	n, err := ParseUint(data)
	if err != nil {
		return Limit{}, err
	}
	if n >= v1Unlimited {
		return Limit{Unlimited: true}, nil
	}
	return Limit{Bytes: n}, nil
}

// ParseKeyedValue finds the line "key value" in a flat keyed file
// (memory.stat, memory.events, memory.oom_control) and parses its value.
// found is false when no line has that key. Only the line with the key is
// parsed, so the cost is one scan of the buffer and no allocation; a
// malformed value on that line is an error naming the line.
func ParseKeyedValue(data []byte, key string) (value uint64, found bool, err error) {
	line := 0
	for len(data) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		if len(l) < len(key) || string(l[:len(key)]) != key {
			continue
		}
		rest := l[len(key):]
		if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' {
			continue // a longer key with this prefix
		}
		n, ok := parseDecimal(trimSpace(rest))
		if !ok {
			return 0, true, &Error{Line: line, Text: string(l), Err: ErrInvalidValue}
		}
		return n, true, nil
	}
	return 0, false, nil
}

// parseDecimal parses an unsigned decimal without allocating. It rejects
// empty input, signs, non-digits and overflow.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
