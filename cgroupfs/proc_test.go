package cgroupfs

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// Containers the scan does not find: their cgroups are in the fixture
// trees, their inits in testdata/proc (see testdata/README.md).
const (
	customV1 = "415dc894c70c809aed2c3ab0d3db6fdec28b3be2cd07ebbe6e1c290760d4dabb" // v1-cgroupfs memory/mygroup/<id>
	podmanV1 = "e1fe49b85341d3c51265904af9b2068b4e34a48c38516444f715e6e13bd398b7" // v1-cgroupfs memory/libpod_parent/libpod-<id>
	customV2 = "686125134d468d4054daf7effe01d36ee48d5d9d8958b7ec9f2738988b5ccab2" // v2-systemd my.slice/docker-<id>.scope
	podmanV2 = "1766c2c3e01894733c0b6677fc33ee187a67d6e5dd45d94888ab895dc097ff0e" // v2-systemd machine.slice/libpod-<id>.scope
)

const fixtureProc = "testdata/proc"

func TestParseProcCgroup(t *testing.T) {
	const hybrid = "12:pids:/docker/abc\n11:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/system.slice/containerd.service\n"
	tests := []struct {
		name, data string
		v2         bool
		want       string
		err        error // nil: no error; else errors.Is
	}{
		{"v1 cgroupfs driver on a hybrid host", hybrid, false, "docker/abc", nil},
		{"v1 systemd driver", "4:memory:/system.slice/docker-abc.scope\n", false, "system.slice/docker-abc.scope", nil},
		{"v1 controllers mounted together", "3:cpu,memory,pids:/mygroup/abc\n", false, "mygroup/abc", nil},
		{"v1 memory last, no newline", "2:cpu:/\n1:memory:/libpod_parent/libpod-abc", false, "libpod_parent/libpod-abc", nil},
		{"v1 without a memory hierarchy", "2:cpu:/x\n1:name=systemd:/x\n0::/x\n", false, "", errNoMemoryLine},
		{"v1 zombie: the root", "4:memory:/\n0::/\n", false, "", nil},
		{"v1 named hierarchy that is not memory", "1:name=memory:/x\n", false, "", errNoMemoryLine},
		{"v1 path with a colon", "4:memory:/a:b\n", false, "a:b", nil},
		{"v2", "0::/my.slice/docker-abc.scope\n", true, "my.slice/docker-abc.scope", nil},
		{"v2 on a hybrid host's file ignores v1 lines", hybrid, true, "system.slice/containerd.service", nil},
		{"v2 root", "0::/\n", true, "", nil},
		{"v2 removed cgroup", "0::/my.slice/docker-abc.scope (deleted)\n", true, "", ErrNotExist},
		{"v2 outside the cgroup namespace", "0::/../../system.slice/docker-abc.scope\n", true, "", errOutsideNamespace},
		{"v2 without 0::", "4:memory:/x\n", true, "", errNoMemoryLine},
		{"malformed", "memory /x\n", false, "", ErrInvalidValue},
		{"relative path", "4:memory:x\n", false, "", ErrInvalidValue},
		{"empty", "", true, "", errNoMemoryLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcCgroup([]byte(tt.data), tt.v2)
			if got != tt.want || (tt.err == nil) != (err == nil) || tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("ParseProcCgroup = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestPathOfPID(t *testing.T) {
	tests := []struct {
		tree string
		pid  int
		want string
		err  string // substring; "" no error
		gone bool   // the error matches ErrNotExist
	}{
		{"v1-cgroupfs", 101, "docker/8a62eeb9281e875d42d30e840f72389d18d31fe733fbb29d0717a49760aebb89", "", false},
		{"v1-systemd", 102, "system.slice/docker-016702267cf2c431c3fa6b5b61093b067bce6e506a4a49cf6a0111ce6e7bd3fe.scope", "", false},
		{"v1-cgroupfs", 103, "mygroup/" + customV1, "", false},
		{"v1-cgroupfs", 104, "libpod_parent/libpod-" + podmanV1, "", false},
		{"v1-cgroupfs", 105, "", "has exited", true},
		{"v1-cgroupfs", 106, "system.slice/cron.service", "", false},
		{"v1-cgroupfs", 107, "", "root cgroup", false},
		{"v1-cgroupfs", 999, "", "no such process", true},
		{"v1-cgroupfs", 201, "", "no line for the memory hierarchy", false},
		{"v2-systemd", 201, "system.slice/docker-54adf8a15c86cdeb810865a1e8f5a92ca002d095cd22c4548d9dc6fba5d159ab.scope", "", false},
		{"v2-systemd", 202, "my.slice/docker-" + customV2 + ".scope", "", false},
		{"v2-systemd", 203, "machine.slice/libpod-" + podmanV2 + ".scope", "", false},
		{"v2-systemd", 204, "", "removed", true},
		{"v2-systemd", 205, "", "--cgroupns host", false},
		{"v2-systemd", 206, "machine.slice/libpod-" + podmanV2 + ".scope/init.scope", "", false},
		{"v2-systemd", 0, "", "not a process id", false},
	}
	for _, tt := range tests {
		f := openFixture(t, tt.tree)
		got, err := f.PathOfPID(fixtureProc, tt.pid)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) ||
			errors.Is(err, ErrNotExist) != tt.gone {
			t.Errorf("%s: PathOfPID(%d) = %q, %v; want %q, error %q (not exist: %v)", tt.tree, tt.pid, got, err, tt.want, tt.err, tt.gone)
			continue
		}
		if err == nil && !strings.HasPrefix(got, "system.slice/cron") && !strings.HasSuffix(got, "init.scope") {
			if _, err := f.Memory(got); err != nil {
				t.Errorf("%s: Memory(%q): %v", tt.tree, got, err)
			}
		}
	}
}

func TestContainerPathFor(t *testing.T) {
	tests := []struct {
		tree, id string
		pid      int
		want     string
		gone     bool // an error matching ErrNotExist; false and want "": another error
	}{
		// Docker's layouts need no pid.
		{"v1-cgroupfs", "8a62eeb9281e875d42d30e840f72389d18d31fe733fbb29d0717a49760aebb89", 0, "docker/8a62eeb9281e875d42d30e840f72389d18d31fe733fbb29d0717a49760aebb89", false},
		{"v2-systemd", "54adf8a15c86cdeb810865a1e8f5a92ca002d095cd22c4548d9dc6fba5d159ab", 0, "system.slice/docker-54adf8a15c86cdeb810865a1e8f5a92ca002d095cd22c4548d9dc6fba5d159ab.scope", false},
		// The others need their init's.
		{"v1-cgroupfs", customV1, 0, "", true},
		{"v1-cgroupfs", customV1, 103, "mygroup/" + customV1, false},
		{"v1-cgroupfs", podmanV1, 104, "libpod_parent/libpod-" + podmanV1, false},
		{"v2-systemd", customV2, 202, "my.slice/docker-" + customV2 + ".scope", false},
		{"v2-systemd", podmanV2, 203, "machine.slice/libpod-" + podmanV2 + ".scope", false},
		// An init in a child cgroup of its container's: the container's.
		{"v2-systemd", podmanV2, 206, "machine.slice/libpod-" + podmanV2 + ".scope", false},
		// A reused pid, an exited init, a removed cgroup: not found.
		{"v1-cgroupfs", customV1, 106, "", true},
		{"v1-cgroupfs", customV1, 104, "", true},
		{"v1-cgroupfs", customV1, 105, "", true},
		{"v2-systemd", customV2, 204, "", true},
		// Outside the namespace: an error that is not "gone".
		{"v2-systemd", customV2, 205, "", false},
	}
	for _, tt := range tests {
		f := openFixture(t, tt.tree)
		got, err := f.ContainerPathFor(fixtureProc, tt.id, tt.pid)
		if got != tt.want || (err == nil) != (tt.want != "") || errors.Is(err, ErrNotExist) != tt.gone {
			t.Errorf("%s: ContainerPathFor(%s, %d) = %q, %v; want %q (not exist: %v)", tt.tree, tt.id[:12], tt.pid, got, err, tt.want, tt.gone)
		}
	}
	if _, err := openFixture(t, "v1-cgroupfs").ContainerPathOfPID(fixtureProc, "nope", 103); err == nil {
		t.Error("ContainerPathOfPID accepted a bad id")
	}
}

func openFixture(t *testing.T, tree string) FS {
	t.Helper()
	f, err := NewFS(filepath.Join("testdata", tree))
	if err != nil {
		t.Fatal(err)
	}
	return f
}
