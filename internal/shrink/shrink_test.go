package shrink

import (
	"maps"
	"reflect"
	"testing"
)

func filled(n int) map[int]string {
	m := make(map[int]string, n)
	for i := range n {
		m[i] = "v"
	}
	return m
}

func TestMap(t *testing.T) {
	for _, c := range []struct {
		name        string
		peak, after int
		copied      bool
	}{
		{"emptied from a large peak", 10_000, 10, true},
		{"just under a quarter", 1_000, 249, true},
		{"a quarter stays", 1_000, 250, false},
		{"most still held", 1_000, 900, false},
		{"small peak", minPeak - 1, 0, false},
		{"emptied entirely", 1_000, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := filled(c.peak)
			var peak Peak
			peak.See(len(m))
			for k := range m {
				if len(m) == c.after {
					break
				}
				delete(m, k)
			}
			want := maps.Clone(m)
			got := Map(m, &peak)
			if same := reflect.ValueOf(got).UnsafePointer() == reflect.ValueOf(m).UnsafePointer(); same == c.copied {
				t.Errorf("copied = %v, want %v", !same, c.copied)
			}
			if !maps.Equal(got, want) {
				t.Errorf("the map's contents changed: %d entries, want %d", len(got), len(want))
			}
			if c.copied && peak != Peak(c.after) {
				t.Errorf("peak after a copy = %d, want %d (what the copy holds)", peak, c.after)
			}
		})
	}
}

// TestMapSeesGrowth: Map records a peak it was not told of, so a map
// that grew between sweeps and emptied is still copied later.
func TestMapSeesGrowth(t *testing.T) {
	var peak Peak
	m := Map(filled(1_000), &peak)
	if peak != 1_000 {
		t.Fatalf("peak = %d, want 1000", peak)
	}
	for k := range m {
		if k >= 10 {
			delete(m, k)
		}
	}
	if got := Map(m, &peak); reflect.ValueOf(got).UnsafePointer() == reflect.ValueOf(m).UnsafePointer() {
		t.Error("a map emptied to 10 of its 1,000 was not copied")
	}
}
