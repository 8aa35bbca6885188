// Package clock is the time source of the coordinator's leader: it stamps
// Raft commands from a monotonic clock anchored at the start of the
// leader's term, so that a wall-clock step (NTP step, operator date -s, a
// bad RTC after reboot) never moves state time, and it detects and reports
// such steps.
//
// Every node observes the state machine's time as it applies entries
// (Observe), together with its own monotonic reading. On becoming leader
// the stamper anchors at
//
//	max(last, min(wall now, observed + monotonic time since observing))
//
// where last is the latest time the state machine has applied (a wall
// within the step threshold above the bound is taken as is). Afterwards
// every stamp is anchor + monotonic time elapsed since anchoring. Stamps
// therefore never fall behind the state's last time (a new leader whose
// wall clock lags the old leader's does not freeze state time) and never
// run ahead of it by more than the real time that passed: neither a forward
// step on the leader nor a new leader whose wall clock runs ahead (stepped
// or skewed) expires leases or marks holders lost. Only a process that has
// observed no entry since it started (a whole-cluster restart) anchors at
// max(wall now, last): nothing bounds its wall clock then. The difference
// wall − anchor is reported as a step.
package clock

import (
	"log/slog"
	"sync"
	"time"
)

// Clock is a source of wall-clock and monotonic time. Wall may step in
// either direction; Mono only ever advances at the rate of real time and
// its value is meaningful only as a difference.
type Clock interface {
	// Wall returns the current wall-clock time (without a monotonic
	// reading).
	Wall() time.Time
	// Mono returns a monotonic reading.
	Mono() time.Duration
}

// System is the host's clock: time.Now for the wall and Go's monotonic
// reading for Mono.
type System struct {
	start time.Time
}

// NewSystem returns the host's clock.
func NewSystem() *System { return &System{start: time.Now()} }

// Wall implements Clock.
func (s *System) Wall() time.Time { return time.Now().Round(0) }

// Mono implements Clock: time elapsed since NewSystem on the monotonic
// clock.
func (s *System) Mono() time.Duration { return time.Since(s.start) }

// Stepped is the host's clock with a wall-clock offset that can be stepped
// at run time while the monotonic reading keeps running untouched: it
// models an NTP step or `date -s` on a running node (fault injection in
// tests). It is safe for concurrent use.
type Stepped struct {
	sys    *System
	mu     sync.Mutex
	offset time.Duration
}

// NewStepped returns a clock equal to the host's until stepped.
func NewStepped() *Stepped { return &Stepped{sys: NewSystem()} }

// Step moves the wall clock by d (negative: backwards).
func (s *Stepped) Step(d time.Duration) {
	s.mu.Lock()
	s.offset += d
	s.mu.Unlock()
}

// Offset returns the total step applied so far.
func (s *Stepped) Offset() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offset
}

// Wall implements Clock.
func (s *Stepped) Wall() time.Time { return s.sys.Wall().Add(s.Offset()) }

// Mono implements Clock; steps do not affect it.
func (s *Stepped) Mono() time.Duration { return s.sys.Mono() }

// DefaultStepThreshold is the difference between the wall clock and the
// stamped time beyond which a step is reported. Clock discipline slews both
// clocks alike, so only real steps (and leap seconds) get near it.
const DefaultStepThreshold = time.Second

// Stamper hands out the leader's command times. It is safe for concurrent
// use.
type Stamper struct {
	clk       Clock
	threshold time.Duration
	log       *slog.Logger

	mu sync.Mutex
	// observed is set once this process has observed the state's time;
	// obsTime is the latest state time observed, obsMono the monotonic
	// reading when it was.
	observed   bool
	obsTime    time.Time
	obsMono    time.Duration
	term       uint64
	anchored   bool
	anchorWall time.Time
	anchorMono time.Duration
	// baseline is the wall−stamp offset last accepted as normal; a change
	// beyond threshold from it is a step.
	baseline time.Duration
	offset   time.Duration
	steps    uint64
}

// NewStamper returns a stamper over clk (the host's clock when nil);
// threshold ≤ 0 means DefaultStepThreshold, log nil discards.
func NewStamper(clk Clock, threshold time.Duration, log *slog.Logger) *Stamper {
	if clk == nil {
		clk = NewSystem()
	}
	if threshold <= 0 {
		threshold = DefaultStepThreshold
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stamper{clk: clk, threshold: threshold, log: log}
}

// Observe records that the state machine's latest time is now stateTime
// (called after every entry this process applies, on every node): it bounds
// the anchor of a later term to stateTime + the real time elapsed since.
func (s *Stamper) Observe(stateTime time.Time) {
	mono := s.clk.Mono()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.observed && !stateTime.After(s.obsTime) {
		// Same (or older) state time: keep the earlier reading, the bound
		// must follow the state's time, not the moment of the apply.
		return
	}
	s.observed, s.obsTime, s.obsMono = true, stateTime.UTC(), mono
}

// Anchor starts the stamps of a leader's term and returns the anchor. last
// is the latest time the state machine has applied. Once this process has
// observed the state's time (Observe), the anchor is max(last, min(wall
// now, observed time + monotonic time since observing)), a wall clock up to
// the step threshold above that bound being taken as is; before any
// observation it is max(wall now, last). The wall clock's difference from
// the anchor is reported as a step when beyond the threshold.
func (s *Stamper) Anchor(term uint64, last time.Time) time.Time {
	wall, mono := s.clk.Wall(), s.clk.Mono()
	s.mu.Lock()
	defer s.mu.Unlock()
	anchor := wall
	if s.observed {
		// The state's time cannot have run faster than real time since
		// this node last saw it: a wall clock beyond that is stepped or
		// skewed ahead, and must not move state time.
		bound := s.obsTime.Add(max(mono-s.obsMono, 0))
		if wall.After(bound.Add(s.threshold)) {
			anchor = bound
		}
	}
	if last.After(anchor) {
		anchor = last
	}
	s.term, s.anchored = term, true
	s.anchorWall, s.anchorMono = anchor.UTC(), mono
	// The clock off the state's time is a step relative to the timeline
	// this leader continues; report it against a zero baseline.
	s.baseline = 0
	s.observe(wall.Sub(anchor))
	return s.anchorWall
}

// Anchored reports whether the stamper is anchored for term.
func (s *Stamper) Anchored(term uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anchored && s.term == term
}

// Now returns the stamp for a command proposed now: anchor + monotonic time
// elapsed since anchoring (the wall clock when not anchored). It compares
// the wall clock with the stamp and reports a step beyond the threshold.
func (s *Stamper) Now() time.Time {
	wall, mono := s.clk.Wall(), s.clk.Mono()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.anchored {
		return wall.UTC()
	}
	stamp := s.anchorWall.Add(max(mono-s.anchorMono, 0))
	s.observe(wall.Sub(stamp))
	return stamp
}

// observe records the wall−stamp offset; s.mu is held.
func (s *Stamper) observe(off time.Duration) {
	s.offset = off
	if d := off - s.baseline; d > s.threshold || d < -s.threshold {
		s.steps++
		s.log.Warn("wall clock stepped; command times follow the monotonic clock",
			"step", d.String(), "wall_minus_state_time", off.String(), "threshold", s.threshold.String())
		s.baseline = off
	}
}

// Steps returns the last observed offset of the wall clock from the
// stamped time (positive: wall ahead) and the number of steps observed.
func (s *Stamper) Steps() (offset time.Duration, total uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offset, s.steps
}
