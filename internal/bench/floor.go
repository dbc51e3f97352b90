// Package bench measures the exporter against its floor, the raw read of
// the cgroup files a scrape must read, and against what else a user could
// run. It holds what the benchmarks share: the floor, a generated host
// (cgroup tree, seeded tracker, the /metrics handler), timing statistics,
// /proc readings and a fake Docker daemon. The benchmarks themselves are
// in _test files here and in collector and tracker; docs/performance.md
// has the figures and scripts/bench runs the real-Docker ones.
package bench

import (
	"os"
	"path/filepath"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
)

// floorFiles are the files cgroupfs.FS.Memory reads for one container.
var floorFiles = map[bool][]string{
	false: {"memory.usage_in_bytes", "memory.stat", "memory.limit_in_bytes",
		"memory.max_usage_in_bytes", "memory.failcnt", "memory.oom_control"},
	true: {"memory.peak", "memory.current", "memory.stat", "memory.max", "memory.events"},
}

// FloorPaths lists, for every container, the absolute paths of the files
// a scrape reads (v1: 6 per container, v2: 5).
func FloorPaths(fs cgroupfs.FS, cs []cgroupfs.Container) []string {
	names := floorFiles[fs.Mode().V2()]
	paths := make([]string, 0, len(cs)*len(names))
	for _, c := range cs {
		for _, name := range names {
			paths = append(paths, filepath.Join(fs.MemoryRoot(), c.Path, name))
		}
	}
	return paths
}

// ReadFloor reads every file once with os.ReadFile: the floor a scrape is
// held against (paths precomputed, no parsing, no output). A file that is
// gone (memory.peak before kernel 5.19, a container that just exited) is
// skipped, as the exporter skips it.
func ReadFloor(paths []string) error {
	for _, p := range paths {
		if _, err := os.ReadFile(p); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}
