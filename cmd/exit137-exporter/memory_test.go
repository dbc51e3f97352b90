package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

var sink, live [][]byte

// makeGarbage allocates n bytes in 64 KiB pieces and drops them.
func makeGarbage(n int) {
	for range n / (64 << 10) {
		sink = append(sink, make([]byte, 64<<10))
	}
	sink = nil
}

func TestReleaseDue(t *testing.T) {
	const above = 256 << 10
	for _, c := range []struct {
		name string
		h    heldHeap
		want bool
	}{
		{"nothing held", heldHeap{live: 8 << 20}, false},
		{"free at the threshold", heldHeap{free: above, live: 8 << 20}, false},
		{"free over it", heldHeap{free: above + 1, live: 8 << 20}, true},
		{"garbage over it, under an eighth of the live heap", heldHeap{garbage: 1 << 20, live: 8 << 20}, false},
		{"garbage over an eighth", heldHeap{garbage: 1<<20 + 1, live: 8 << 20}, true},
		{"garbage over an eighth, under the threshold", heldHeap{garbage: 200 << 10, live: 1 << 20}, false},
	} {
		if got := releaseDue(c.h, above); got != c.want {
			t.Errorf("%s (%+v): releaseDue = %v, want %v", c.name, c.h, got, c.want)
		}
	}
}

// TestReleaserKept: free heap a release could not return is not counted
// at the next look, and is counted again once it has been used: readings
// in turn, each with what the releaser decides.
func TestReleaserKept(t *testing.T) {
	const above, mb = 256 << 10, 1 << 20
	r := releaser{kept: 3600 << 10} // left free by the last release
	for i, c := range []struct {
		free, garbage uint64
		want          bool
		kept          uint64 // after the look
	}{
		{free: 3600 << 10, want: false, kept: 3600 << 10},          // idle: nothing new
		{free: 3600<<10 + above, want: false, kept: 3600 << 10},    // at the threshold beyond it
		{free: 3600<<10 + above + 1, want: true, kept: 3600 << 10}, // over it
		{free: mb, want: false, kept: mb},                          // a scrape used part of it
		{free: mb + 300<<10, want: true, kept: mb},                 // freed again beyond what is kept
		{free: 0, garbage: 2 * mb, want: true, kept: 0},            // all used; garbage over an eighth
	} {
		h, due := r.due(heldHeap{free: c.free, garbage: c.garbage, live: 8 * mb}, above)
		if due != c.want || r.kept != c.kept || h.free != c.free-c.kept {
			t.Errorf("reading %d (free %d, garbage %d): due %v, kept %d, free counted %d; want %v, %d, %d",
				i, c.free, c.garbage, due, r.kept, h.free, c.want, c.kept, c.free-c.kept)
		}
	}
}

// TestRelease: the heap a wave of garbage left free goes back to the OS;
// what a release could not return does not call for the next one, and a
// heap holding less than the threshold is left alone.
func TestRelease(t *testing.T) {
	var r releaser
	makeGarbage(16 << 20)
	runtime.GC()
	if held := readHeld().free; held <= releaseAbove {
		t.Fatalf("%d bytes of free heap after 16 MiB of garbage; the test needs more than %d", held, releaseAbove)
	}
	if got, done := r.release(releaseAbove); !done || got.free <= releaseAbove {
		t.Fatalf("release found %d bytes free (released: %v), want the free heap (> %d) released", got.free, done, releaseAbove)
	}
	// Goroutines that earlier tests of this binary left running still
	// allocate and collect, and may free heap again: of a few releases
	// in a row, one must find nothing to do.
	done := true
	for try := 0; try < 5 && done; try++ {
		_, done = r.release(releaseAbove)
	}
	if done {
		t.Errorf("five releases in a row, each forced a collection; want the heap left alone once released")
	}
	if _, done := r.release(^uint64(0)); done {
		t.Error("release with nothing above the threshold released")
	}
}

// TestReleaseGarbage: garbage no collection has come for (a scrape's, on
// a quiet exporter) is collected and returned when it is more than an
// eighth of the live heap, and left to the runtime when it is less.
func TestReleaseGarbage(t *testing.T) {
	gcPercent := debug.SetGCPercent(-1) // only the release collects
	for range 128 {
		live = append(live, make([]byte, 64<<10)) // 8 MiB live
	}
	t.Cleanup(func() {
		live = nil
		debug.SetGCPercent(gcPercent)
		debug.FreeOSMemory() // leaves the next test a heap without ours
	})
	var r releaser
	r.release(0)

	makeGarbage(512 << 10) // over the threshold, under an eighth of the live heap
	if h := readHeld(); h.garbage <= releaseAbove || h.garbage > h.live/garbageShare {
		t.Fatalf("after 512 KiB of garbage over 8 MiB live: %+v; the test needs it between the threshold and an eighth", h)
	}
	if got, done := r.release(releaseAbove); done {
		t.Errorf("garbage under an eighth of the live heap: released %+v, want it left to the runtime", got)
	}

	makeGarbage(4 << 20)
	if got, done := r.release(releaseAbove); !done || got.garbage < 4<<20 {
		t.Fatalf("after 4 MiB of garbage over 8 MiB live, release found %+v (released: %v), want the garbage released", got, done)
	}
	if h := readHeld(); h.garbage > releaseAbove || h.free > r.kept+releaseAbove {
		t.Errorf("after the release: %+v (kept %d), want the garbage collected and returned", h, r.kept)
	}
}
