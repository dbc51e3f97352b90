package sigtrace

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/exit137-exporter/exit137-exporter/source/kmsg"
)

// Process is what /proc showed of one process.
type Process struct {
	// PID is the process (thread group) id; the trace names the thread.
	PID, PPID int
	Comm      string
	// Exe is empty when unreadable: a zombie, a kernel thread.
	Exe string
	// UID is the effective uid, -1 when unknown.
	UID int
	// LoginUID is the audit login uid (the user behind a sudo), -1 when
	// unset (4294967295) or unknown.
	LoginUID int
	// TTY says the process has a controlling terminal.
	TTY bool
	// Kernel says it is a kernel thread (PF_KTHREAD).
	Kernel bool
}

// Sender is a SIGKILL's sender as /proc showed it right after the event.
type Sender struct {
	Process
	// Gone says the sender had exited and been reaped before it could be
	// read; only the trace's pid and comm are known.
	Gone bool
	// Parents is the parent chain, nearest first.
	Parents []Process
}

const (
	// maxParents bounds the parent chain.
	maxParents = 4
	// pfKthread is PF_KTHREAD in /proc/<pid>/stat's flags.
	pfKthread = 0x00200000
	// noLoginUID is the audit login uid of a process no login started.
	noLoginUID = 4294967295
)

// procFS reads /proc into one reused buffer; it is not safe for
// concurrent use.
type procFS struct {
	root string
	buf  []byte
}

func newProcFS(root string) *procFS {
	return &procFS{root: root, buf: make([]byte, 8<<10)}
}

// read returns the start of a /proc file: the fields needed lie in its
// first 8 KiB, a cgroup file of a dozen hierarchies too. The slice is
// valid until the next read.
func (p *procFS) read(pid int, name string) ([]byte, error) {
	f, err := os.Open(p.path(pid, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, p.buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return p.buf[:n], nil
}

func (p *procFS) path(pid int, name string) string {
	return filepath.Join(p.root, strconv.Itoa(pid), name)
}

// container maps a process to the container whose cgroup holds it.
func (p *procFS) container(pid int) (string, bool) {
	data, err := p.read(pid, "cgroup")
	if err != nil {
		return "", false
	}
	// "hierarchy:controllers:path" per line; v1 lists every hierarchy,
	// v2 has the one "0::path".
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		if i := bytes.LastIndexByte(line, ':'); i >= 0 {
			if id, ok := kmsg.ContainerIDFromCgroup(string(line[i+1:])); ok {
				return id, true
			}
		}
	}
	return "", false
}

// sender reads pid and its parents. A process that is gone gives a
// Sender with Gone set; pid 0 (the idle task) is the kernel.
func (p *procFS) sender(pid int) Sender {
	var s Sender
	if pid <= 0 {
		s.UID, s.LoginUID, s.Kernel = -1, -1, true
		return s
	}
	proc, err := p.process(pid, true)
	if err != nil {
		s.PID, s.UID, s.LoginUID, s.Gone = pid, -1, -1, true
		return s
	}
	s.Process = proc
	for ppid := proc.PPID; ppid > 0 && len(s.Parents) < maxParents; {
		parent, err := p.process(ppid, false)
		if err != nil {
			break
		}
		s.Parents = append(s.Parents, parent)
		ppid = parent.PPID
	}
	return s
}

// process reads one process: stat first (it also exists for a zombie),
// then, when full, its uid, login uid and executable.
func (p *procFS) process(pid int, full bool) (Process, error) {
	proc := Process{PID: pid, UID: -1, LoginUID: -1}
	data, err := p.read(pid, "stat")
	if err != nil {
		return proc, err
	}
	if err := parseStat(data, &proc); err != nil {
		return proc, err
	}
	if !full {
		return proc, nil
	}
	if data, err := p.read(pid, "status"); err == nil {
		parseStatus(data, &proc)
	}
	if data, err := p.read(pid, "loginuid"); err == nil {
		if n, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 32); err == nil && n != noLoginUID {
			proc.LoginUID = int(n)
		}
	}
	proc.Exe, _ = os.Readlink(p.path(pid, "exe"))
	return proc, nil
}

// parseStat reads comm, ppid, tty_nr and flags from /proc/<pid>/stat:
// "pid (comm) state ppid pgrp session tty_nr tpgid flags ...". The comm
// may hold spaces and parentheses, so the fields follow its last ')'.
func parseStat(data []byte, proc *Process) error {
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return errors.New("malformed stat")
	}
	proc.Comm = string(data[open+1 : end])
	fields := bytes.Fields(data[end+1:])
	if len(fields) < 7 {
		return errors.New("short stat")
	}
	ppid, err1 := strconv.Atoi(string(fields[1]))
	tty, err2 := strconv.Atoi(string(fields[4]))
	flags, err3 := strconv.ParseUint(string(fields[6]), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	proc.PPID, proc.TTY, proc.Kernel = ppid, tty != 0, flags&pfKthread != 0
	return nil
}

// parseStatus reads the thread group id (the process of a sending
// thread) and the effective uid from /proc/<pid>/status:
// "Tgid:\tN" and "Uid:\treal\teffective\tsaved\tfs".
func parseStatus(data []byte, proc *Process) {
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		key, value, _ := bytes.Cut(line, []byte{':'})
		f := bytes.Fields(value)
		switch {
		case string(key) == "Tgid" && len(f) >= 1:
			if n, err := strconv.Atoi(string(f[0])); err == nil && n > 0 {
				proc.PID = n
			}
		case string(key) == "Uid" && len(f) >= 2:
			if n, err := strconv.Atoi(string(f[1])); err == nil {
				proc.UID = n
			}
			return // Tgid comes first
		}
	}
}
