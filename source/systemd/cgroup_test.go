package systemd

import "testing"

func TestInCgroup(t *testing.T) {
	proc := t.TempDir()
	writeCgroup(t, proc, 10, "9:name=systemd:/system.slice/app.service/abc\n0::/system.slice/app.service/abc\n")
	writeCgroup(t, proc, 11, "4:memory:/system.slice/app.service2/abc\n")
	writeCgroup(t, proc, 12, "0::/app.slice/docker-abc.scope\n")
	cases := []struct {
		pid  int
		path string
		want bool
	}{
		{10, "/system.slice/app.service", true},
		{10, "/system.slice/app.service/", true},
		{10, "/system.slice", true},
		{11, "/system.slice/app.service", false}, // a sibling with a longer name
		{12, "/app.slice", true},                 // --cgroup-parent=app.slice (systemd driver)
		{10, "/", false},                         // every process is under the root
		{10, "", false},
		{99, "/system.slice/app.service", false}, // gone
		{0, "/system.slice/app.service", false},
	}
	for _, tc := range cases {
		if got := InCgroup(proc, tc.pid, tc.path); got != tc.want {
			t.Errorf("InCgroup(%d, %q) = %v, want %v", tc.pid, tc.path, got, tc.want)
		}
	}
}
