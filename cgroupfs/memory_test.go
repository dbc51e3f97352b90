package cgroupfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// genOne generates a tree with a few containers and returns the FS and the
// first container.
func genOne(t *testing.T, mode Mode) (FS, Container) {
	t.Helper()
	dir := t.TempDir()
	if _, err := GenerateTree(dir, mode, 3); err != nil {
		t.Fatal(err)
	}
	f, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := f.DockerContainers()
	if err != nil || len(cs) == 0 {
		t.Fatalf("DockerContainers: %v, %v", cs, err)
	}
	return f, cs[0]
}

func write(t *testing.T, f FS, c Container, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.MemoryRoot(), c.Path, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, f FS, c Container, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(f.MemoryRoot(), c.Path, name)); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryVanished(t *testing.T) {
	for _, mode := range []Mode{ModeUnified, ModeLegacy} {
		t.Run(mode.String(), func(t *testing.T) {
			f, c := genOne(t, mode)
			if err := os.RemoveAll(filepath.Join(f.MemoryRoot(), c.Path)); err != nil {
				t.Fatal(err)
			}
			_, err := f.Memory(c.Path)
			if !errors.Is(err, ErrNotExist) {
				t.Fatalf("Memory of a removed cgroup: %v, want ErrNotExist", err)
			}
			if errors.Is(err, ErrMissingFile) {
				t.Fatalf("%v matches ErrMissingFile", err)
			}
			if !strings.Contains(err.Error(), c.Path) {
				t.Fatalf("error %q does not name the cgroup", err)
			}
			if _, err := f.ContainerPath(c.ID); !errors.Is(err, ErrNotExist) {
				t.Fatalf("ContainerPath of a removed cgroup: %v, want ErrNotExist", err)
			}
		})
	}
}

func TestMemoryRequiredFileMissing(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		file string
	}{
		{ModeUnified, "memory.current"},
		{ModeUnified, "memory.stat"},
		{ModeUnified, "memory.max"},
		{ModeUnified, "memory.events"},
		{ModeLegacy, "memory.usage_in_bytes"},
		{ModeLegacy, "memory.stat"},
		{ModeLegacy, "memory.limit_in_bytes"},
		{ModeLegacy, "memory.max_usage_in_bytes"},
		{ModeLegacy, "memory.failcnt"},
		{ModeLegacy, "memory.oom_control"},
	} {
		t.Run(tc.mode.String()+"/"+tc.file, func(t *testing.T) {
			f, c := genOne(t, tc.mode)
			remove(t, f, c, tc.file)
			_, err := f.Memory(c.Path)
			if !errors.Is(err, ErrMissingFile) {
				t.Fatalf("got %v, want ErrMissingFile", err)
			}
			// The container is there: the caller must not skip it silently.
			if errors.Is(err, ErrNotExist) {
				t.Fatalf("%v matches ErrNotExist", err)
			}
			if want := c.Path + "/" + tc.file; !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %s", err, want)
			}
		})
	}
}

func TestMemoryOptional(t *testing.T) {
	t.Run("v2 memory.peak missing (kernel < 5.19)", func(t *testing.T) {
		f, c := genOne(t, ModeUnified)
		remove(t, f, c, "memory.peak")
		m, err := f.Memory(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		if m.Peak != nil || m.LimitHits == nil || m.OOMKills == nil {
			t.Fatalf("got %s, want only Peak nil", fmtMemory(m))
		}
	})
	t.Run("v2 memory.events without oom_kill", func(t *testing.T) {
		f, c := genOne(t, ModeUnified)
		write(t, f, c, "memory.events", "low 0\nhigh 0\nmax 3\noom 1\n")
		m, err := f.Memory(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		if m.OOMKills != nil || *m.LimitHits != 3 {
			t.Fatalf("got %s", fmtMemory(m))
		}
	})
	t.Run("v1 oom_control without oom_kill (kernel < 4.13)", func(t *testing.T) {
		f, c := genOne(t, ModeLegacy)
		write(t, f, c, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")
		m, err := f.Memory(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		if m.OOMKills != nil || m.Peak == nil || m.LimitHits == nil {
			t.Fatalf("got %s, want OOMKills nil", fmtMemory(m))
		}
	})
}

func TestMemoryMalformed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    Mode
		file    string
		content string
		want    string // the error message after "cgroupfs: <path>/"
		is      error
	}{
		{"stat bad value", ModeUnified, "memory.stat", "anon 1\nfile 2\ninactive_file x\n",
			`memory.stat line 3: "inactive_file x": invalid value`, ErrInvalidValue},
		{"stat no inactive_file", ModeUnified, "memory.stat", "anon 1\nfile 2\n",
			`memory.stat: "inactive_file": key not found`, ErrMissingKey},
		{"v1 stat no total_inactive_file", ModeLegacy, "memory.stat", "cache 1\ninactive_file 0\n",
			`memory.stat: "total_inactive_file": key not found`, ErrMissingKey},
		{"current empty", ModeUnified, "memory.current", "",
			`memory.current: empty file`, ErrEmpty},
		{"current garbage", ModeUnified, "memory.current", "12 MB\n",
			`memory.current line 1: "12 MB": invalid value`, ErrInvalidValue},
		{"max garbage", ModeUnified, "memory.max", "unlimited\n",
			`memory.max line 1: "unlimited": invalid value`, ErrInvalidValue},
		{"peak garbage", ModeUnified, "memory.peak", "max\n",
			`memory.peak line 1: "max": invalid value`, ErrInvalidValue},
		{"events bad oom_kill", ModeUnified, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill -1\n",
			`memory.events line 5: "oom_kill -1": invalid value`, ErrInvalidValue},
		{"v1 usage negative", ModeLegacy, "memory.usage_in_bytes", "-4096\n",
			`memory.usage_in_bytes line 1: "-4096": invalid value`, ErrInvalidValue},
		{"v1 failcnt empty", ModeLegacy, "memory.failcnt", "\n",
			`memory.failcnt: empty file`, ErrEmpty},
		{"v1 oom_control bad", ModeLegacy, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill many\n",
			`memory.oom_control line 3: "oom_kill many": invalid value`, ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := genOne(t, tc.mode)
			write(t, f, c, tc.file, tc.content)
			m, err := f.Memory(c.Path)
			if err == nil {
				t.Fatalf("no error; got %s", fmtMemory(m))
			}
			if want := "cgroupfs: " + c.Path + "/" + tc.want; err.Error() != want {
				t.Fatalf("error\n%s\nwant\n%s", err, want)
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("%v does not match %v", err, tc.is)
			}
			if errors.Is(err, ErrNotExist) {
				t.Fatalf("%v matches ErrNotExist", err)
			}
		})
	}
}

func TestMemoryWorkingSetFloor(t *testing.T) {
	f, c := genOne(t, ModeUnified)
	write(t, f, c, "memory.current", "4096\n")
	write(t, f, c, "memory.stat", "anon 0\ninactive_file 8192\n")
	m, err := f.Memory(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Usage != 4096 || m.WorkingSet != 0 {
		t.Fatalf("got %s, want working set floored at 0", fmtMemory(m))
	}
}

func TestMemoryLargeFile(t *testing.T) {
	// A memory.stat larger than the pooled buffer still parses.
	f, c := genOne(t, ModeUnified)
	var b strings.Builder
	for b.Len() < 3*bufSize {
		b.WriteString("padding_counter_with_a_long_name 123456789\n")
	}
	b.WriteString("inactive_file 4096\n")
	write(t, f, c, "memory.current", "8192\n")
	write(t, f, c, "memory.stat", b.String())
	m, err := f.Memory(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	if m.WorkingSet != 4096 {
		t.Fatalf("got %s", fmtMemory(m))
	}
}

func TestMemoryBadPath(t *testing.T) {
	f := fixtureFS(t, "v2-systemd")
	for _, p := range []string{"", "/etc", "../v1-cgroupfs", "docker/../../x", "a\x00b"} {
		if _, err := f.Memory(p); err == nil || errors.Is(err, ErrNotExist) {
			t.Errorf("Memory(%q) = %v, want an invalid-path error", p, err)
		}
	}
	// Not a directory.
	if _, err := f.Memory("cgroup.controllers"); err == nil || errors.Is(err, ErrNotExist) {
		t.Errorf("Memory(a file) = %v, want a not-a-directory error", err)
	}
}

func TestMemoryPermissionDenied(t *testing.T) {
	// Root bypasses file permissions (CAP_DAC_OVERRIDE), so this case can
	// only be exercised as an ordinary user; the project's machines run the
	// tests as root, where it is skipped.
	if os.Geteuid() == 0 {
		t.Skip("running as root: permission bits are not enforced")
	}
	f, c := genOne(t, ModeUnified)
	if err := os.Chmod(filepath.Join(f.MemoryRoot(), c.Path, "memory.stat"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := f.Memory(c.Path)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "permission denied") ||
		!strings.Contains(err.Error(), c.Path+"/memory.stat") {
		t.Fatalf("got %v, want a permission error naming memory.stat", err)
	}
	if errors.Is(err, ErrNotExist) {
		t.Fatalf("%v matches ErrNotExist", err)
	}
}

func TestMemoryAllocs(t *testing.T) {
	for _, mode := range []Mode{ModeUnified, ModeLegacy} {
		f, c := genOne(t, mode)
		n := testing.AllocsPerRun(50, func() {
			if _, err := f.Memory(c.Path); err != nil {
				t.Fatal(err)
			}
		})
		if n > 1 {
			t.Errorf("%v: Memory allocates %v times per call, want at most 1", mode, n)
		}
	}
}

// An unlimited v1 container under a parent with a limit of its own
// (--cgroup-parent) is limited by the parent: memory.stat's
// hierarchical_memory_limit says by how much.
func TestMemoryInheritedLimitV1(t *testing.T) {
	f, c := genOne(t, ModeLegacy)
	write(t, f, c, "memory.limit_in_bytes", "9223372036854771712\n")
	for _, tc := range []struct {
		hierarchical string
		want         Limit
	}{
		{"33554432", Limit{Bytes: 33554432, Inherited: true}},
		{"9223372036854771712", Limit{Unlimited: true}},
	} {
		write(t, f, c, "memory.stat", "total_inactive_file 0\nhierarchical_memory_limit "+tc.hierarchical+"\n")
		m, err := f.Memory(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		if m.Limit != tc.want {
			t.Errorf("hierarchical %s: limit %+v, want %+v", tc.hierarchical, m.Limit, tc.want)
		}
	}
}

// OOMKills reads the same counter as Memory from its one file, on every
// fixture tree taken from real hosts; a gone cgroup, a v1 kernel without
// the counter and a malformed line give what Memory gives.
func TestOOMKills(t *testing.T) {
	for _, tree := range []string{"v1-cgroupfs", "v1-systemd", "v2-cgroupfs", "v2-systemd"} {
		f, err := NewFS(filepath.Join("testdata", tree))
		if err != nil {
			t.Fatal(err)
		}
		cs, err := f.DockerContainers()
		if err != nil || len(cs) == 0 {
			t.Fatalf("%s: DockerContainers: %v, %v", tree, cs, err)
		}
		for _, c := range cs {
			m, err := f.Memory(c.Path)
			if err != nil {
				t.Fatalf("%s %s: Memory: %v", tree, c.ID, err)
			}
			kills, found, err := f.OOMKills(c.Path)
			if err != nil || found != (m.OOMKills != nil) || found && kills != *m.OOMKills {
				t.Errorf("%s %s: OOMKills %d, %v, %v; Memory says %v", tree, c.ID, kills, found, err, m.OOMKills)
			}
		}
	}
	for _, mode := range []Mode{ModeLegacy, ModeUnified} {
		f, c := genOne(t, mode)
		file := "memory.oom_control"
		if mode == ModeUnified {
			file = "memory.events"
		}
		write(t, f, c, file, "oom_kill x\n")
		if _, _, err := f.OOMKills(c.Path); err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: malformed %s: error %v, want one naming the file", mode, file, err)
		}
		if mode == ModeLegacy {
			write(t, f, c, file, "oom_kill_disable 0\nunder_oom 0\n")
			if _, found, err := f.OOMKills(c.Path); err != nil || found {
				t.Errorf("v1 before 4.13: found %v, err %v; want neither", found, err)
			}
		}
		if err := os.RemoveAll(filepath.Join(f.MemoryRoot(), c.Path)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.OOMKills(c.Path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: gone cgroup: error %v, want ErrNotExist", mode, err)
		}
	}
}
