package collector

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/source/kmsg"
)

// kmsgDiskPromCollector runs one Collector's Update as a
// prometheus.Collector, for testutil.
type kmsgDiskPromCollector struct{ c Collector }

func (p kmsgDiskPromCollector) Describe(chan<- *prometheus.Desc) {}

func (p kmsgDiskPromCollector) Collect(ch chan<- prometheus.Metric) {
	if err := p.c.Update(ch); err != nil {
		panic(err)
	}
}

func TestKmsgCollector(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	health := source.NewRegistry().Source("kmsg")
	src := kmsg.New(kmsg.Options{Path: path}, nil, health, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	c, err := newKmsgCollector(Deps{Kmsg: src})
	if err != nil {
		t.Fatal(err)
	}
	const header = `
# HELP exit137_kernel_oom_kills_total Kernel OOM kills read from the kernel log by this exporter process (one per killed process, including kills logged while it was down that it replays at start), by the kernel's constraint (memcg: a cgroup's limit; none: the host ran out, or a cpuset or mempolicy when the kernel's rate-limited summary line is missing).
# TYPE exit137_kernel_oom_kills_total counter
`
	// Every constraint starts at 0.
	if err := testutil.CollectAndCompare(kmsgDiskPromCollector{c}, strings.NewReader(header+`
exit137_kernel_oom_kills_total{constraint="cpuset"} 0
exit137_kernel_oom_kills_total{constraint="memcg"} 0
exit137_kernel_oom_kills_total{constraint="memory_policy"} 0
exit137_kernel_oom_kills_total{constraint="none"} 0
exit137_kernel_oom_kills_total{constraint="other"} 0
`)); err != nil {
		t.Error(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for !health.Up() {
		if time.Now().After(deadline) {
			t.Fatal("kmsg source not up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Real lines from the test host, and a host-wide kill.
	_, err = f.WriteString("6,421,324670839,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/e137test4910,task_memcg=/e137test4910,task=python3,pid=6009,uid=0\n" +
		"3,422,324670874,-;Memory cgroup out of memory: Killed process 6009 (python3) total-vm:221368kB, anon-rss:16128kB, file-rss:3036kB, shmem-rss:0kB, UID:0 pgtables:88kB oom_score_adj:0\n" +
		"6,502,382389411,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/exit137-capture-6965/a1,task_memcg=/exit137-capture-6965/a1,task=perl,pid=6972,uid=0\n" +
		"6,600,400000000,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=java,pid=1,uid=0\n" +
		"6,601,400000001,-;oom-kill:constraint=CONSTRAINT_FUTURE,task=x,pid=2\n" +
		// A storm: the summaries rate-limited away, a Killed line for
		// every kill.
		"4,700,500000000,-;oom_kill_process: 12 callbacks suppressed\n" +
		"3,701,500000010,-;Memory cgroup out of memory: Killed process 7001 (alloc) total-vm:210000kB, anon-rss:24000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:500kB oom_score_adj:0\n" +
		"3,702,500000020,-;Memory cgroup out of memory: Killed process 7002 (alloc) total-vm:210000kB, anon-rss:24000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:500kB oom_score_adj:0\n" +
		"3,703,500000030,-;Out of memory: Killed process 7003 (java) total-vm:9210000kB, anon-rss:9024000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:18500kB oom_score_adj:0\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for src.OOMKills()["none"] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("OOMKills() = %v", src.OOMKills())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := testutil.CollectAndCompare(kmsgDiskPromCollector{c}, strings.NewReader(header+`
exit137_kernel_oom_kills_total{constraint="cpuset"} 0
exit137_kernel_oom_kills_total{constraint="memcg"} 4
exit137_kernel_oom_kills_total{constraint="memory_policy"} 0
exit137_kernel_oom_kills_total{constraint="none"} 2
exit137_kernel_oom_kills_total{constraint="other"} 1
`)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(kmsgDiskPromCollector{c}); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestKmsgCollectorOff(t *testing.T) {
	c, err := newKmsgCollector(Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan prometheus.Metric, 10)
	if err := c.Update(ch); !errors.Is(err, ErrNoData) || len(ch) != 0 {
		t.Errorf("Update = %v with %d metrics, want ErrNoData and none", err, len(ch))
	}
}
