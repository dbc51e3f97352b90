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

// TestReleaseHeld: the heap a wave of garbage left free goes back to the
// OS, and a heap holding less than the threshold is left alone.
func TestReleaseHeld(t *testing.T) {
	makeGarbage(16 << 20)
	runtime.GC()
	if held := readHeld().free; held <= releaseAbove {
		t.Fatalf("%d bytes of free heap after 16 MiB of garbage; the test needs more than %d", held, releaseAbove)
	}
	if got := releaseHeld(releaseAbove); got.free <= releaseAbove {
		t.Fatalf("releaseHeld found %d bytes free, want the free heap (> %d)", got.free, releaseAbove)
	}
	// Goroutines that earlier tests of this binary left running still
	// allocate, and a collection of theirs between a release and the read
	// frees heap again (CI read 3 MB once): one of a few releases must
	// leave less than the threshold.
	held := readHeld().free
	for try := 0; try < 5 && held > releaseAbove; try++ {
		releaseHeld(0)
		held = readHeld().free
	}
	if held > releaseAbove {
		t.Errorf("%d bytes of free heap still held after the release", held)
	}
	if got := releaseHeld(^uint64(0)); got != (heldHeap{}) {
		t.Errorf("releaseHeld with nothing above the threshold = %+v, want zero (left alone)", got)
	}
}

// TestReleaseHeldGarbage: garbage no collection has come for (a scrape's,
// on a quiet exporter) is collected and returned when it is more than an
// eighth of the live heap, and left to the runtime when it is less.
func TestReleaseHeldGarbage(t *testing.T) {
	gcPercent := debug.SetGCPercent(-1) // only the release collects
	for range 128 {
		live = append(live, make([]byte, 64<<10)) // 8 MiB live
	}
	t.Cleanup(func() {
		live = nil
		debug.SetGCPercent(gcPercent)
		debug.FreeOSMemory() // leaves the next test a heap without ours
	})
	debug.FreeOSMemory()

	makeGarbage(512 << 10) // over the threshold, under an eighth of the live heap
	if h := readHeld(); h.garbage <= releaseAbove || h.garbage > h.live/garbageShare {
		t.Fatalf("after 512 KiB of garbage over 8 MiB live: %+v; the test needs it between the threshold and an eighth", h)
	}
	if got := releaseHeld(releaseAbove); got != (heldHeap{}) {
		t.Errorf("garbage under an eighth of the live heap: released %+v, want it left to the runtime", got)
	}

	makeGarbage(4 << 20)
	if got := releaseHeld(releaseAbove); got.garbage < 4<<20 {
		t.Fatalf("after 4 MiB of garbage over 8 MiB live, releaseHeld found %+v, want the garbage", got)
	}
	if h := readHeld(); h.garbage > releaseAbove || h.free > releaseAbove {
		t.Errorf("after the release: %+v, want the garbage collected and returned", h)
	}
}
