package collector

import (
	"runtime"
	"testing"
)

// TestFreeListKeepsAcrossCollections: what was put back is what the next
// get returns, after collections too (a sync.Pool would have dropped it),
// and no more than the capacity is kept.
func TestFreeListKeepsAcrossCollections(t *testing.T) {
	made := 0
	l := newFreeList(2, func() *[1 << 10]byte { made++; return new([1 << 10]byte) })
	a, b, c := l.get(), l.get(), l.get()
	if made != 3 {
		t.Fatalf("made %d items for 3 gets from an empty list, want 3", made)
	}
	l.put(a)
	l.put(b)
	l.put(c) // over the capacity: dropped
	runtime.GC()
	runtime.GC()
	if x, y := l.get(), l.get(); x != a || y != b {
		t.Errorf("got %p %p after two collections, want the items put back, %p %p", x, y, a, b)
	}
	if l.get() == c || made != 4 {
		t.Errorf("the item put over the capacity was kept (made %d, want 4)", made)
	}
}
