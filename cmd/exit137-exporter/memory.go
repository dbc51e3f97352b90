package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Go's background scavenger returns free heap pages to the OS only down
// to a tenth over the heap goal, and never from a 4 MB chunk that was
// nearly full in the last collection: at this heap's size, most of it.
// After a wave of containers came and went, or a scrape's garbage was
// collected, the exporter so kept up to 1.4 MB it no longer used.
// A scrape's last garbage is not even collected until something else
// allocates: on a quiet exporter, the next scrape.
const (
	// releaseEvery is how often the heap is looked at: one read of
	// runtime metrics. At 30 s, RSS read at any moment held 0.2 to 1.4 MB
	// of free heap; a release follows at most each collection the heap
	// made by itself, or each scrape, so the wait costs nothing on a quiet
	// exporter.
	releaseEvery = 5 * time.Second
	// releaseAbove is how much free heap not yet returned makes a release
	// worth its forced collection (about a millisecond at this heap's
	// size).
	releaseAbove = 256 << 10
	// garbageShare is how much garbage, as a share of the live heap, makes
	// a collection worth forcing: the collection's cost grows with the live
	// heap, so it is paid only for garbage in proportion (an eighth: the
	// runtime's own collection comes at a quarter, GOGC=25).
	garbageShare = 8
)

// releaseFreeMemory releases what the heap holds every releaseEvery
// until ctx ends.
func releaseFreeMemory(ctx context.Context, logger *slog.Logger) {
	tick := time.NewTicker(releaseEvery)
	defer tick.Stop()
	var r releaser
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if h, done := r.release(releaseAbove); done {
			logger.Debug("returned free heap to the OS", "free_bytes", h.free, "garbage_bytes", h.garbage)
		}
	}
}

// heldHeap is heap the exporter no longer uses but the OS has not got
// back.
type heldHeap struct {
	// free is free heap not yet returned to the OS.
	free uint64
	// garbage is what the heap's objects hold beyond the live heap the
	// last collection marked: allocated since, mostly a scrape's garbage.
	garbage uint64
	// live is the live heap the last collection marked.
	live uint64
}

// releaser collects and hands the free heap back to the OS when it holds
// enough to be worth the forced collection.
type releaser struct {
	// kept is the free heap the last release left: pages the runtime does
	// not give back (3.6 MB at 5,000 containers, release after release).
	// Counted as held, they forced a collection every releaseEvery on an
	// idle exporter.
	kept uint64
}

// release forces a collection and hands the free heap back to the OS
// when due; it returns what was held then and whether it released.
func (r *releaser) release(above uint64) (heldHeap, bool) {
	h, due := r.due(readHeld(), above)
	if !due {
		return h, false
	}
	debug.FreeOSMemory()
	r.kept = readHeld().free
	return h, true
}

// due takes what the last release kept out of h's free heap, and applies
// releaseDue to the rest.
func (r *releaser) due(h heldHeap, above uint64) (heldHeap, bool) {
	r.kept = min(r.kept, h.free) // what was kept has been used since
	h.free -= r.kept
	return h, releaseDue(h, above)
}

// releaseDue is the rule: free heap over above, or garbage over above and
// over an eighth of the live heap.
func releaseDue(h heldHeap, above uint64) bool {
	return h.free > above || (h.garbage > above && h.garbage > h.live/garbageShare)
}

func readHeld() heldHeap {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(s)
	objects, live := s[1].Value.Uint64(), s[2].Value.Uint64()
	return heldHeap{free: s[0].Value.Uint64(), garbage: objects - min(live, objects), live: live}
}
