package sim

import (
	"slices"
	"testing"
	"time"
)

// TestQueuePopsInTimeThenScheduleOrder checks the event queue against a
// sort by (at, seq), with pushes and pops interleaved.
func TestQueuePopsInTimeThenScheduleOrder(t *testing.T) {
	tests := []struct {
		name  string
		times []time.Duration
	}{
		{"empty", nil},
		{"one", []time.Duration{5}},
		{"ties keep schedule order", []time.Duration{3, 1, 3, 1, 3, 2, 1}},
		{"descending", []time.Duration{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"mixed", []time.Duration{4, 17, 4, 0, 23, 8, 8, 15, 42, 16, 4, 0, 7, 7, 99, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q queue
			var want, got []event
			for i, at := range tt.times {
				e := event{at: at, seq: uint64(i + 1)}
				q.push(e)
				want = append(want, e)
				if i%3 == 2 { // pop one now and then
					got = append(got, q.pop())
				}
			}
			for len(q) > 0 {
				got = append(got, q.pop())
			}
			// The pops interleaved with pushes must equal a replay with
			// the same interleaving against a sorted list.
			var ref, pending []event
			for i, e := range want {
				pending = append(pending, e)
				slices.SortFunc(pending, func(a, b event) int {
					if a.less(b) {
						return -1
					}
					return 1
				})
				if i%3 == 2 {
					ref, pending = append(ref, pending[0]), pending[1:]
				}
			}
			ref = append(ref, pending...)
			if !slices.Equal(got, ref) {
				t.Fatalf("pops %v, want %v", got, ref)
			}
		})
	}
}
