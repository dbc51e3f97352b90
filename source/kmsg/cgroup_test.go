package kmsg

import (
	"strings"
	"testing"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
)

func TestContainerOfPID(t *testing.T) {
	tests := []struct {
		pid  int
		want string
		what string
	}{
		{101, dockerID, "v1 hybrid, cgroupfs driver"},
		{102, dockerID, "v1, systemd driver"},
		{103, dockerID, "v2, systemd driver"},
		{104, dockerID, "v2, Podman with a sub-cgroup"},
		{105, dockerID, "v1, Podman cgroupfs (libpod_parent)"},
		{106, dockerID, "v2, custom cgroup parent"},
		{107, "", "a login session"},
		{108, dockerID, "v2, seen from a private cgroup namespace"},
		{109, dockerID, "the memory hierarchy wins"},
		{110, "", "no such pid"},
		{0, "", "pid 0"},
		{-1, "", "negative pid"},
	}
	for _, tt := range tests {
		got, ok := ContainerOfPID("testdata/proc", tt.pid)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: ContainerOfPID(%d) = %q, %v; want %q", tt.what, tt.pid, got, ok, tt.want)
		}
	}
	// The default root is /proc: this process is in no container's cgroup
	// here, or in one; either way it must not fail.
	ContainerOfPID("", 1)
}

func TestContainerIDFromProcCgroup(t *testing.T) {
	for in, want := range map[string]string{
		"":                                       "",
		"garbage":                                "",
		"0::":                                    "",
		"1:name=systemd:/docker/" + dockerID:     dockerID,
		"0::/docker/" + dockerID + "\n":          dockerID,
		"5:cpu:/x\n4:memory:/docker/" + dockerID: dockerID,
		"4:memory,other:/docker/" + dockerID:     dockerID,
		"4:memoryx:/docker/" + dockerID:          dockerID, // any hierarchy
		"4:memory:/docker/" + strings.ToUpper(dockerID): "",
	} {
		got, ok := ContainerIDFromProcCgroup([]byte(in))
		if got != want || ok != (want != "") {
			t.Errorf("ContainerIDFromProcCgroup(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func FuzzContainerIDFromProcCgroup(f *testing.F) {
	for _, s := range []string{"0::/docker/" + dockerID, "11:memory:/system.slice/docker-" + dockerID + ".scope\n0::/", "::", ":::\n:"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if id, ok := ContainerIDFromProcCgroup(data); ok != (id != "") || (ok && !cgroupfs.IsContainerID(id)) {
			t.Errorf("ContainerIDFromProcCgroup(%q) = %q, %v", data, id, ok)
		}
	})
}
