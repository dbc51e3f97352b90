package sigtrace

import (
	"bytes"
	"strconv"
	"testing"
)

// Lines recorded on this project's machine (Linux 6.18, Docker 20.10).
const (
	// docker kill: runc sends it.
	realDockerKill = "            runc-7422    [000] dN.1.  1449.576153: signal_generate: sig=9 errno=0 code=0 comm=helper pid=7370 grp=1 res=0"
	// kill -9 <container pid> from a host shell (dash's builtin kill).
	realShellKill = "              sh-7559    [001] dN.1.  1451.798700: signal_generate: sig=9 errno=0 code=0 comm=helper pid=7503 grp=1 res=0"
	// A memcg OOM kill: the allocating thread of the victim sends it,
	// with code SI_KERNEL.
	realOOMKill = "          helper-7647    [001] dN.2.  1453.980920: signal_generate: sig=9 errno=0 code=128 comm=helper pid=7619 grp=1 res=0"
	// A dying container init kills the rest of its PID namespace (here
	// one of its own threads, already exiting: res=1 ignored).
	realNamespaceKill = "          helper-7399    [001] dN.2.  1449.577048: signal_generate: sig=9 errno=0 code=128 comm=helper pid=7399 grp=1 res=1"
	// /usr/bin/kill, not yet in the kernel's comm cache.
	realUncachedKill = "           <...>-6265    [000] d..1.  1385.457622: signal_generate: sig=9 errno=0 code=0 comm=sleep pid=6389 grp=1 res=0"
	// A sender whose comm holds a colon and a dash.
	realOddComm = " memfd:sealed-91-4654    [000] dN.1.  1385.462063: signal_generate: sig=9 errno=0 code=0 comm=bash pid=6264 grp=1 res=0"
	realLost    = "CPU:1 [LOST 1832 EVENTS]"
)

// TestParseSenderTGID reads the record-tgid column: the sender's process
// when the sender is one of its threads (as the OOM killer's allocating
// thread is).
func TestParseSenderTGID(t *testing.T) {
	for line, want := range map[string]int{
		"          helper-7647    (   7619) [001] dN.2.  1453.980920: signal_generate: sig=9 errno=0 code=128 comm=helper pid=7619 grp=1 res=0": 7619,
		"            bash-8677    (   8677) [001] d..1.  1452.021063: signal_generate: sig=9 errno=0 code=0 comm=sleep pid=8678 grp=1 res=0":    8677,
		"           <...>-7650    (-------) [001] dN.2.  1453.980920: signal_generate: sig=9 errno=0 code=128 comm=helper pid=7619 grp=1 res=0": 0,
		realOOMKill: 0,
	} {
		ev, ok := ParseLine([]byte(line))
		if !ok || ev.SenderTGID != want {
			t.Errorf("ParseLine(%q): tgid %d, %v; want %d", line, ev.SenderTGID, ok, want)
		}
	}
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		name, line     string
		senderComm     string
		senderPID      int
		code           int
		targetComm     string
		targetPID, res int
		group          bool
		sig            int
	}{
		{"docker kill", realDockerKill, "runc", 7422, 0, "helper", 7370, 0, true, 9},
		{"shell kill", realShellKill, "sh", 7559, 0, "helper", 7503, 0, true, 9},
		{"oom kill", realOOMKill, "helper", 7647, 128, "helper", 7619, 0, true, 9},
		{"namespace kill", realNamespaceKill, "helper", 7399, 128, "helper", 7399, 1, true, 9},
		{"uncached comm", realUncachedKill, "<...>", 6265, 0, "sleep", 6389, 0, true, 9},
		{"odd comm", realOddComm, "memfd:sealed-91", 4654, 0, "bash", 6264, 0, true, 9},
		{"comm with spaces, brackets and markers", "  a [1] b-c pid=3-12 [001] d..1.  9.5: signal_generate: sig=9 errno=0 code=-6 comm=x pid=1 grp=2 pid=77 grp=0 res=2",
			"a [1] b-c pid=3", 12, -6, "x pid=1 grp=2", 77, 2, false, 9},
		{"idle, no irq-info column", "          <idle>-0       [001]   12.000001: signal_generate: sig=9 errno=0 code=128 comm=a b pid=5 grp=1 res=0",
			"<idle>", 0, 128, "a b", 5, 0, true, 9},
		{"record-tgid column", "            kill-7129    (   7129) [000] dN.1.  1425.146786: signal_generate: sig=15 errno=0 code=0 comm=sleep pid=7128 grp=1 res=0\r",
			"kill", 7129, 0, "sleep", 7128, 0, true, 15},
		{"empty target comm", "x-1 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm= pid=2 grp=1 res=0", "x", 1, 0, "", 2, 0, true, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, ok := ParseLine([]byte(tt.line))
			if !ok {
				t.Fatalf("ParseLine(%q) not ok", tt.line)
			}
			if string(ev.SenderComm) != tt.senderComm || ev.SenderPID != tt.senderPID || ev.Code != tt.code || ev.Signal != tt.sig ||
				string(ev.TargetComm) != tt.targetComm || ev.TargetPID != tt.targetPID || ev.Result != tt.res || ev.Group != tt.group || ev.Errno != 0 {
				t.Errorf("ParseLine(%q) = sender %q/%d code %d sig %d target %q/%d res %d group %v errno %d", tt.line,
					ev.SenderComm, ev.SenderPID, ev.Code, ev.Signal, ev.TargetComm, ev.TargetPID, ev.Result, ev.Group, ev.Errno)
			}
		})
	}
}

func TestParseLineRejects(t *testing.T) {
	for _, line := range []string{
		"", realLost, "# tracer: nop", "signal_generate: sig=9",
		"kill-1 [0] 1.0: signal_deliver: sig=9 errno=0 code=0 sa_handler=0 sa_flags=0",
		"kill-1 1.0: signal_generate: sig=9 errno=0 code=0 comm=a pid=2 grp=1 res=0",               // no CPU column
		"kill [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=a pid=2 grp=1 res=0",             // no sender pid
		"kill-x [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=a pid=2 grp=1 res=0",           // bad sender pid
		"kill-1 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=a pid=2 grp=1",                 // no res
		"kill-1 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=a pid=-2 grp=1 res=0",          // negative target
		"kill-1 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=a grp=1 res=0",                 // no pid
		"kill-1 [0] 1.0: signal_generate: sig=9 errno=0 code=0 a pid=2 grp=1 res=0",                // no comm=
		"kill-1 [0] 1.0: signal_generate: sig=9 code=0 comm=a pid=2 grp=1 res=0",                   // no errno
		"kill-1 [0] 1.0: signal_generate: sig=99999999999 errno=0 code=0 comm=a pid=2 grp=1 res=0", // overflow
		"kill-1 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=a pid=2 grp=1 res=0x",          // trailing garbage
	} {
		if ev, ok := ParseLine([]byte(line)); ok {
			t.Errorf("ParseLine(%q) = %+v, want not ok", line, ev)
		}
	}
	if !isLost([]byte(realLost)) || isLost([]byte(realDockerKill)) {
		t.Error("isLost does not tell the lost-events line")
	}
}

func TestParseInt(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "42": 42, "-6": -6, "2147483647": 2147483647, "-2147483648": -2147483648} {
		if got, ok := parseInt([]byte(in)); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-", "+1", "2147483648", "-2147483649", "99999999999", "1 ", "0x1"} {
		if got, ok := parseInt([]byte(in)); ok {
			t.Errorf("parseInt(%q) = %d, want not ok", in, got)
		}
	}
}

func TestParseLineDoesNotAllocate(t *testing.T) {
	line := []byte(realDockerKill)
	if n := testing.AllocsPerRun(100, func() { ParseLine(line) }); n != 0 {
		t.Errorf("ParseLine allocates %v times per line", n)
	}
}

func BenchmarkParseLine(b *testing.B) {
	line := []byte(realDockerKill)
	b.ReportAllocs()
	for b.Loop() {
		ParseLine(line)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{realDockerKill, realShellKill, realOOMKill, realNamespaceKill, realUncachedKill, realOddComm, realLost,
		"", ": signal_generate: ", "-1 [: signal_generate: sig=9 errno=0 code=0 comm= pid=0 grp=0 res=0", "a-1 (2) [0] 1: signal_generate: res=-0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, ok := ParseLine(line)
		if !ok {
			return
		}
		if ev.SenderPID < 0 || ev.TargetPID < 0 {
			t.Errorf("negative pid in %+v", ev)
		}
		// What was parsed is in the line, in order: the numbers print back.
		for _, n := range []int{ev.SenderPID, ev.TargetPID, ev.Signal, ev.Code} {
			if !bytes.Contains(line, []byte(strconv.Itoa(n))) {
				t.Errorf("%d is not in %q", n, line)
			}
		}
		if !bytes.Contains(line, ev.SenderComm) || !bytes.Contains(line, []byte("comm="+string(ev.TargetComm)+" pid=")) {
			t.Errorf("comms of %+v are not in %q", ev, line)
		}
		var s Sender
		s.UID, s.LoginUID = -1, -1
		_ = Classify(&ev, &s)
		_ = describe(&ev, &s)
	})
}
