package fsm

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// Rollout states.
const (
	RolloutRunning = "running"
	RolloutPaused  = "paused"
	RolloutAborted = "aborted"
	RolloutDone    = "done"
)

// Wave names besides the edge fractions.
const (
	WaveStaging = "staging"
	WaveControl = "control"
	WaveCanary  = "canary"
)

// Rollout defaults.
const (
	DefaultSoak         = 24 * time.Hour
	DefaultExpediteSoak = 30 * time.Minute
	DefaultCycle        = 28 * 24 * time.Hour
	DefaultWaveBudget   = 2
)

// DefaultWaves are the cumulative fractions of the edge datacenters (after
// the canary) that the edge waves reach.
var DefaultWaves = []float64{0.1, 0.5, 1.0}

// Rollout takes a release through a kernel line's datacenters: staging,
// then (control tier on its own) canary and growing edge waves, each gated
// by its predecessor's health, paced over a cycle unless expedited.
type Rollout struct {
	ID       string `json:"id"`
	Release  string `json:"release"`
	Line     string `json:"line"`
	Kernel   string `json:"kernel"`
	Expedite bool   `json:"expedite,omitempty"`
	// Reason is the operator's reason (required for an expedited one).
	Reason      string        `json:"reason,omitempty"`
	State       string        `json:"state"`
	PauseReason string        `json:"pause_reason,omitempty"`
	Created     time.Time     `json:"created"`
	Soak        time.Duration `json:"soak"`
	Cycle       time.Duration `json:"cycle"`
	// Budget is the per-wave failure budget: more unhealthy hosts in a
	// wave pause the rollout.
	Budget int    `json:"budget"`
	Waves  []Wave `json:"waves"`
}

// Wave is one step of a rollout.
type Wave struct {
	Name        string   `json:"name"`
	Datacenters []string `json:"datacenters"`
	// Gates says whether later waves wait for this one (the control tier
	// follows its own schedule and gates nothing).
	Gates     bool      `json:"gates"`
	Started   time.Time `json:"started,omitzero"`
	Completed time.Time `json:"completed,omitzero"`
}

// StartRollout starts a rollout of Release. The plan is computed from the
// state when it is applied, so every replica computes the same one.
type StartRollout struct {
	ID       string    `json:"id"`
	Release  string    `json:"release"`
	Expedite bool      `json:"expedite,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Waves    []float64 `json:"waves,omitempty"`
	// Canary names the canary datacenters; empty = the smallest edge
	// datacenter with hosts of the line.
	Canary []string      `json:"canary,omitempty"`
	Soak   time.Duration `json:"soak,omitempty"`
	Cycle  time.Duration `json:"cycle,omitempty"`
	Budget *int          `json:"budget,omitempty"`
}

// RolloutAction pauses, resumes or aborts a rollout.
type RolloutAction struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// lineHosts returns the hosts of dc on line.
func (s *State) lineHosts(dc, line string) []*Host {
	var out []*Host
	for _, h := range s.byDC[dc] {
		if h.KernelLine == line && !h.FleetLock {
			out = append(out, h)
		}
	}
	return out
}

func (s *State) startRollout(p StartRollout) Result {
	rel := s.Releases[p.Release]
	if rel == nil {
		return refused(wire.KindNotFound, "unknown release %q", p.Release)
	}
	if !ValidName(p.ID) {
		return refused(wire.KindInvalidRequest, "invalid rollout id %q", p.ID)
	}
	if s.Rollouts[p.ID] != nil {
		return refused(wire.KindConflict, "rollout %s exists", p.ID)
	}
	if p.Expedite && strings.TrimSpace(p.Reason) == "" {
		return refused(wire.KindInvalidRequest, "an expedited rollout needs a reason (it is recorded in the event log)")
	}
	fracs := p.Waves
	if len(fracs) == 0 {
		fracs = DefaultWaves
	}
	for i, f := range fracs {
		if f <= 0 || f > 1 || (i > 0 && f <= fracs[i-1]) {
			return refused(wire.KindInvalidRequest, "waves: %v: want increasing fractions in (0, 1]", fracs)
		}
	}
	if fracs[len(fracs)-1] != 1 {
		fracs = append(slices.Clone(fracs), 1)
	}
	r := &Rollout{ID: p.ID, Release: rel.ID, Line: rel.Line, Kernel: rel.KernelVersion, Expedite: p.Expedite, Reason: p.Reason,
		State: RolloutRunning, Created: s.Now, Soak: p.Soak, Cycle: p.Cycle, Budget: DefaultWaveBudget}
	if r.Soak <= 0 {
		r.Soak = DefaultSoak
		if p.Expedite {
			r.Soak = DefaultExpediteSoak
		}
	}
	if r.Cycle <= 0 {
		r.Cycle = DefaultCycle
	}
	if p.Budget != nil {
		if *p.Budget < 0 {
			return refused(wire.KindInvalidRequest, "budget must not be negative")
		}
		r.Budget = *p.Budget
	}

	// Group the datacenters that have hosts of the line by tier.
	var staging, control, edge []string
	size := map[string]int{}
	for _, name := range sortedKeys(s.Datacenters) {
		n := len(s.lineHosts(name, rel.Line))
		if n == 0 {
			continue
		}
		size[name] = n
		switch s.Datacenters[name].Tier {
		case TierStaging:
			staging = append(staging, name)
		case TierControl:
			control = append(control, name)
		default:
			edge = append(edge, name)
		}
	}
	// Smaller datacenters first: a bad release meets few hosts before
	// the big ones.
	slices.SortStableFunc(edge, func(a, b string) int { return cmp.Compare(size[a], size[b]) })
	canary := p.Canary
	for _, c := range canary {
		if size[c] == 0 || s.Datacenters[c].Tier != TierEdge {
			return refused(wire.KindInvalidRequest, "canary %q is not an edge datacenter with hosts of line %s", c, rel.Line)
		}
	}
	if len(canary) == 0 && len(edge) > 0 {
		canary = edge[:1]
	}
	rest := slices.DeleteFunc(slices.Clone(edge), func(d string) bool { return slices.Contains(canary, d) })

	if len(staging) > 0 {
		r.Waves = append(r.Waves, Wave{Name: WaveStaging, Datacenters: staging, Gates: true})
	}
	if len(control) > 0 {
		r.Waves = append(r.Waves, Wave{Name: WaveControl, Datacenters: control})
	}
	if len(canary) > 0 {
		r.Waves = append(r.Waves, Wave{Name: WaveCanary, Datacenters: slices.Clone(canary), Gates: true})
	}
	done := 0
	for _, f := range fracs {
		upto := int(math.Ceil(f * float64(len(rest))))
		if upto <= done {
			continue
		}
		r.Waves = append(r.Waves, Wave{Name: fmt.Sprintf("edge-%d%%", int(math.Round(f*100))), Datacenters: rest[done:upto], Gates: true})
		done = upto
	}
	if len(r.Waves) == 0 {
		return refused(wire.KindInvalidRequest, "no datacenter has hosts of line %s", rel.Line)
	}
	// A newer rollout of the line supersedes a running one.
	for _, id := range sortedKeys(s.Rollouts) {
		if o := s.Rollouts[id]; o.Line == rel.Line && (o.State == RolloutRunning || o.State == RolloutPaused) {
			o.State = RolloutAborted
			o.PauseReason = "superseded by rollout " + p.ID
			s.event("rollout_aborted", "", "", "rollout %s superseded by %s", id, p.ID)
		}
	}
	s.Rollouts[p.ID] = r
	kind := "rollout"
	if p.Expedite {
		kind = "EXPEDITED rollout"
	}
	var plan []string
	for _, w := range r.Waves {
		plan = append(plan, fmt.Sprintf("%s(%d)", w.Name, len(w.Datacenters)))
	}
	msg := fmt.Sprintf("%s %s of %s (line %s) started: %s", kind, p.ID, rel.ID, rel.Line, strings.Join(plan, " → "))
	if p.Reason != "" {
		msg += "; reason: " + p.Reason
	}
	s.event("rollout_started", "", "", "%s", msg)
	s.advanceRollout(r, Timing{})
	return Result{}
}

func (s *State) rolloutAction(p RolloutAction, t Type) Result {
	r := s.Rollouts[p.ID]
	if r == nil {
		return refused(wire.KindNotFound, "unknown rollout %q", p.ID)
	}
	switch {
	case r.State == RolloutDone || r.State == RolloutAborted:
		return refused(wire.KindConflict, "rollout %s is %s", p.ID, r.State)
	case t == TypePauseRollout:
		if r.State != RolloutPaused {
			r.State, r.PauseReason = RolloutPaused, orDefault(p.Reason, "paused by an operator")
			s.event("rollout_paused", "", "", "rollout %s paused: %s", p.ID, r.PauseReason)
		}
	case t == TypeResumeRollout:
		if r.State == RolloutPaused {
			r.State, r.PauseReason = RolloutRunning, ""
			s.event("rollout_resumed", "", "", "rollout %s resumed", p.ID)
		}
	case t == TypeAbortRollout:
		r.State, r.PauseReason = RolloutAborted, orDefault(p.Reason, "aborted by an operator")
		for _, w := range r.Waves {
			for _, name := range w.Datacenters {
				if dc := s.Datacenters[name]; dc != nil {
					if tg, ok := dc.Targets[r.Line]; ok && tg.Rollout == r.ID && w.Completed.IsZero() {
						delete(dc.Targets, r.Line)
					}
				}
			}
		}
		s.event("rollout_aborted", "", "", "rollout %s aborted: %s", p.ID, r.PauseReason)
	}
	return Result{}
}

// WaveProgress counts a wave's hosts of the rollout's line.
type WaveProgress struct {
	// Hosts counts alive hosts; the others wait until they come back.
	Hosts int
	// Done hosts run the release's kernel and are not unhealthy.
	Done int
	// Failed hosts reported unhealthy (or are in phase failed).
	Failed int
	// Phases counts the not-done hosts by phase.
	Phases map[string]int
}

// Progress returns the progress of the rollout's hosts in datacenters dcs.
func (s *State) Progress(r *Rollout, dcs []string, aliveWithin time.Duration) WaveProgress {
	wp := WaveProgress{Phases: map[string]int{}}
	for _, name := range dcs {
		for _, h := range s.lineHosts(name, r.Line) {
			alive := aliveWithin <= 0 || s.Now.Sub(h.LastHeartbeat) <= aliveWithin
			switch {
			case h.Unhealthy || h.Phase == wire.PhaseFailed:
				wp.Hosts++
				wp.Failed++
			case !alive:
				// Dead hosts do not hold a wave back.
			case h.Kernel == r.Kernel && (h.Phase == wire.PhaseIdle || h.Phase == wire.PhaseHealthy || h.Phase == ""):
				wp.Hosts++
				wp.Done++
			default:
				wp.Hosts++
				wp.Phases[h.Phase]++
			}
		}
	}
	return wp
}

// advanceRollouts moves every running rollout on (from Tick).
func (s *State) advanceRollouts(t Timing) {
	for _, id := range sortedKeys(s.Rollouts) {
		if r := s.Rollouts[id]; r.State == RolloutRunning {
			s.advanceRollout(r, t)
		}
	}
}

// advanceRollout completes waves whose hosts are done, pauses on a wave
// over its failure budget, and starts the waves whose gates are open.
func (s *State) advanceRollout(r *Rollout, t Timing) {
	gatesOpen := true // every earlier gating wave completed
	var edgeStart time.Time
	edgeIndex := 0
	edgeWaves := 0
	for _, w := range r.Waves {
		if w.Name != WaveStaging && w.Name != WaveControl {
			edgeWaves++
		}
	}
	stagingDone := time.Time{}
	for i := range r.Waves {
		w := &r.Waves[i]
		isEdge := w.Name != WaveStaging && w.Name != WaveControl
		if !w.Started.IsZero() {
			if w.Completed.IsZero() {
				wp := s.Progress(r, w.Datacenters, t.AliveWithin)
				if wp.Failed > r.Budget {
					r.State = RolloutPaused
					r.PauseReason = fmt.Sprintf("wave %s: %d hosts unhealthy, over the wave's failure budget of %d", w.Name, wp.Failed, r.Budget)
					s.event("rollout_paused", "", "", "rollout %s paused: %s", r.ID, r.PauseReason)
					return
				}
				if wp.Done+wp.Failed == wp.Hosts {
					w.Completed = s.Now
					s.event("rollout_wave_done", "", "", "rollout %s: wave %s done (%d hosts on %s, %d failed)", r.ID, w.Name, wp.Done, r.Kernel, wp.Failed)
				}
			}
			if w.Name == WaveStaging && !w.Completed.IsZero() {
				stagingDone = w.Completed
			}
			if isEdge {
				if edgeIndex == 0 {
					edgeStart = w.Started
				}
				edgeIndex++
			}
			if w.Gates {
				if w.Completed.IsZero() {
					gatesOpen = false
				}
			}
			continue
		}
		// Not started: may it start now?
		if !gatesOpen {
			break
		}
		if !stagingDone.IsZero() && s.Now.Sub(stagingDone) < r.Soak {
			break // staging soaks before anything else starts
		}
		if isEdge && edgeIndex > 0 && !r.Expedite {
			// Pace the edge over the cycle: wave k not before
			// edgeStart + k·cycle/edgeWaves.
			notBefore := edgeStart.Add(time.Duration(edgeIndex) * (r.Cycle / time.Duration(edgeWaves)))
			if s.Now.Before(notBefore) {
				break
			}
		}
		w.Started = s.Now
		for _, name := range w.Datacenters {
			dc := s.Datacenters[name]
			if dc == nil {
				continue
			}
			targets := map[string]Target{}
			for l, tg := range dc.Targets {
				targets[l] = tg
			}
			targets[r.Line] = Target{Release: r.Release, Rollout: r.ID, Expedite: r.Expedite}
			dc.Targets = targets
		}
		s.event("rollout_wave_started", "", "", "rollout %s: wave %s started in %d datacenters", r.ID, w.Name, len(w.Datacenters))
		if isEdge {
			if edgeIndex == 0 {
				edgeStart = w.Started
			}
			edgeIndex++
		}
		if w.Gates {
			gatesOpen = false
		}
	}
	all := true
	for _, w := range r.Waves {
		all = all && !w.Completed.IsZero()
	}
	if all {
		r.State = RolloutDone
		s.event("rollout_done", "", "", "rollout %s of %s done", r.ID, r.Release)
	}
}
