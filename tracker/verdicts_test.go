package tracker

import (
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// ringVerdict is the i-th of a run of distinct verdicts: a docker kill
// traced by sigtrace, every string its own.
func ringVerdict(i int) attribution.Verdict {
	cid := fmt.Sprintf("%064x", i)
	exit := attribution.Exit{ContainerID: cid, Name: fmt.Sprintf("job-%d", i), Image: "busybox", ExitCode: 137, Time: t0}
	return attribution.Decide(exit, []attribution.Evidence{
		{Container: cid, Time: t0.Add(-time.Second), Source: "docker", Kind: attribution.KindDockerKill, Signal: 9,
			Detail: fmt.Sprintf("docker event: kill, signal 9 (%d)", i)},
		{Pid: 40 + i, Time: t0, Source: "sigtrace", Kind: attribution.KindSignal, Signal: 9, Sender: "user",
			Comm: fmt.Sprintf("kill-%d", i), Detail: "SIGKILL from pid 7"},
	}, 30*time.Second)
}

// The ring keeps copies of each verdict's strings and evidence in shared
// blocks: what it hands back is what was added, through many blocks and
// many turns of the ring, and an add allocates a block now and then, not
// a string and a slice each time.
func TestVerdictRingCopiesIntoBlocks(t *testing.T) {
	s := verdictStore{max: 100}
	const n = 1000 // ten turns of the ring, through dozens of blocks
	for i := range n {
		v := ringVerdict(i)
		s.add(&v)
	}
	got := 0
	s.newestFirst(func(k *keptVerdict) bool {
		want := ringVerdict(n - 1 - got)
		if fmt.Sprint(k.exit, k.evidence) != fmt.Sprint(want.Exit, want.CitedEvidence()) {
			t.Errorf("verdict %d back from the ring:\n%+v %+v\nwant\n%+v %+v", got, k.exit, k.evidence, want.Exit, want.CitedEvidence())
		}
		if cap(k.evidence) != len(k.evidence) {
			t.Errorf("verdict %d: its evidence can be appended to over its neighbour's", got)
		}
		got++
		return true
	})
	if got != s.max {
		t.Fatalf("%d verdicts kept, want %d", got, s.max)
	}
	v := ringVerdict(n)
	s.add(&v)
	kept := s.items[(s.next-1+s.max)%s.max]
	if unsafe.StringData(kept.exit.Name) == unsafe.StringData(v.Exit.Name) ||
		unsafe.StringData(kept.evidence[0].Detail) == unsafe.StringData(v.Evidence[0].Detail) {
		t.Error("the ring keeps the verdict's own strings and evidence, not copies")
	}
	if allocs := testing.AllocsPerRun(200, func() { s.add(&v) }); allocs > 0.2 {
		t.Errorf("%.2f allocations an add, want a block's now and then", allocs)
	}
}
