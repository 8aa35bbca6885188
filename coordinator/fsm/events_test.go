package fsm

import (
	"fmt"
	"testing"
)

// TestEventTrimReusesBackingArray checks that trimming the event history
// to the last MaxEvents keeps the newest events in order and reuses the
// backing array instead of allocating a new one per batch (the simulator
// records hundreds of thousands of events per run).
func TestEventTrimReusesBackingArray(t *testing.T) {
	tests := []struct {
		name  string
		extra int
	}{
		{"one batch", MaxEvents / 4},
		{"many batches", 10 * MaxEvents},
		{"partial batch", 10*MaxEvents + 17},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newState()
			for i := range 2 * MaxEvents {
				s.event("test", "", "", "event %d", i)
			}
			first := &s.Events[:cap(s.Events)][0]
			for i := range tt.extra {
				s.event("test", "", "", "event %d", 2*MaxEvents+i)
			}
			if got := &s.Events[:cap(s.Events)][0]; got != first {
				t.Errorf("trimming reallocated the event history")
			}
			if len(s.Events) < MaxEvents || len(s.Events) >= MaxEvents+MaxEvents/4 {
				t.Fatalf("%d events kept, want %d to %d", len(s.Events), MaxEvents, MaxEvents+MaxEvents/4-1)
			}
			total := 2*MaxEvents + tt.extra
			for i, e := range s.Events {
				want := total - len(s.Events) + i
				if e.ID != s.NextEventID-uint64(len(s.Events)-i) || e.Message != fmt.Sprintf("event %d", want) {
					t.Fatalf("event %d: id %d %q, want message %q", i, e.ID, e.Message, fmt.Sprintf("event %d", want))
				}
			}
			for _, e := range s.Events[len(s.Events):cap(s.Events)] {
				if e.Message != "" {
					t.Fatalf("a trimmed event %d is still referenced", e.ID)
				}
			}
		})
	}
}
