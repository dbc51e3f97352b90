package sigtrace

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

const containerID = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"

// fakeProc is a /proc tree under t.TempDir(), laid out as the kernel
// lays out the files the source reads.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc { return &fakeProc{t: t, root: t.TempDir()} }

// proc describes one fake process.
type proc struct {
	pid, ppid int
	tgid      int // of a thread; 0: pid
	comm, exe string
	uid       int
	loginuid  uint64
	tty       int
	flags     uint64
	cgroup    string
	zombie    bool
}

func (f *fakeProc) add(p proc) {
	f.t.Helper()
	dir := filepath.Join(f.root, strconv.Itoa(p.pid))
	state, tgid := "S", p.pid
	if p.tgid != 0 {
		tgid = p.tgid
	}
	if p.zombie {
		state = "Z"
	}
	files := map[string]string{
		// pid (comm) state ppid pgrp session tty_nr tpgid flags minflt ...
		"stat": strconv.Itoa(p.pid) + " (" + p.comm + ") " + state + " " + strconv.Itoa(p.ppid) + " 100 100 " +
			strconv.Itoa(p.tty) + " -1 " + strconv.FormatUint(p.flags, 10) + " 120 0 0 0 1 2 0 0 20 0 1 0 4242 1000 100\n",
		"status": "Name:\t" + p.comm + "\nUmask:\t0022\nState:\t" + state + " (sleeping)\nTgid:\t" + strconv.Itoa(tgid) +
			"\nPPid:\t" + strconv.Itoa(p.ppid) + "\nUid:\t1000\t" + strconv.Itoa(p.uid) + "\t" + strconv.Itoa(p.uid) + "\t" + strconv.Itoa(p.uid) + "\nGid:\t0\t0\t0\t0\n",
		"loginuid": strconv.FormatUint(p.loginuid, 10),
		"cgroup":   "12:pids:" + p.cgroup + "\n4:memory:" + p.cgroup + "\n1:name=systemd:" + p.cgroup + "\n0::/\n",
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	if p.exe != "" && !p.zombie {
		if err := os.Symlink(p.exe, filepath.Join(dir, "exe")); err != nil {
			f.t.Fatal(err)
		}
	}
}

// A host with a login session, sudo, Docker and systemd.
func hostProcs(f *fakeProc) {
	f.add(proc{pid: 1, comm: "systemd", exe: "/usr/lib/systemd/systemd", loginuid: noLoginUID, cgroup: "/init.scope"})
	f.add(proc{pid: 2, comm: "kthreadd", loginuid: noLoginUID, flags: pfKthread})
	f.add(proc{pid: 40, ppid: 2, comm: "oom_reaper", loginuid: noLoginUID, flags: pfKthread | 0x40})
	f.add(proc{pid: 500, ppid: 1, comm: "sshd", exe: "/usr/sbin/sshd", loginuid: noLoginUID, cgroup: "/system.slice/ssh.service"})
	f.add(proc{pid: 812, ppid: 500, comm: "bash", exe: "/usr/bin/bash", uid: 1000, loginuid: 1000, tty: 34816, cgroup: "/user.slice"})
	f.add(proc{pid: 900, ppid: 812, comm: "sudo", exe: "/usr/bin/sudo", loginuid: 1000, tty: 34816, cgroup: "/user.slice"})
	f.add(proc{pid: 901, ppid: 900, comm: "kill", exe: "/usr/bin/kill", loginuid: 1000, tty: 34816, cgroup: "/user.slice"})
	f.add(proc{pid: 600, ppid: 1, comm: "containerd", exe: "/usr/bin/containerd", loginuid: noLoginUID, cgroup: "/system.slice/containerd.service"})
	f.add(proc{pid: 700, ppid: 1, comm: "containerd-shim", exe: "/usr/bin/containerd-shim-runc-v2", loginuid: noLoginUID, cgroup: "/system.slice/containerd.service"})
	f.add(proc{pid: 701, ppid: 700, comm: "runc", exe: "/usr/sbin/runc", loginuid: noLoginUID, cgroup: "/system.slice/containerd.service"})
	f.add(proc{pid: 702, ppid: 700, comm: "runc", loginuid: noLoginUID, zombie: true})
	f.add(proc{pid: 710, ppid: 700, comm: "helper", exe: "/helper", loginuid: noLoginUID, cgroup: "/docker/" + containerID})
	f.add(proc{pid: 711, ppid: 700, comm: "helper", exe: "/helper", loginuid: noLoginUID, cgroup: "/system.slice/docker-" + containerID + ".scope"})
	f.add(proc{pid: 1301, tgid: 1300, ppid: 1, comm: "dockerd", exe: "/usr/sbin/dockerd", loginuid: noLoginUID, cgroup: "/system.slice/docker.service"})
	// Podman: a service started from a login shell, its conmon, and the
	// OCI runtime it runs for podman kill / podman stop.
	f.add(proc{pid: 1400, ppid: 812, comm: "podman", exe: "/usr/bin/podman", loginuid: 1000, tty: 34816, cgroup: "/user.slice"})
	f.add(proc{pid: 1401, ppid: 1400, comm: "runc", exe: "/usr/sbin/runc", loginuid: 1000, tty: 34816, cgroup: "/user.slice"})
	f.add(proc{pid: 1402, ppid: 1400, comm: "crun", exe: "/usr/bin/crun", loginuid: 1000, cgroup: "/user.slice"})
	f.add(proc{pid: 1410, ppid: 1, comm: "conmon", exe: "/usr/bin/conmon", loginuid: 1000, cgroup: "/libpod_parent/conmon"})
	f.add(proc{pid: 1420, ppid: 1410, comm: "helper", exe: "/helper", loginuid: 1000, cgroup: "/libpod_parent/libpod-" + containerID})
	f.add(proc{pid: 800, ppid: 1, comm: "watchdog.sh", exe: "/usr/bin/dash", loginuid: noLoginUID, cgroup: "/system.slice/watchdog.service"})
	f.add(proc{pid: 1200, ppid: 1, comm: "systemd", exe: "/usr/lib/systemd/systemd", uid: 1000, loginuid: 1000, cgroup: "/user.slice/user-1000.slice/user@1000.service"})
}

func TestClassifyFromProc(t *testing.T) {
	f := newFakeProc(t)
	hostProcs(f)
	procfs := newProcFS(f.root)
	tests := []struct {
		name   string
		line   string
		class  string
		detail string
	}{
		{"kill -9 under sudo from a login", "kill-901 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0",
			ClassUser, "kill (pid 901, uid 0, login uid 1000), /usr/bin/kill, parent sudo < bash < sshd < systemd, target helper (pid 710)"},
		{"the shell's builtin", "bash-812 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0",
			ClassUser, "bash (pid 812, uid 1000, login uid 1000), /usr/bin/bash, parent sshd < systemd, target helper (pid 710)"},
		{"docker kill", "            runc-701     [000] dN.1.  1449.576153: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0",
			ClassRuntime, "runc (pid 701, uid 0), /usr/sbin/runc, parent containerd-shim < systemd, target helper (pid 710)"},
		{"docker stop, runc a zombie already", "runc-702 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0",
			ClassRuntime, "runc (pid 702, uid 0), parent containerd-shim < systemd, target helper (pid 710)"},
		{"the shim", "containerd-shim-700 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0",
			ClassRuntime, "containerd-shim (pid 700, uid 0), /usr/bin/containerd-shim-runc-v2, parent systemd, target helper (pid 710)"},
		{"a thread of dockerd", "dockerd-1301 [0] 1.0: signal_generate: sig=9 errno=0 code=-6 comm=helper pid=710 grp=1 res=0",
			ClassRuntime, "dockerd (pid 1300, uid 0), /usr/sbin/dockerd, parent systemd, target helper (pid 710)"},
		{"podman kill through runc, from a login session", "runc-1401 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=1420 grp=1 res=0",
			ClassRuntime, "runc (pid 1401, uid 0, login uid 1000), /usr/sbin/runc, parent podman < bash < sshd < systemd, target helper (pid 1420)"},
		{"podman kill through crun", "crun-1402 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=1420 grp=1 res=0",
			ClassRuntime, "crun (pid 1402, uid 0, login uid 1000), /usr/bin/crun, parent podman < bash < sshd < systemd, target helper (pid 1420)"},
		{"podman itself", "podman-1400 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=1420 grp=1 res=0",
			ClassRuntime, "podman (pid 1400, uid 0, login uid 1000), /usr/bin/podman, parent bash < sshd < systemd, target helper (pid 1420)"},
		{"conmon", "conmon-1410 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=1420 grp=1 res=0",
			ClassRuntime, "conmon (pid 1410, uid 0, login uid 1000), /usr/bin/conmon, parent systemd, target helper (pid 1420)"},
		{"gone, the trace saved crun", "crun-4445 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=1420 grp=1 res=0",
			ClassRuntime, "crun (pid 4445, exited before it could be read), target helper (pid 1420)"},
		{"systemd", "systemd-1 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=711 grp=1 res=0",
			ClassSystemd, "systemd (pid 1, uid 0), /usr/lib/systemd/systemd, target helper (pid 711)"},
		{"a user's systemd manager", "systemd-1200 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=711 grp=1 res=0",
			ClassSystemd, "systemd (pid 1200, uid 1000, login uid 1000), /usr/lib/systemd/systemd, parent systemd, target helper (pid 711)"},
		{"oom kill by the allocating thread", "helper-711 [0] 1.0: signal_generate: sig=9 errno=0 code=128 comm=helper pid=711 grp=1 res=0",
			ClassKernel, "helper (pid 711, uid 0), /helper, parent containerd-shim < systemd, generated by the kernel (SI_KERNEL), target helper (pid 711)"},
		{"a kernel thread", "oom_reaper-40 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0",
			ClassKernel, "oom_reaper (pid 40, uid 0), parent kthreadd, target helper (pid 710)"},
		{"the idle task", "<idle>-0 [0] 1.0: signal_generate: sig=9 errno=0 code=128 comm=helper pid=710 grp=1 res=0",
			ClassKernel, "<idle> (pid 0), generated by the kernel (SI_KERNEL), target helper (pid 710)"},
		{"a script without a login", "watchdog.sh-800 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0",
			ClassOther, "watchdog.sh (pid 800, uid 0), /usr/bin/dash, parent systemd, target helper (pid 710)"},
		{"gone, the trace saved runc", "runc-4444 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0",
			ClassRuntime, "runc (pid 4444, exited before it could be read), target helper (pid 710)"},
		{"gone, nothing saved", "<...>-4444 [0] 1.0: signal_generate: sig=9 errno=0 code=0 comm=helper pid=710 grp=1 res=0",
			ClassOther, "? (pid 4444, exited before it could be read), target helper (pid 710)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, ok := ParseLine([]byte(tt.line))
			if !ok {
				t.Fatalf("cannot parse %q", tt.line)
			}
			s := procfs.sender(ev.SenderPID)
			if got := Classify(&ev, &s); got != tt.class {
				t.Errorf("class %q, want %q (sender %+v)", got, tt.class, s)
			}
			if got := describe(&ev, &s); got != tt.detail {
				t.Errorf("detail\n got %q\nwant %q", got, tt.detail)
			}
		})
	}
}

func TestContainerOfTarget(t *testing.T) {
	f := newFakeProc(t)
	hostProcs(f)
	procfs := newProcFS(f.root)
	for pid, want := range map[int]string{710: containerID, 711: containerID, 1420: containerID, 812: "", 1: "", 4444: ""} {
		got, ok := procfs.container(pid)
		if got != want || ok != (want != "") {
			t.Errorf("container(%d) = %q, %v; want %q", pid, got, ok, want)
		}
	}
}

func TestParentChainIsBounded(t *testing.T) {
	f := newFakeProc(t)
	for pid := 1; pid <= 10; pid++ {
		f.add(proc{pid: pid, ppid: pid - 1, comm: "p" + strconv.Itoa(pid), loginuid: noLoginUID})
	}
	s := newProcFS(f.root).sender(10)
	if len(s.Parents) != maxParents || s.Parents[0].PID != 9 || s.Parents[maxParents-1].PID != 6 {
		t.Errorf("parents %+v, want 9, 8, 7, 6", s.Parents)
	}
}

func TestParseStatOddComm(t *testing.T) {
	var p Process
	if err := parseStat([]byte("42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0"), &p); err != nil {
		t.Fatal(err)
	}
	if p.Comm != "a) b (c)" || p.PPID != 7 || p.TTY || p.Kernel {
		t.Errorf("parseStat = %+v", p)
	}
	for _, bad := range []string{"", "42 a S 1", "42 (a) S 1 2", "42 (a) S x 1 1 0 -1 0", ")( S 1 1 1 0 -1 0"} {
		if err := parseStat([]byte(bad), &p); err == nil {
			t.Errorf("parseStat(%q) did not fail", bad)
		}
	}
}
