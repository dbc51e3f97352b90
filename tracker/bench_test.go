package tracker

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// The tracker's costs at scale: the verdict path a burst of deaths takes,
// and the per-scrape snapshots the collectors read.
//
//	go test -run '^$' -bench . ./tracker

// benchTracker knows n running containers, decides at once and runs on a
// clock the benchmark moves; MaxVerdicts is the exporter's default.
func benchTracker(n int) (*Tracker, []string, *time.Time) {
	tr := New(Config{Settle: 2 * time.Second, Window: 30 * time.Second, Retention: time.Hour}, slog.New(slog.DiscardHandler))
	now := t0
	tr.now = func() time.Time { return now }
	tr.start, tr.ledger.horizon = t0.Add(-time.Hour), t0.Add(-time.Hour)
	tr.after = func(_ time.Duration, f func()) { f() }
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%064x", i+1)
		tr.Upsert(Meta{ID: ids[i], Name: fmt.Sprintf("c%05d", i), Image: "img:1"})
		tr.Started(ids[i], t0.Add(-time.Minute))
	}
	return tr, ids, &now
}

// BenchmarkVerdict is Exited → decide → counted, for 1,000 containers,
// with the evidence log holding e items (a busy host's docker kill/stop
// events spread over the window; 50,000 is the log's cap). One op is one
// container's death and verdict.
func BenchmarkVerdict(b *testing.B) {
	for _, e := range []int{100, 10000, maxEvidence} {
		b.Run(fmt.Sprintf("evidence=%d", e), func(b *testing.B) {
			tr, ids, now := benchTracker(1000)
			for i := range e {
				at := t0.Add(-time.Duration(i%25000) * time.Millisecond)
				tr.AddEvidence(attribution.Evidence{Container: ids[i%len(ids)], Time: at, Source: "docker",
					Kind: attribution.KindDockerKill, Signal: 9, Detail: "docker event: kill, signal 9"})
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				*now = now.Add(100 * time.Microsecond)
				id := ids[i%len(ids)]
				tr.Started(id, now.Add(-time.Millisecond))
				if !tr.Died(id, *now, 137) {
					b.Fatal("exit not new")
				}
			}
		})
	}
}

// BenchmarkVerdictRing fills the /explain ring at its default size with
// distinct verdicts (ringVerdict) and reports the heap it then holds per
// verdict, measured after a collection; one op is one add.
func BenchmarkVerdictRing(b *testing.B) {
	const n = 1000
	verdicts := make([]attribution.Verdict, n)
	for i := range verdicts {
		verdicts[i] = ringVerdict(i)
	}
	var held float64
	for b.Loop() {
		b.StopTimer()
		before := heapAlloc()
		s := &verdictStore{max: n}
		b.StartTimer()
		for i := range verdicts {
			s.add(&verdicts[i])
		}
		b.StopTimer()
		held = float64(heapAlloc()-before) / n
		runtime.KeepAlive(s)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/add")
	b.ReportMetric(held, "heap-bytes/verdict")
}

// heapAlloc is the live heap after a collection.
func heapAlloc() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkVerdictOthers is BenchmarkVerdict with the evidence of other
// containers growing and each dying container's own fixed (5 items in
// its window): what a verdict costs on a host where other containers are
// killed and stopped all the time. O(evidence of that container): flat
// as others grows; a scan of the whole log grows with it.
func BenchmarkVerdictOthers(b *testing.B) {
	const own = 5
	for _, others := range []int{0, 10000, 40000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			tr, ids, now := benchTracker(1000)
			add := func(id string, i int) {
				tr.AddEvidence(attribution.Evidence{Container: id, Time: t0.Add(-time.Duration(i%25000) * time.Millisecond), Source: "docker",
					Kind: attribution.KindDockerKill, Signal: 9, Detail: "docker event: kill, signal 9"})
			}
			for i := range others {
				add(fmt.Sprintf("%064x", 1000000+i%5000), i)
			}
			for i := range own * len(ids) {
				add(ids[i%len(ids)], i)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				*now = now.Add(100 * time.Microsecond)
				id := ids[i%len(ids)]
				tr.Started(id, now.Add(-time.Millisecond))
				if !tr.Died(id, *now, 137) {
					b.Fatal("exit not new")
				}
			}
		})
	}
}

// BenchmarkExitSeries is the exits collector's snapshot: every name's
// five pre-created SIGKILL series plus one counted exit each.
func BenchmarkExitSeries(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) {
			tr, ids, now := benchTracker(n)
			for _, id := range ids {
				tr.Died(id, *now, 1)
				tr.Started(id, now.Add(time.Second))
			}
			b.ReportAllocs()
			for b.Loop() {
				tr.ExitSeries()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/name")
		})
	}
}

// BenchmarkViews is the snapshot the memory and containers collectors
// take on every scrape.
func BenchmarkViews(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			tr, _, _ := benchTracker(n)
			b.ReportAllocs()
			for b.Loop() {
				tr.Views()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/container")
		})
	}
}
