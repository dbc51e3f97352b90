package cgroupfs

import (
	"errors"
	"path/filepath"
	"strings"
)

// Why not containerd/cgroups' stats?
//
// github.com/containerd/cgroups/v3 (v3.1.3) is used for mode detection,
// but the memory numbers are read here rather than through its
// cgroup1/cgroup2 managers' Stat():
//   - its cgroup2 systemd loader (LoadSystemd) and path helpers are fixed
//     to /sys/fs/cgroup, and cgroup1 finds hierarchies from
//     /proc/self/mountinfo, so neither reads a host tree mounted elsewhere
//     (/host/sys/fs/cgroup) or a fixture tree without extra plumbing;
//   - cgroup2 returns zeros for files it cannot open
//     (getStatFileContentUint64 swallows the error, a missing memory.stat
//     yields an empty MemoryStat), so a cgroup deleted mid-scrape reads as
//     a container using 0 bytes instead of an error we can skip on, a
//     missing memory.peak is 0 rather than "unknown", and "max" becomes
//     MaxUint64;
//   - it reads every stat file of every controller (cpu, io, pids, rdma,
//     hugetlb, swap, PSI ...) and parses memory.stat into a map, when a
//     scrape needs five or six small memory files per container; that
//     would blow the budget of 1.3x the raw read of those files.

// Limit is a memory limit. "max" (v2) and v1's huge "no limit" value are
// Unlimited, kept apart from any number; Bytes is 0 then.
type Limit struct {
	Unlimited bool
	Bytes     uint64
	// Inherited marks a limit set on an ancestor cgroup (a custom
	// --cgroup-parent with a limit of its own) that applies to a cgroup
	// whose own is unlimited: the limit its OOM kills come from. v1 only
	// (memory.stat hierarchical_memory_limit).
	Inherited bool
}

// Memory is the memory accounting of one cgroup.
//
// Pointer fields are nil when this kernel does not provide the value
// (which is not the same as 0).
type Memory struct {
	// Usage is v1 memory.usage_in_bytes, v2 memory.current.
	Usage uint64
	// WorkingSet is Usage minus inactive file cache (v1 memory.stat
	// total_inactive_file, v2 memory.stat inactive_file), floored at 0;
	// the same figure as cAdvisor's container_memory_working_set_bytes.
	WorkingSet uint64
	// Limit is v1 memory.limit_in_bytes, v2 memory.max; on v1, when that
	// is unlimited, the nearest ancestor's limit (Limit.Inherited).
	Limit Limit
	// Peak is v1 memory.max_usage_in_bytes, v2 memory.peak (kernel 5.19+;
	// nil before).
	Peak *uint64
	// LimitHits is v1 memory.failcnt, v2 memory.events "max": how many
	// times usage hit the limit.
	LimitHits *uint64
	// OOMKills is v1 memory.oom_control "oom_kill" (kernel 4.13+; nil
	// before), v2 memory.events "oom_kill": processes killed by the OOM
	// killer in this cgroup.
	OOMKills *uint64
}

// Memory reads the memory accounting of the cgroup at path, relative to
// MemoryRoot (a Container's Path).
//
// If the cgroup directory does not exist or is removed while it is read,
// the error matches ErrNotExist; a missing file every kernel has matches
// ErrMissingFile; a malformed file gives an *Error naming file and line.
func (f FS) Memory(path string) (Memory, error) {
	r, err := f.openCgroup(path)
	if err != nil {
		return Memory{}, err
	}
	defer r.close()
	if f.mode == ModeUnified {
		return r.memoryV2()
	}
	return r.memoryV1()
}

// OOMKills reads the cgroup's oom_kill counter alone (v1
// memory.oom_control, v2 memory.events), for a death whose cgroup the
// runtime is about to remove: one file, not the six of Memory with
// memory.stat among them, on a path where a burst's deaths queue up.
// found is false on a v1 kernel before 4.13, which has no counter. Errors
// are as Memory's.
func (f FS) OOMKills(path string) (kills uint64, found bool, err error) {
	r, err := f.openCgroup(path)
	if err != nil {
		return 0, false, err
	}
	defer r.close()
	n := fileOOMControl
	if f.mode == ModeUnified {
		n = fileEvents
	}
	data, _, err := r.read(n, false)
	if err != nil {
		return 0, false, err
	}
	if kills, found, err = ParseKeyedValue(data, "oom_kill"); err != nil {
		return 0, false, r.parseErr(n, err)
	}
	return kills, found, nil
}

// openCgroup opens the cgroup at path, relative to MemoryRoot, for reading.
func (f FS) openCgroup(path string) (dirReader, error) {
	if f.mode == 0 {
		return dirReader{}, errNotInitialised
	}
	if !filepath.IsLocal(path) || strings.IndexByte(path, 0) >= 0 {
		return dirReader{}, &Error{Text: path, Err: errors.New("not a path inside the memory root")}
	}
	return f.openDir(path)
}

// uint reads a single-value file.
func (r *dirReader) uint(n *fileName) (uint64, error) {
	data, _, err := r.read(n, false)
	if err != nil {
		return 0, err
	}
	v, err := ParseUint(data)
	if err != nil {
		return 0, r.parseErr(n, err)
	}
	return v, nil
}

func (r *dirReader) limit(n *fileName) (Limit, error) {
	data, _, err := r.read(n, false)
	if err != nil {
		return Limit{}, err
	}
	l, err := ParseLimit(data)
	if err != nil {
		return Limit{}, r.parseErr(n, err)
	}
	return l, nil
}

// workingSet reads inactive file cache from memory.stat and subtracts it
// from usage, as cAdvisor does. It returns memory.stat's bytes for the
// caller's other keys; they stay valid until the next read.
func (r *dirReader) workingSet(usage uint64, key string) (uint64, []byte, error) {
	data, _, err := r.read(fileStat, false)
	if err != nil {
		return 0, nil, err
	}
	inactive, found, err := ParseKeyedValue(data, key)
	if err != nil {
		return 0, nil, r.parseErr(fileStat, err)
	}
	if !found {
		return 0, nil, &Error{File: r.path(fileStat), Text: key, Err: ErrMissingKey}
	}
	if inactive >= usage {
		return 0, data, nil
	}
	return usage - inactive, data, nil
}

// usageAndLimit fills the fields both versions read alike, each from
// its own files: Usage, WorkingSet and Limit.
func (r *dirReader) usageAndLimit(m *Memory, usage *fileName, inactiveKey string, limit *fileName) (stat []byte, err error) {
	if m.Usage, err = r.uint(usage); err != nil {
		return nil, err
	}
	if m.WorkingSet, stat, err = r.workingSet(m.Usage, inactiveKey); err != nil {
		return nil, err
	}
	m.Limit, err = r.limit(limit)
	return stat, err
}

func (r *dirReader) memoryV1() (Memory, error) {
	var m Memory
	var err error
	vals := new([3]uint64)
	stat, err := r.usageAndLimit(&m, fileUsageInBytes, "total_inactive_file", fileLimitInBytes)
	if err != nil {
		return Memory{}, err
	}
	if m.Limit.Unlimited {
		// An unlimited container under a limited parent is limited.
		inherited, found, err := ParseKeyedValue(stat, "hierarchical_memory_limit")
		if err != nil {
			return Memory{}, r.parseErr(fileStat, err)
		}
		if found && inherited < v1Unlimited {
			m.Limit = Limit{Bytes: inherited, Inherited: true}
		}
	}
	if vals[0], err = r.uint(fileMaxUsageInBytes); err != nil {
		return Memory{}, err
	}
	m.Peak = &vals[0]
	if vals[1], err = r.uint(fileFailcnt); err != nil {
		return Memory{}, err
	}
	m.LimitHits = &vals[1]
	data, _, err := r.read(fileOOMControl, false)
	if err != nil {
		return Memory{}, err
	}
	kills, found, err := ParseKeyedValue(data, "oom_kill")
	if err != nil {
		return Memory{}, r.parseErr(fileOOMControl, err)
	}
	if found { // kernels before 4.13 have no oom_kill line
		vals[2] = kills
		m.OOMKills = &vals[2]
	}
	return m, nil
}

func (r *dirReader) memoryV2() (Memory, error) {
	var m Memory
	vals := new([3]uint64)
	// memory.peak first: it is optional (kernel 5.19+), and a missing
	// optional file is only trusted because a required read follows.
	data, found, err := r.read(filePeak, true)
	if err != nil {
		return Memory{}, err
	}
	if found {
		if vals[0], err = ParseUint(data); err != nil {
			return Memory{}, r.parseErr(filePeak, err)
		}
		m.Peak = &vals[0]
	}
	if _, err = r.usageAndLimit(&m, fileCurrent, "inactive_file", fileMax); err != nil {
		return Memory{}, err
	}
	if data, _, err = r.read(fileEvents, false); err != nil {
		return Memory{}, err
	}
	for i, key := range [...]string{"max", "oom_kill"} {
		v, found, err := ParseKeyedValue(data, key)
		if err != nil {
			return Memory{}, r.parseErr(fileEvents, err)
		}
		if !found {
			continue
		}
		vals[i+1] = v
		switch i {
		case 0:
			m.LimitHits = &vals[1]
		case 1:
			m.OOMKills = &vals[2]
		}
	}
	return m, nil
}
