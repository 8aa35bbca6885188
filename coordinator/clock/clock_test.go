package clock

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock whose wall and monotonic readings the test moves
// independently.
type fakeClock struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

func (f *fakeClock) Wall() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall
}

func (f *fakeClock) Mono() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mono
}

// pass lets d of real time pass (both clocks).
func (f *fakeClock) pass(d time.Duration) {
	f.mu.Lock()
	f.wall = f.wall.Add(d)
	f.mono += d
	f.mu.Unlock()
}

// step moves the wall clock only.
func (f *fakeClock) step(d time.Duration) {
	f.mu.Lock()
	f.wall = f.wall.Add(d)
	f.mu.Unlock()
}

// warnCounter is a slog.Handler counting warnings.
type warnCounter struct {
	mu sync.Mutex
	n  uint64
}

func (w *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *warnCounter) WithGroup(string) slog.Handler            { return w }

func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		w.mu.Lock()
		w.n++
		w.mu.Unlock()
	}
	return nil
}

func (w *warnCounter) count() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func TestStamper(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	type op struct {
		pass, step time.Duration
	}
	for _, tc := range []struct {
		name string
		// last is the FSM's time at anchoring, relative to t0.
		last time.Duration
		// obs, when set, is a state time (relative to t0) the node
		// observed at the start; gap then passes (and the wall is stepped
		// by gapStep) before anchoring. anchor is the expected anchor
		// relative to t0 (default: max(last, 0)).
		obs    *time.Duration
		gap    op
		anchor *time.Duration
		ops    []op
		// want is the last stamp relative to t0; wantSteps the steps
		// counted; wantOffset the last wall − stamp offset.
		want       time.Duration
		wantSteps  uint64
		wantOffset time.Duration
	}{
		{name: "no step", ops: []op{{pass: 10 * time.Second}, {pass: 5 * time.Second}}, want: 15 * time.Second},
		{name: "forward step 2h", ops: []op{{pass: 10 * time.Second}, {step: 2 * time.Hour}, {pass: 5 * time.Second}},
			want: 15 * time.Second, wantSteps: 1, wantOffset: 2 * time.Hour},
		{name: "forward step then corrected", ops: []op{{step: 2 * time.Hour}, {pass: 5 * time.Second}, {step: -2 * time.Hour}, {pass: time.Second}},
			want: 6 * time.Second, wantSteps: 2},
		{name: "backward step 2h", ops: []op{{pass: 10 * time.Second}, {step: -2 * time.Hour}, {pass: 5 * time.Second}},
			want: 15 * time.Second, wantSteps: 1, wantOffset: -2 * time.Hour},
		{name: "jitter below threshold", ops: []op{{step: 300 * time.Millisecond}, {pass: time.Second}, {step: -500 * time.Millisecond}},
			want: time.Second, wantOffset: -200 * time.Millisecond},
		{name: "new leader behind the state's time", last: time.Hour, ops: []op{{pass: 3 * time.Second}},
			want: time.Hour + 3*time.Second, wantSteps: 1, wantOffset: -time.Hour},
		// A process that observed nothing yet (fresh start) trusts its
		// wall clock ahead of the state's time.
		{name: "fresh start, state's time behind the wall", last: -time.Hour, ops: []op{{pass: 3 * time.Second}}, want: 3 * time.Second},
		// A node that saw the state's time: its wall clock ahead of what
		// real time allows is a step, never a jump of state time.
		{name: "failover to a node stepped +2h", obs: dur(0), gap: op{pass: 5 * time.Second, step: 2 * time.Hour}, last: 4 * time.Second,
			anchor: dur(5 * time.Second), ops: []op{{pass: 3 * time.Second}}, want: 8 * time.Second, wantSteps: 1, wantOffset: 2 * time.Hour},
		{name: "node skewed +1h all along", obs: dur(-time.Hour), gap: op{pass: 2 * time.Second}, last: -time.Hour + time.Second,
			anchor: dur(-time.Hour + 2*time.Second), ops: []op{{pass: time.Second}}, want: -time.Hour + 3*time.Second, wantSteps: 1, wantOffset: time.Hour},
		{name: "state's time observed long ago, nothing applied since", obs: dur(0), gap: op{pass: time.Hour},
			anchor: dur(time.Hour), want: time.Hour},
		{name: "wall within the threshold ahead is taken", obs: dur(0), gap: op{pass: time.Second, step: 700 * time.Millisecond},
			last: time.Second, anchor: dur(1700 * time.Millisecond), want: 1700 * time.Millisecond},
		{name: "observed, wall behind the state's time", obs: dur(0), gap: op{pass: time.Second, step: -time.Hour},
			last: time.Second, anchor: dur(time.Second), ops: []op{{pass: time.Second}}, want: 2 * time.Second, wantSteps: 1, wantOffset: -time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeClock{wall: t0, mono: 42 * time.Second}
			warns := &warnCounter{}
			s := NewStamper(fc, time.Second, slog.New(warns))
			if got := s.Now(); !got.Equal(t0) {
				t.Fatalf("unanchored stamp %s, want the wall clock %s", got, t0)
			}
			if s.Anchored(7) {
				t.Fatal("anchored before Anchor")
			}
			if tc.obs != nil {
				s.Observe(t0.Add(*tc.obs))
				// Re-observing the same state time later does not
				// restart the bound.
				fc.pass(tc.gap.pass)
				s.Observe(t0.Add(*tc.obs))
				fc.step(tc.gap.step)
			}
			anchor := s.Anchor(7, t0.Add(tc.last))
			want := t0.Add(max(tc.last, 0))
			if tc.anchor != nil {
				want = t0.Add(*tc.anchor)
			}
			if !anchor.Equal(want) {
				t.Fatalf("anchor %s, want %s", anchor, want)
			}
			if !s.Anchored(7) || s.Anchored(8) {
				t.Fatal("Anchored does not track the term")
			}
			prev := anchor
			for _, o := range tc.ops {
				fc.pass(o.pass)
				fc.step(o.step)
				got := s.Now()
				if got.Before(prev) {
					t.Fatalf("stamp %s went back from %s", got, prev)
				}
				prev = got
			}
			if want := t0.Add(tc.want); !prev.Equal(want) {
				t.Errorf("last stamp %s, want %s", prev, want)
			}
			off, n := s.Steps()
			if n != tc.wantSteps || off != tc.wantOffset {
				t.Errorf("steps: offset %s, %d steps; want %s, %d", off, n, tc.wantOffset, tc.wantSteps)
			}
			if w := warns.count(); w != tc.wantSteps {
				t.Errorf("%d warnings logged, want one per step (%d)", w, tc.wantSteps)
			}
		})
	}
}

func dur(d time.Duration) *time.Duration { return &d }

func TestSteppedKeepsMonotonic(t *testing.T) {
	c := NewStepped()
	m0, w0 := c.Mono(), c.Wall()
	c.Step(2 * time.Hour)
	if d := c.Mono() - m0; d < 0 || d > time.Minute {
		t.Fatalf("monotonic reading moved by %s after a wall step", d)
	}
	if d := c.Wall().Sub(w0); d < 2*time.Hour || d > 2*time.Hour+time.Minute {
		t.Fatalf("wall moved by %s, want 2h", d)
	}
	if c.Offset() != 2*time.Hour {
		t.Fatalf("offset %s", c.Offset())
	}
	// A wall time with a monotonic reading would make Sub ignore the step.
	if w := c.Wall(); w != w.Round(0) {
		t.Fatal("Wall carries a monotonic reading")
	}
}
