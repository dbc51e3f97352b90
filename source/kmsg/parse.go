package kmsg

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Record is one /dev/kmsg record: "prio,seq,usec,flags[,more];message\n"
// followed by optional " KEY=value\n" continuation lines, which are
// dropped.
type Record struct {
	// Priority is the syslog level (0 emerg … 7 debug).
	Priority int
	// Facility is the syslog facility; 0 is the kernel itself. Userspace
	// writes to /dev/kmsg can never carry facility 0.
	Facility int
	// Seq is the record's sequence number.
	Seq uint64
	// Monotonic is the record's timestamp since boot (the kernel's
	// CLOCK_MONOTONIC-like local clock).
	Monotonic time.Duration
	// Message is the text, exactly as the kernel escaped it (non-printable
	// bytes appear as \xNN).
	Message string
}

// maxUsec keeps usec*1000 inside a time.Duration.
const maxUsec = math.MaxInt64 / int64(time.Microsecond)

// ParseRecord parses one /dev/kmsg record. Fields after the fourth in the
// header (newer kernels may add some) and continuation lines are ignored.
func ParseRecord(line []byte) (Record, error) {
	var r Record
	header, rest, ok := bytes.Cut(line, []byte{';'})
	if !ok {
		return r, errors.New("kmsg: record has no ';'")
	}
	fields := bytes.Split(header, []byte{','})
	if len(fields) < 3 {
		return r, fmt.Errorf("kmsg: record header %q has fewer than 3 fields", truncate(header))
	}
	prefix, err := strconv.ParseUint(string(fields[0]), 10, 32)
	if err != nil {
		return r, fmt.Errorf("kmsg: bad priority %q", truncate(fields[0]))
	}
	seq, err := strconv.ParseUint(string(fields[1]), 10, 64)
	if err != nil {
		return r, fmt.Errorf("kmsg: bad sequence number %q", truncate(fields[1]))
	}
	usec, err := strconv.ParseInt(string(fields[2]), 10, 64)
	if err != nil || usec < 0 || usec > maxUsec {
		return r, fmt.Errorf("kmsg: bad timestamp %q", truncate(fields[2]))
	}
	msg, _, _ := bytes.Cut(rest, []byte{'\n'})
	r.Priority = int(prefix & 7)
	r.Facility = int(prefix >> 3)
	r.Seq = seq
	r.Monotonic = time.Duration(usec) * time.Microsecond
	r.Message = string(msg)
	return r, nil
}

func truncate(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}

// Constraint label values of exit137_kernel_oom_kills_total.
const (
	ConstraintNone         = "none"
	ConstraintCpuset       = "cpuset"
	ConstraintMemoryPolicy = "memory_policy"
	ConstraintMemcg        = "memcg"
	ConstraintOther        = "other"
)

// Constraints lists every value ConstraintLabel can return, so that the
// counter can start every series at 0.
var Constraints = []string{ConstraintNone, ConstraintCpuset, ConstraintMemoryPolicy, ConstraintMemcg, ConstraintOther}

// ConstraintLabel turns the kernel's constraint (CONSTRAINT_MEMCG) into
// its label value (memcg); anything unknown, or missing, is "other".
func ConstraintLabel(kernel string) string {
	switch kernel {
	case "CONSTRAINT_NONE":
		return ConstraintNone
	case "CONSTRAINT_CPUSET":
		return ConstraintCpuset
	case "CONSTRAINT_MEMORY_POLICY":
		return ConstraintMemoryPolicy
	case "CONSTRAINT_MEMCG":
		return ConstraintMemcg
	}
	return ConstraintOther
}

// OOMKill is the kernel's one-line summary of an OOM kill (Linux 4.19+):
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/docker/<id>,task_memcg=/docker/<id>,task=alloc,pid=12345,uid=0
//
// A host-wide OOM prints ",global_oom" in place of oom_memcg.
type OOMKill struct {
	// Constraint is as the kernel wrote it: CONSTRAINT_MEMCG, CONSTRAINT_NONE, ...
	Constraint  string
	Nodemask    string
	Cpuset      string
	MemsAllowed string
	// OOMMemcg is the cgroup whose limit was hit (empty on a host-wide OOM).
	OOMMemcg string
	// GlobalOOM is set when the kernel printed "global_oom".
	GlobalOOM bool
	// TaskMemcg is the victim's memory cgroup.
	TaskMemcg string
	Task      string
	// PID is the victim's pid, 0 when missing.
	PID int
	// UID is the victim's uid, -1 when missing.
	UID int
}

const oomKillPrefix = "oom-kill:"

// ParseOOMKill parses an "oom-kill:" summary line. It is lenient: fields
// may be missing, reordered or new; a value holding commas (a nodemask
// such as "0,2", a task name) is kept whole.
func ParseOOMKill(msg string) (OOMKill, bool) {
	k := OOMKill{UID: -1}
	rest, ok := strings.CutPrefix(strings.TrimSpace(msg), oomKillPrefix)
	if !ok {
		return k, false
	}
	var (
		last   *string
		parsed bool
		pid    string
		uid    string
	)
	for tok := range strings.SplitSeq(rest, ",") {
		key, value, hasEq := strings.Cut(tok, "=")
		if !hasEq || !isKey(key) {
			if tok == "global_oom" {
				k.GlobalOOM, parsed, last = true, true, nil
				continue
			}
			if last != nil {
				*last += "," + tok
			}
			continue
		}
		parsed = true
		switch key {
		case "constraint":
			last = &k.Constraint
		case "nodemask":
			last = &k.Nodemask
		case "cpuset":
			last = &k.Cpuset
		case "mems_allowed":
			last = &k.MemsAllowed
		case "oom_memcg":
			last = &k.OOMMemcg
		case "task_memcg":
			last = &k.TaskMemcg
		case "task":
			last = &k.Task
		case "pid":
			last = &pid
		case "uid":
			last = &uid
		default:
			// A field this parser does not know; its value (and any
			// comma-continuation) is dropped.
			var sink string
			last = &sink
		}
		*last = value
	}
	if !parsed {
		return k, false
	}
	if n, err := strconv.Atoi(pid); err == nil && n >= 0 {
		k.PID = n
	}
	if n, err := strconv.Atoi(uid); err == nil && n >= 0 {
		k.UID = n
	}
	return k, true
}

// isKey reports whether s looks like a field name: [a-z_]+.
func isKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// Killed is the kernel's "Killed process" line:
//
//	Memory cgroup out of memory: Killed process 12345 (alloc) total-vm:210000kB, anon-rss:32000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0
//	Out of memory: Killed process 12345 (alloc) total-vm:...
//	Killed process 12345 (alloc) total-vm:... (Linux < 5.0, after "Memory cgroup out of memory: Kill process ...")
type Killed struct {
	// Reason is the text before "Killed process", without ": " —
	// "Memory cgroup out of memory", "Out of memory", or "" on old kernels.
	Reason string
	PID    int
	Comm   string
	// Sizes in kB, 0 when missing.
	TotalVMKB, AnonRSSKB, FileRSSKB, ShmemRSSKB, PgtablesKB uint64
	// UID is -1 when missing.
	UID         int
	OOMScoreAdj int
}

// Memcg reports whether the kill was a memory cgroup's.
func (k Killed) Memcg() bool { return strings.HasPrefix(k.Reason, "Memory cgroup") }

// Constraint is the kernel constraint (CONSTRAINT_MEMCG, ...) the line's
// reason implies, for when the oom-kill summary is missing (the kernel
// rate-limits it). See ReasonConstraint.
func (k Killed) Constraint() string { return ReasonConstraint(k.Reason) }

// ReasonConstraint maps the reason the kernel prints before "Killed
// process" or "Kill process" to a kernel constraint:
//
//	"Memory cgroup out of memory"                   CONSTRAINT_MEMCG
//	"Out of memory", "Out of memory (oom_kill_allocating_task)"
//	                                                CONSTRAINT_NONE
//	anything else, or no reason                     ""
//
// "Out of memory" is every OOM outside a memory cgroup: a cpuset- or
// mempolicy-constrained OOM (CONSTRAINT_CPUSET, CONSTRAINT_MEMORY_POLICY)
// prints the same words, and only the summary tells them apart. Without
// the summary such a kill is taken as host-wide (CONSTRAINT_NONE).
func ReasonConstraint(reason string) string {
	switch {
	case strings.HasPrefix(reason, "Memory cgroup out of memory"):
		return "CONSTRAINT_MEMCG"
	case strings.HasPrefix(reason, "Out of memory"):
		return "CONSTRAINT_NONE"
	}
	return ""
}

const killedProcess = "Killed process "

// ParseKilledProcess parses a "Killed process PID (comm) ..." line.
func ParseKilledProcess(msg string) (Killed, bool) {
	k := Killed{UID: -1}
	msg = strings.TrimSpace(msg)
	i := strings.Index(msg, killedProcess)
	if i < 0 {
		return k, false
	}
	if i > 0 {
		reason, ok := strings.CutSuffix(msg[:i], ": ")
		if !ok {
			return k, false
		}
		k.Reason = reason
	}
	rest := msg[i+len(killedProcess):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	pid, err := strconv.Atoi(rest[:j])
	if err != nil {
		return k, false
	}
	k.PID = pid
	rest = rest[j:]
	// " (comm) fields"; comm may itself hold spaces or parentheses.
	if after, ok := strings.CutPrefix(rest, " ("); ok {
		end := strings.Index(after, ") total-vm:")
		if end < 0 {
			end = strings.LastIndexByte(after, ')')
		}
		if end < 0 {
			return k, false
		}
		k.Comm = after[:end]
		rest = after[end+1:]
	}
	for f := range strings.FieldsSeq(rest) {
		key, value, ok := strings.Cut(strings.TrimSuffix(f, ","), ":")
		if !ok {
			continue
		}
		switch key {
		case "total-vm":
			k.TotalVMKB = parseKB(value)
		case "anon-rss":
			k.AnonRSSKB = parseKB(value)
		case "file-rss":
			k.FileRSSKB = parseKB(value)
		case "shmem-rss":
			k.ShmemRSSKB = parseKB(value)
		case "pgtables":
			k.PgtablesKB = parseKB(value)
		case "UID":
			if n, err := strconv.Atoi(value); err == nil && n >= 0 {
				k.UID = n
			}
		case "oom_score_adj":
			if n, err := strconv.Atoi(value); err == nil {
				k.OOMScoreAdj = n
			}
		}
	}
	return k, true
}

func parseKB(s string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSuffix(s, "kB"), 10, 64)
	return n
}

// Victim is a task the OOM killer names in a line other than "Killed
// process":
//
//	Memory cgroup out of memory: Kill process 123 (java) score 1000 or sacrifice child   (Linux < 5.1)
//	Memory cgroup out of memory: OOM victim 123 (java) is already exiting. Skip killing the task
//
// Before 5.1 the kernel chose the victim in the first line, printed it
// whatever the rate limit, and then may have killed one of its children
// instead, in a "Killed process" line without a reason. The second line
// means no kill happened: the chosen task was exiting already.
type Victim struct {
	// Reason is the text before ": ", as in Killed.
	Reason string
	PID    int
	Comm   string
}

const (
	killProcess   = "Kill process "
	chosenSuffix  = " or sacrifice child"
	oomVictim     = "OOM victim "
	skippedSuffix = " is already exiting. Skip killing the task"
)

// ParseKillProcess parses an old kernel's "REASON: Kill process PID
// (comm) score N or sacrifice child" line.
func ParseKillProcess(msg string) (Victim, bool) {
	return parseVictim(msg, killProcess, ") score ", chosenSuffix)
}

// ParseSkippedVictim parses "REASON: OOM victim PID (comm) is already
// exiting. Skip killing the task".
func ParseSkippedVictim(msg string) (Victim, bool) {
	return parseVictim(msg, oomVictim, ")"+skippedSuffix, skippedSuffix)
}

// parseVictim parses "REASON: <verb>PID (comm)<closing>...<suffix>"; comm
// ends at the last <closing>, so it may hold spaces and parentheses.
func parseVictim(msg, verb, closing, suffix string) (Victim, bool) {
	var v Victim
	msg = strings.TrimSpace(msg)
	if !strings.HasSuffix(msg, suffix) {
		return v, false
	}
	reason, rest, ok := strings.Cut(msg, ": "+verb)
	if !ok || reason == "" {
		return v, false
	}
	v.Reason = reason
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	pid, err := strconv.Atoi(rest[:j])
	if err != nil {
		return v, false
	}
	after, ok := strings.CutPrefix(rest[j:], " (")
	if !ok {
		return v, false
	}
	end := strings.LastIndex(after, closing)
	if end < 0 {
		return v, false
	}
	v.PID = pid
	v.Comm = after[:end]
	return v, true
}
