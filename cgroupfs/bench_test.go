package cgroupfs

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The budget: a full scrape must cost at most 1.3x the raw read of the
// same files. BenchmarkMemory reports that ratio as the "x-raw" metric;
// BenchmarkRawRead is the floor on its own.
//
//	go test -bench . -benchtime 200x ./cgroupfs

var benchModes = []Mode{ModeLegacy, ModeUnified}

var benchSizes = []int{100, 1000}

// filesRead lists the files FS.Memory reads in each mode.
func filesRead(mode Mode) []*fileName {
	if mode == ModeUnified {
		return []*fileName{filePeak, fileCurrent, fileStat, fileMax, fileEvents}
	}
	return []*fileName{fileUsageInBytes, fileStat, fileLimitInBytes, fileMaxUsageInBytes, fileFailcnt, fileOOMControl}
}

func benchTree(b *testing.B, mode Mode, n int) (FS, []Container, []string) {
	b.Helper()
	dir := b.TempDir()
	if _, err := GenerateTree(dir, mode, n); err != nil {
		b.Fatal(err)
	}
	f, err := NewFS(dir)
	if err != nil {
		b.Fatal(err)
	}
	cs, err := f.DockerContainers()
	if err != nil || len(cs) != n {
		b.Fatalf("DockerContainers: %d, %v", len(cs), err)
	}
	var raw []string
	for _, c := range cs {
		for _, fn := range filesRead(mode) {
			raw = append(raw, filepath.Join(f.MemoryRoot(), c.Path, fn.name))
		}
	}
	return f, cs, raw
}

func readAllRaw(b *testing.B, raw []string) {
	for _, p := range raw {
		if _, err := os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	}
}

func scrapeMemory(b *testing.B, f FS, cs []Container) {
	for _, c := range cs {
		if _, err := f.Memory(c.Path); err != nil {
			b.Fatal(err)
		}
	}
}

// benchEachTree runs loop, a b.Loop benchmark, on a generated tree of
// each mode and size, page cache warm, and reports ns/container.
func benchEachTree(b *testing.B, loop func(b *testing.B, f FS, cs []Container, raw []string)) {
	for _, mode := range benchModes {
		for _, n := range benchSizes {
			b.Run(mode.String()+"/"+strconv.Itoa(n), func(b *testing.B) {
				f, cs, raw := benchTree(b, mode, n)
				readAllRaw(b, raw)
				b.ReportAllocs()
				loop(b, f, cs, raw)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/container")
			})
		}
	}
}

// BenchmarkMemory: one op is FS.Memory for every container of the tree.
func BenchmarkMemory(b *testing.B) {
	benchEachTree(b, func(b *testing.B, f FS, cs []Container, raw []string) {
		for b.Loop() {
			scrapeMemory(b, f, cs)
		}
		// The same number of raw passes, untimed (b.Loop has stopped the
		// timer), for the ratio.
		start := time.Now()
		for range b.N {
			readAllRaw(b, raw)
		}
		b.ReportMetric(float64(b.Elapsed())/float64(time.Since(start)), "x-raw")
	})
}

// BenchmarkRawRead is the floor: os.ReadFile of the same files Memory
// reads (v1: 6 per container, v2: 5), paths precomputed, no parsing.
func BenchmarkRawRead(b *testing.B) {
	benchEachTree(b, func(b *testing.B, _ FS, _ []Container, raw []string) {
		for b.Loop() {
			readAllRaw(b, raw)
		}
	})
}

// BenchmarkScrape is what a collector does per scrape: list the
// containers, then read each one's memory.
func BenchmarkScrape(b *testing.B) {
	benchEachTree(b, func(b *testing.B, f FS, _ []Container, _ []string) {
		for b.Loop() {
			cs, err := f.DockerContainers()
			if err != nil {
				b.Fatal(err)
			}
			scrapeMemory(b, f, cs)
		}
	})
}

func BenchmarkParseKeyedValue(b *testing.B) {
	data, err := os.ReadFile("testdata/v1-cgroupfs/memory/docker/b8dc0741e7bb8d21a7448602255e9453a62a86970e1d5e648c6049791c9507d8/memory.stat")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, ok, err := ParseKeyedValue(data, "total_inactive_file"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
