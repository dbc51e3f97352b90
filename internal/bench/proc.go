package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat: the kernel's
// USER_HZ, 100 on every Linux architecture Go supports.
const userHZ = 100

// Proc is what /proc says about a process.
type Proc struct {
	// CPU is user plus system time (utime+stime), in 10 ms ticks.
	CPU time.Duration
	// RSS and PeakRSS are VmRSS and VmHWM, in bytes.
	RSS, PeakRSS int64
	// AnonRSS and FileRSS split RSS: the heap and stacks, and the pages
	// of the binary (and other files) mapped in, which grow as code paths
	// are first run.
	AnonRSS, FileRSS int64
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (Proc, error) {
	var p Proc
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// The command name is in parentheses and may hold spaces; the fields
	// after it start with the third, state, so utime and stime (the 14th
	// and 15th) are at 11 and 12.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return p, errors.New("malformed /proc stat")
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 13 {
		return p, errors.New("short /proc stat")
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return p, err
		}
		ticks += n
	}
	p.CPU = time.Duration(ticks) * time.Second / userHZ

	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		switch key {
		case "VmRSS":
			p.RSS = kb << 10
		case "VmHWM":
			p.PeakRSS = kb << 10
		case "RssAnon":
			p.AnonRSS = kb << 10
		case "RssFile":
			p.FileRSS = kb << 10
		}
	}
	return p, sc.Err()
}

// MB formats a byte count in MB (10^6 bytes), the unit of the targets.
func MB(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// SelfCPU is this process's user plus system time so far (getrusage),
// to the microsecond: with the collectors running in parallel, a
// scrape's CPU time can exceed its wall time.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
