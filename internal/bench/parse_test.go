package bench_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/internal/bench"
	"github.com/exit137-exporter/exit137-exporter/source/kmsg"
)

// BenchmarkParse is every parser on the hot paths, on input as the kernel
// writes it: the cgroup files of a generated container (kernel 6.x
// memory.stat) and /dev/kmsg OOM records. A scrape runs the cgroup
// parsers 5–6 times per container; the kmsg ones run once per kernel log
// record, never on a scrape.
//
//	go test -run '^$' -bench Parse ./internal/bench
func BenchmarkParse(b *testing.B) {
	files := map[string][]byte{}
	for _, mode := range []cgroupfs.Mode{cgroupfs.ModeLegacy, cgroupfs.ModeUnified} {
		tree, err := bench.NewTree(b.TempDir(), mode, 2)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range tree.Floor[len(tree.Floor)/2:] { // the second container: limited
			data, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			files[mode.String()+"/"+filepath.Base(p)] = data
		}
	}
	keyed := func(file, key string) func(b *testing.B) {
		return func(b *testing.B) {
			data := files[file]
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, err := cgroupfs.ParseKeyedValue(data, key); !ok || err != nil {
					b.Fatal(file, key, ok, err)
				}
			}
		}
	}
	b.Run("ParseUint", func(b *testing.B) {
		data := files["v1/memory.usage_in_bytes"]
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cgroupfs.ParseUint(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseLimit", func(b *testing.B) {
		data := files["v2/memory.max"]
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cgroupfs.ParseLimit(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseKeyedValue/v1-memory.stat", keyed("v1/memory.stat", "total_inactive_file"))
	b.Run("ParseKeyedValue/v1-memory.oom_control", keyed("v1/memory.oom_control", "oom_kill"))
	b.Run("ParseKeyedValue/v2-memory.stat", keyed("v2/memory.stat", "inactive_file"))
	b.Run("ParseKeyedValue/v2-memory.events", keyed("v2/memory.events", "oom_kill"))

	oomKill := []byte("6,1474,548363451,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0," +
		"oom_memcg=/docker/e13783efdfe74d1f7334c9daaccf63093d9bf9b0d5b336e6cb5dd8cfea5f05a8," +
		"task_memcg=/docker/e13783efdfe74d1f7334c9daaccf63093d9bf9b0d5b336e6cb5dd8cfea5f05a8,task=helper,pid=12685,uid=0\n")
	killed := []byte("3,1475,548363470,-;Memory cgroup out of memory: Killed process 12685 (helper) total-vm:221368kB, " +
		"anon-rss:16128kB, file-rss:6500kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0\n")
	b.Run("kmsg.ParseRecord", func(b *testing.B) {
		b.SetBytes(int64(len(oomKill)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := kmsg.ParseRecord(oomKill); err != nil {
				b.Fatal(err)
			}
		}
	})
	for name, rec := range map[string][]byte{"kmsg.ParseOOMKill": oomKill, "kmsg.ParseKilledProcess": killed} {
		r, err := kmsg.ParseRecord(rec)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(r.Message)))
			b.ReportAllocs()
			for b.Loop() {
				var ok bool
				if name == "kmsg.ParseOOMKill" {
					_, ok = kmsg.ParseOOMKill(r.Message)
				} else {
					_, ok = kmsg.ParseKilledProcess(r.Message)
				}
				if !ok {
					b.Fatal("not parsed")
				}
			}
		})
	}
}
