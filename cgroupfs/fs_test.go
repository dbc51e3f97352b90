package cgroupfs

import (
	"errors"
	"fmt"
	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3"
)

func u64(v uint64) *uint64 { return &v }

type fixtureContainer struct {
	c   Container
	mem Memory
}

type fixtureTree struct {
	dir        string
	mode       Mode
	memRoot    string             // relative to dir
	containers []fixtureContainer // sorted by id
}

// fixtures is the table in testdata/README.md; keep the two in sync.
var fixtures = []fixtureTree{
	{
		dir: "v1-cgroupfs", mode: ModeLegacy, memRoot: "memory",
		containers: []fixtureContainer{
			{
				Container{"8a62eeb9281e875d42d30e840f72389d18d31fe733fbb29d0717a49760aebb89",
					"docker/8a62eeb9281e875d42d30e840f72389d18d31fe733fbb29d0717a49760aebb89"},
				Memory{Usage: 127533056, WorkingSet: 102334464, Limit: Limit{Unlimited: true},
					Peak: u64(127533056), LimitHits: u64(0), OOMKills: u64(0)},
			},
			{
				Container{"b8dc0741e7bb8d21a7448602255e9453a62a86970e1d5e648c6049791c9507d8",
					"docker/b8dc0741e7bb8d21a7448602255e9453a62a86970e1d5e648c6049791c9507d8"},
				Memory{Usage: 30322688, WorkingSet: 21934080, Limit: Limit{Bytes: 67108864},
					Peak: u64(67108864), LimitHits: u64(125), OOMKills: u64(1)},
			},
		},
	},
	{
		dir: "v1-systemd", mode: ModeHybrid, memRoot: "memory",
		containers: []fixtureContainer{
			{
				Container{"016702267cf2c431c3fa6b5b61093b067bce6e506a4a49cf6a0111ce6e7bd3fe",
					"system.slice/docker-016702267cf2c431c3fa6b5b61093b067bce6e506a4a49cf6a0111ce6e7bd3fe.scope"},
				Memory{Usage: 298455040, WorkingSet: 239734784, Limit: Limit{Unlimited: true},
					Peak: u64(298455040), LimitHits: u64(0), OOMKills: u64(0)},
			},
			{
				Container{"6bff81700e856ef6c72ae2ee33a139ba27c2e50c55b434a37eafd282f5e65be6",
					"system.slice/docker-6bff81700e856ef6c72ae2ee33a139ba27c2e50c55b434a37eafd282f5e65be6.scope"},
				Memory{Usage: 48111616, WorkingSet: 40771584, Limit: Limit{Bytes: 536870912},
					Peak: u64(48111616), LimitHits: u64(0), OOMKills: u64(0)},
			},
			{
				Container{"d392b80b78b580f7c43e98b7caee00befbd1a7c9f2df6d6cfd17563a6d749acb",
					"system.slice/docker-d392b80b78b580f7c43e98b7caee00befbd1a7c9f2df6d6cfd17563a6d749acb.scope"},
				Memory{Usage: 42889216, WorkingSet: 30306304, Limit: Limit{Bytes: 67108864},
					Peak: u64(67108864), LimitHits: u64(101), OOMKills: u64(1)},
			},
		},
	},
	{
		dir: "v2-systemd", mode: ModeUnified, memRoot: ".",
		containers: []fixtureContainer{
			{
				Container{"54adf8a15c86cdeb810865a1e8f5a92ca002d095cd22c4548d9dc6fba5d159ab",
					"system.slice/docker-54adf8a15c86cdeb810865a1e8f5a92ca002d095cd22c4548d9dc6fba5d159ab.scope"},
				Memory{Usage: 61767680, WorkingSet: 53379072, Limit: Limit{Bytes: 67108864},
					Peak: u64(67108864), LimitHits: u64(1873), OOMKills: u64(1)},
			},
			{
				Container{"c4c7ab6d0d7bcdf76ef6ff9cc90ee874d2a67858a03b4c80a0406f01bde17656",
					"system.slice/docker-c4c7ab6d0d7bcdf76ef6ff9cc90ee874d2a67858a03b4c80a0406f01bde17656.scope"},
				Memory{Usage: 253657088, WorkingSet: 190742528, Limit: Limit{Unlimited: true},
					Peak: u64(271581184), LimitHits: u64(0), OOMKills: u64(0)},
			},
			{
				Container{"d28cf2b1cf5dbd13b6a64c69c0c2b6d26bfe93671cea9deea157236e679286f7",
					"system.slice/docker-d28cf2b1cf5dbd13b6a64c69c0c2b6d26bfe93671cea9deea157236e679286f7.scope"},
				Memory{Usage: 17727488, WorkingSet: 14581760, Limit: Limit{Bytes: 268435456},
					Peak: u64(21495808), LimitHits: u64(0), OOMKills: u64(0)},
			},
		},
	},
	{
		dir: "v2-cgroupfs", mode: ModeUnified, memRoot: ".",
		containers: []fixtureContainer{
			{
				Container{"29128b9edf263bbb24cb0e320c02b35be7c8d458676fce0873cc93c81a664bf9",
					"docker/29128b9edf263bbb24cb0e320c02b35be7c8d458676fce0873cc93c81a664bf9"},
				Memory{Usage: 58613760, WorkingSet: 49176576, Limit: Limit{Bytes: 67108864},
					Peak: nil, LimitHits: u64(412), OOMKills: u64(1)},
			},
			{
				Container{"cc6e9926fbe4a77478e1028536a167de54738c8a038392174e700eb235ba4182",
					"docker/cc6e9926fbe4a77478e1028536a167de54738c8a038392174e700eb235ba4182"},
				Memory{Usage: 103702528, WorkingSet: 82731008, Limit: Limit{Unlimited: true},
					Peak: nil, LimitHits: u64(0), OOMKills: u64(0)},
			},
		},
	},
}

func fixtureFS(t testing.TB, dir string) FS {
	t.Helper()
	f, err := NewFS(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{ModeUnified: "v2", ModeHybrid: "hybrid", ModeLegacy: "v1", 0: "unknown"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

func TestFixtures(t *testing.T) {
	for _, tree := range fixtures {
		t.Run(tree.dir, func(t *testing.T) {
			f := fixtureFS(t, tree.dir)
			if f.Mode() != tree.mode {
				t.Errorf("Mode() = %v, want %v", f.Mode(), tree.mode)
			}
			wantRoot, _ := filepath.Abs(filepath.Join("testdata", tree.dir, tree.memRoot))
			if f.MemoryRoot() != wantRoot {
				t.Errorf("MemoryRoot() = %q, want %q", f.MemoryRoot(), wantRoot)
			}

			got, err := f.DockerContainers()
			if err != nil {
				t.Fatal(err)
			}
			var want []Container
			for _, c := range tree.containers {
				want = append(want, c.c)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("DockerContainers() =\n%+v\nwant\n%+v", got, want)
			}

			for _, c := range tree.containers {
				p, err := f.ContainerPath(c.c.ID)
				if err != nil || p != c.c.Path {
					t.Errorf("ContainerPath(%s) = %q, %v; want %q", c.c.ID, p, err, c.c.Path)
				}
				m, err := f.Memory(c.c.Path)
				if err != nil {
					t.Fatalf("Memory(%s): %v", c.c.Path, err)
				}
				if !reflect.DeepEqual(m, c.mem) {
					t.Errorf("Memory(%s) =\n%s\nwant\n%s", c.c.Path, fmtMemory(m), fmtMemory(c.mem))
				}
			}

			// A container that is not there (exited and removed).
			const gone = "0000000000000000000000000000000000000000000000000000000000000000"
			if _, err := f.ContainerPath(gone); !errors.Is(err, ErrNotExist) {
				t.Errorf("ContainerPath(gone) error %v does not match ErrNotExist", err)
			}
			for _, p := range []string{"docker/" + gone, "system.slice/docker-" + gone + ".scope"} {
				if _, err := f.Memory(p); !errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Memory(%s) error %v does not match ErrNotExist", p, err)
				}
			}
		})
	}
}

func fmtMemory(m Memory) string {
	p := func(v *uint64) string {
		if v == nil {
			return "nil"
		}
		return strconv.FormatUint(*v, 10)
	}
	return fmt.Sprintf("{Usage:%d WorkingSet:%d Limit:%+v Peak:%s LimitHits:%s OOMKills:%s}",
		m.Usage, m.WorkingSet, m.Limit, p(m.Peak), p(m.LimitHits), p(m.OOMKills))
}

func TestNewFSErrors(t *testing.T) {
	t.Run("missing root", func(t *testing.T) {
		_, err := NewFS(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error %v does not match ErrNotExist", err)
		}
	})
	t.Run("no memory hierarchy", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "cpu"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := NewFS(dir)
		if err == nil || !strings.Contains(err.Error(), "no memory cgroup hierarchy") {
			t.Fatalf("got %v, want a no-memory-hierarchy error", err)
		}
	})
	t.Run("v2 without memory controller", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("cpu io pids\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := NewFS(dir)
		if err == nil || !strings.Contains(err.Error(), "no memory controller") {
			t.Fatalf("got %v, want a no-memory-controller error", err)
		}
	})
	t.Run("root is a file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := NewFS(p); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("zero FS", func(t *testing.T) {
		var f FS
		if _, err := f.Memory("docker/x"); err == nil {
			t.Error("Memory on zero FS: no error")
		}
		if _, err := f.DockerContainers(); err == nil {
			t.Error("DockerContainers on zero FS: no error")
		}
	})
}

// TestNewFSHost checks the DefaultMountPoint path, which asks
// containerd/cgroups for the mode (filesystem magic), against the mode
// the layout of this machine's tree gives.
func TestNewFSHost(t *testing.T) {
	if cgroups.Mode() == cgroups.Unavailable {
		testrig.Need(t, "no cgroup filesystem on this machine")
	}
	want, err := detectMode(DefaultMountPoint)
	if err != nil {
		testrig.Need(t, "host cgroup layout: %v", err)
	}
	f, err := NewFS(DefaultMountPoint)
	if err != nil {
		testrig.Need(t, "host cgroupfs without memory controller: %v", err)
	}
	if f.Mode() != want {
		t.Fatalf("Mode() = %v, want %v", f.Mode(), want)
	}
	if _, err := f.DockerContainers(); err != nil {
		t.Fatal(err)
	}
	if f.Mode() == ModeUnified {
		return // the v2 root cgroup has no memory.current
	}
	// The v1 root memory cgroup has every file Memory reads: a real
	// kernfs read.
	m, err := f.Memory(".")
	if err != nil {
		t.Fatal(err)
	}
	if m.Usage == 0 || m.WorkingSet > m.Usage || m.Peak == nil {
		t.Fatalf("implausible root memory: %s", fmtMemory(m))
	}
}

func TestDockerContainersIgnores(t *testing.T) {
	dir := t.TempDir()
	id := strings.Repeat("ab", 32)
	for _, d := range []string{
		"docker/" + id,
		"docker/" + strings.ToUpper(id),     // not lower-case hex
		"docker/" + id[:63],                 // too short
		"docker/" + id + "0",                // too long
		"docker/" + strings.Repeat("g", 64), // not hex
		"docker/buildkit",                   // BuildKit's parent
		"system.slice/docker-" + id[:12] + ".scope",
		"system.slice/docker.service",
		"system.slice/docker-" + id + ".mount", // not a scope
		"system.slice/containerd.service",
	} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A file with a container id name is not a cgroup.
	other := strings.Repeat("cd", 32)
	if err := os.WriteFile(filepath.Join(dir, "docker", other), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.DockerContainers()
	if err != nil {
		t.Fatal(err)
	}
	want := []Container{{ID: id, Path: "docker/" + id}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := f.ContainerPath(other); !errors.Is(err, ErrNotExist) {
		t.Fatalf("ContainerPath of a file: %v, want ErrNotExist", err)
	}
	if _, err := f.ContainerPath("abc"); err == nil || errors.Is(err, ErrNotExist) {
		t.Fatalf("ContainerPath(short id) = %v, want an invalid-id error", err)
	}
}

func TestDockerContainersNoParents(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "memory"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Mode() != ModeLegacy {
		t.Fatalf("mode %v", f.Mode())
	}
	got, err := f.DockerContainers()
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v; want none, nil", got, err)
	}
}

func TestGenerateTree(t *testing.T) {
	for _, mode := range []Mode{ModeUnified, ModeHybrid, ModeLegacy} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			ids, err := GenerateTree(dir, mode, 20)
			if err != nil {
				t.Fatal(err)
			}
			f, err := NewFS(dir)
			if err != nil {
				t.Fatal(err)
			}
			if f.Mode() != mode {
				t.Fatalf("mode %v, want %v", f.Mode(), mode)
			}
			cs, err := f.DockerContainers()
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != len(ids) {
				t.Fatalf("%d containers, want %d", len(cs), len(ids))
			}
			var limited, hits, kills int
			for i, c := range cs {
				if c.ID != ids[i] {
					t.Fatalf("container %d id %s, want %s", i, c.ID, ids[i])
				}
				m, err := f.Memory(c.Path)
				if err != nil {
					t.Fatal(err)
				}
				if m.Usage == 0 || m.WorkingSet == 0 || m.WorkingSet >= m.Usage || m.Peak == nil || *m.Peak < m.Usage || m.OOMKills == nil {
					t.Fatalf("implausible %s: %s", c.ID, fmtMemory(m))
				}
				if !m.Limit.Unlimited {
					limited++
				}
				if *m.LimitHits > 0 {
					hits++
				}
				kills += int(*m.OOMKills)
			}
			if limited == 0 || limited == len(cs) || hits == 0 || kills == 0 {
				t.Fatalf("no variety: %d limited, %d with hits, %d kills", limited, hits, kills)
			}
		})
	}
}
