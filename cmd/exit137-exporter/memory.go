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
const (
	// releaseEvery is how often the free heap is looked at: one read of a
	// runtime metric. At 30 s, RSS read at any moment held 0.2 to 1.4 MB
	// of free heap; a release follows at most each collection the heap
	// made by itself, so the wait costs nothing on a quiet exporter.
	releaseEvery = 5 * time.Second
	// releaseAbove is how much free heap not yet returned makes a release
	// worth its forced collection (about a millisecond at this heap's
	// size).
	releaseAbove = 256 << 10
)

// releaseFreeMemory calls releaseHeld every releaseEvery until ctx ends.
func releaseFreeMemory(ctx context.Context, logger *slog.Logger) {
	tick := time.NewTicker(releaseEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if held := releaseHeld(releaseAbove); held > 0 {
			logger.Debug("returned free heap to the OS", "bytes", held)
		}
	}
}

// releaseHeld collects and hands the free heap back to the OS when more
// than above of it is held; it returns how much was held then, 0 when it
// left the heap alone.
func releaseHeld(above uint64) uint64 {
	held := freeHeap()
	if held <= above {
		return 0
	}
	debug.FreeOSMemory()
	return held
}

// freeHeap is the heap that is free and not yet returned to the OS.
func freeHeap() uint64 {
	free := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(free)
	return free[0].Value.Uint64()
}
