package fsm

import (
	"cmp"
	"fmt"
	"maps"
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
	// RolloutFailed is terminal: a staging or canary host failed the
	// gate; the release is rejected for the line.
	RolloutFailed = "failed"
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
	// Budget is the per-wave failure budget of the edge waves: more
	// unhealthy hosts in one pause the rollout. Staging and canary have
	// none: every host must be healthy (see strictWave).
	Budget int    `json:"budget"`
	Waves  []Wave `json:"waves"`
	// Scope limits a train's rollout to one tier (ScopeStaging,
	// ScopeControl or ScopeEdge; FormatV5); "" is every tier.
	Scope string `json:"scope,omitempty"`
	// Train is the kernel line of the train that started the rollout
	// ("" for an operator's rollout).
	Train string `json:"train,omitempty"`
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
	// Passed is when a staging or canary wave passed its gate: every
	// host healthy on the release's kernel from Completed through the
	// soak. Later waves start only after it.
	Passed time.Time `json:"passed,omitzero"`
	// Members are the hosts of a staging or canary wave, with their
	// registration times: the hosts of the line in its datacenters when it
	// started and those that registered there later. A member that leaves
	// (removed, expired, moved, off the line) before the wave passed fails
	// it: a host stuck on its old kernel cannot be removed to let the
	// wave pass without it.
	Members map[string]time.Time `json:"members,omitempty"`
	// Failures counts the unhealthy reports counted against the failure
	// budget (with a slot token, once per grant) of hosts in the wave's
	// datacenters: the edge waves' budget. A later healthy heartbeat does
	// not take one back; resuming the rollout resets it (the operator
	// has looked).
	Failures int `json:"failures,omitempty"`
}

// LeaderGrace is when the current leader's term began, as replicated by
// the ticks it proposes (Tick.Term). For the liveness grace after it a silent
// host fails no gate — without a leader no host could report — but it
// still holds its wave: silence never lets a wave pass.
type LeaderGrace struct {
	Term  uint64    `json:"term,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// unheardThisTerm reports whether no heartbeat of h was applied since the
// leader grace began. In the grace the leader marks no host silent, so a
// host that died while there was no leader is not silent yet: such a host
// holds its wave (it must not pass on liveness nobody checked). Only the
// flag rule has it (see State.alive): by time such a host is not alive
// once its heartbeat is older than AliveWithin.
func (s *State) unheardThisTerm(h *Host) bool {
	return s.LivenessByFlag && s.Grace.Term != 0 && h.LastHeartbeat.Before(s.Grace.Since)
}

// inGrace reports whether silence is forgiven now: within the grace
// window (State.graceWindow: by flag the liveness grace, t.LivenessGrace
// but at least t.AliveWithin, while the new leader marks no host silent
// either) of the first tick of the leader's term.
func (s *State) inGrace(t Timing) bool {
	return s.Grace.Term != 0 && t.AliveWithin > 0 && s.Now.Sub(s.Grace.Since) <= s.graceWindow(t)
}

// Rejection marks a release rejected for a kernel line: a rollout of it
// failed its staging or canary gate.
type Rejection struct {
	Rollout string    `json:"rollout"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
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
	// Force starts a rollout of a release rejected for its line, or one
	// without a staging or canary wave (no staging, or no edge,
	// datacenter has hosts of the line: that gate is skipped); it needs a
	// Reason, and the event log records what was forced.
	Force bool `json:"force,omitempty"`
}

// RolloutAction is the body of the rollout actions: PauseRollout,
// ResumeRollout and AbortRollout.
type RolloutAction struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// PauseRollout pauses a running rollout (TypePauseRollout).
type PauseRollout RolloutAction

// ResumeRollout resumes a paused rollout (TypeResumeRollout).
type ResumeRollout RolloutAction

// AbortRollout aborts a rollout (TypeAbortRollout).
type AbortRollout RolloutAction

// NewRolloutAction returns the payload of rollout action t (pause, resume
// or abort) for a; nil for any other t.
func NewRolloutAction(t Type, a RolloutAction) any {
	switch t {
	case TypePauseRollout:
		return PauseRollout(a)
	case TypeResumeRollout:
		return ResumeRollout(a)
	case TypeAbortRollout:
		return AbortRollout(a)
	}
	return nil
}

func (s *State) pauseRollout(p PauseRollout) Result {
	return s.rolloutAction(RolloutAction(p), TypePauseRollout)
}

func (s *State) resumeRollout(p ResumeRollout) Result {
	return s.rolloutAction(RolloutAction(p), TypeResumeRollout)
}

func (s *State) abortRollout(p AbortRollout) Result {
	return s.rolloutAction(RolloutAction(p), TypeAbortRollout)
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
	return s.startScopedRollout(p, rolloutScope{})
}

// rolloutScope limits a rollout a train starts: to one tier (scope),
// and for ScopeStaging to the train's staging datacenters.
type rolloutScope struct {
	scope   string
	staging []string
	train   string
}

// startScopedRollout is startRollout limited to sc (the zero scope: every
// tier, as an operator's rollout).
func (s *State) startScopedRollout(p StartRollout, sc rolloutScope) Result {
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
	rej, rejected := rel.Rejected[rel.Line]
	if rejected && !p.Force {
		return refused(wire.KindConflict, "release %s is rejected for line %s (rollout %s: %s); only a forced rollout with a reason may start it",
			rel.ID, rel.Line, rej.Rollout, rej.Reason)
	}
	if rejected && strings.TrimSpace(p.Reason) == "" {
		return refused(wire.KindInvalidRequest, "a forced rollout of rejected release %s needs a reason (it is recorded in the event log)", rel.ID)
	}
	fracs, refusal := waveFractions(p.Waves)
	if refusal.Err != nil {
		return refusal
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

	size := map[string]int{}
	tiers := map[string]string{}
	names := sortedKeys(s.Datacenters)
	for _, name := range names {
		size[name] = len(s.lineHosts(name, rel.Line))
		tiers[name] = s.Datacenters[name].Tier
	}
	var (
		waves   []Wave
		skipped []string
	)
	if sc.scope == "" {
		waves, skipped, refusal = planWaves(names, tiers, size, rel, p, fracs)
	} else {
		waves, refusal = planScopedWaves(names, tiers, size, rel, p, fracs, sc)
	}
	if refusal.Err != nil {
		return refusal
	}
	r.Waves, r.Scope, r.Train = waves, sc.scope, sc.train
	// A newer rollout of the line supersedes a running one (of the same
	// tier, for a train's: the train's staging, control and edge
	// rollouts run side by side on disjoint datacenters).
	var touched []string
	for _, id := range sortedKeys(s.Rollouts) {
		if o := s.Rollouts[id]; o.Line == rel.Line && (o.State == RolloutRunning || o.State == RolloutPaused) &&
			(sc.scope == "" || o.Scope == "" || o.Scope == sc.scope) {
			touched = append(touched, o.Release)
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
	if rejected {
		msg += fmt.Sprintf("; FORCED although rejected for line %s by rollout %s (%s)", rel.Line, rej.Rollout, rej.Reason)
	}
	if len(skipped) > 0 {
		msg += "; FORCED with " + strings.Join(skipped, " and ")
	}
	if p.Reason != "" {
		msg += "; reason: " + p.Reason
	}
	s.event("rollout_started", "", "", "%s", msg)
	s.advanceRollout(r, Timing{})
	for _, id := range touched {
		s.refreshRelease(id)
	}
	return Result{}
}

// planWaves plans a rollout of release rel (request p, wave fractions
// fracs) through the datacenters names (sorted), of tiers tiers, with
// size[name] agent hosts of the release's line each: its waves and the
// gates it skips, or its refusal.
func planWaves(names []string, tiers map[string]string, size map[string]int, rel *Release, p StartRollout, fracs []float64) (waves []Wave, skipped []string, refusal Result) {
	// Group the datacenters that have hosts of the line by tier.
	var staging, control, edge []string
	for _, name := range names {
		if size[name] == 0 {
			continue
		}
		switch tiers[name] {
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
		if size[c] == 0 || tiers[c] != TierEdge {
			return nil, nil, refused(wire.KindInvalidRequest, "canary %q is not an edge datacenter with hosts of line %s", c, rel.Line)
		}
	}
	if len(canary) == 0 && len(edge) > 0 {
		canary = edge[:1]
	}
	rest := slices.DeleteFunc(slices.Clone(edge), func(d string) bool { return slices.Contains(canary, d) })

	// Every release meets staging and a canary before the edge: a line
	// without hosts in either skips that gate only when forced, with a
	// reason (recorded in the event log).
	if len(staging) == 0 {
		skipped = append(skipped, fmt.Sprintf("no staging wave (no staging datacenter has hosts of line %s)", rel.Line))
	}
	if len(canary) == 0 {
		skipped = append(skipped, fmt.Sprintf("no canary wave (no edge datacenter has hosts of line %s)", rel.Line))
	}
	if len(staging)+len(control)+len(edge) == 0 {
		return nil, nil, refused(wire.KindInvalidRequest, "no datacenter has hosts of line %s", rel.Line)
	}
	if len(skipped) > 0 {
		switch {
		case !p.Force:
			return nil, nil, refused(wire.KindConflict, "rollout of %s: %s; only a forced rollout with a reason may skip that gate", rel.ID, strings.Join(skipped, ", "))
		case strings.TrimSpace(p.Reason) == "":
			return nil, nil, refused(wire.KindInvalidRequest, "a forced rollout of %s without %s needs a reason (it is recorded in the event log)", rel.ID, strings.Join(skipped, ", "))
		}
	}
	if len(staging) > 0 {
		waves = append(waves, Wave{Name: WaveStaging, Datacenters: staging, Gates: true})
	}
	if len(control) > 0 {
		waves = append(waves, Wave{Name: WaveControl, Datacenters: control})
	}
	if len(canary) > 0 {
		waves = append(waves, Wave{Name: WaveCanary, Datacenters: slices.Clone(canary), Gates: true})
	}
	done := 0
	for _, f := range fracs {
		upto := int(math.Ceil(f * float64(len(rest))))
		if upto <= done {
			continue
		}
		waves = append(waves, Wave{Name: fmt.Sprintf("edge-%d%%", int(math.Round(f*100))), Datacenters: rest[done:upto], Gates: true})
		done = upto
	}
	return waves, skipped, Result{}
}

// PlanDC is one datacenter as PlanWaves sees it: its name, tier and the
// number of its agent hosts on the rollout's line.
type PlanDC struct {
	Name, Tier string
	Hosts      int
}

// PlanWaves returns the waves StartRollout p of release rel would plan
// for the datacenters dcs, as the state machine plans them, without
// registering their hosts; or the state machine's refusal of the plan
// (the checks of the release and the rollout's id and budget are left to
// StartRollout).
func PlanWaves(dcs []PlanDC, rel Release, p StartRollout) ([]Wave, error) {
	fracs, res := waveFractions(p.Waves)
	if res.Err != nil {
		return nil, fmt.Errorf("plan waves: %s: %s", res.Err.Kind, res.Err.Value)
	}
	size := make(map[string]int, len(dcs))
	tiers := make(map[string]string, len(dcs))
	names := make([]string, 0, len(dcs))
	for _, d := range dcs {
		names = append(names, d.Name)
		size[d.Name], tiers[d.Name] = d.Hosts, d.Tier
	}
	slices.Sort(names)
	waves, _, res := planWaves(names, tiers, size, &rel, p, fracs)
	if res.Err != nil {
		return nil, fmt.Errorf("plan waves: %s: %s", res.Err.Kind, res.Err.Value)
	}
	return waves, nil
}

// waveFractions returns the cumulative edge wave fractions of a rollout
// request (DefaultWaves when none), ending in 1, or their refusal.
func waveFractions(fracs []float64) ([]float64, Result) {
	if len(fracs) == 0 {
		fracs = DefaultWaves
	}
	for i, f := range fracs {
		if f <= 0 || f > 1 || (i > 0 && f <= fracs[i-1]) {
			return nil, refused(wire.KindInvalidRequest, "waves: %v: want increasing fractions in (0, 1]", fracs)
		}
	}
	if fracs[len(fracs)-1] != 1 {
		fracs = append(slices.Clone(fracs), 1)
	}
	return fracs, Result{}
}

func (s *State) rolloutAction(p RolloutAction, t Type) Result {
	r := s.Rollouts[p.ID]
	if r == nil {
		return refused(wire.KindNotFound, "unknown rollout %q", p.ID)
	}
	switch {
	case r.State == RolloutDone || r.State == RolloutAborted || r.State == RolloutFailed:
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
			s.resumeWaves(r)
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
		s.refreshRelease(r.Release)
	}
	return Result{}
}

// resumeWaves restarts the soak of r's staging and canary waves that were
// soaking when it was paused (a soak counts running time only: nothing
// advanced the rollout while paused), and resets the counted failures of
// its unfinished waves: the operator who resumes has looked at them.
func (s *State) resumeWaves(r *Rollout) {
	for i := range r.Waves {
		w := &r.Waves[i]
		if w.Started.IsZero() {
			continue
		}
		if strictWave(w) && !w.Completed.IsZero() && w.Passed.IsZero() {
			w.Completed = s.Now
			s.event("rollout_soak_restarted", "", "", "rollout %s: wave %s soak restarted on resume; soaking until %s", r.ID, w.Name, s.Now.Add(r.Soak).Format(time.RFC3339))
		}
		if !strictWave(w) && w.Completed.IsZero() && w.Failures > 0 {
			s.event("rollout_failures_reset", "", "", "rollout %s: wave %s: %d counted unhealthy reports reset on resume", r.ID, w.Name, w.Failures)
			w.Failures = 0
		}
	}
}

// WaveProgress counts a wave's hosts of the rollout's line.
type WaveProgress struct {
	// Hosts counts alive hosts; the others wait until they come back.
	Hosts int
	// Done hosts run the release's kernel and are not unhealthy.
	Done int
	// Failed hosts reported unhealthy (or are in phase failed) and have
	// not reported healthy since. The failure budget counts reports
	// instead (Wave.Failures).
	Failed int
	// Phases counts the not-done hosts by phase.
	Phases map[string]int
}

// Progress returns the progress of the rollout's hosts in datacenters dcs.
func (s *State) Progress(r *Rollout, dcs []string, aliveWithin time.Duration) WaveProgress {
	return s.progress(r, dcs, aliveWithin, false)
}

// phaseSilent counts, in WaveProgress.Phases, the silent hosts that hold
// a wave during the leader grace.
const phaseSilent = "silent"

// progress is Progress; with holdSilent (the leader grace) a silent host
// holds the wave back instead of being left out.
func (s *State) progress(r *Rollout, dcs []string, aliveWithin time.Duration, holdSilent bool) WaveProgress {
	wp := WaveProgress{Phases: map[string]int{}}
	for _, name := range dcs {
		for _, h := range s.lineHosts(name, r.Line) {
			alive := s.alive(h, s.Now, gateWindow(aliveWithin))
			switch {
			case h.Unhealthy || h.Phase == wire.PhaseFailed:
				wp.Hosts++
				wp.Failed++
			case (!alive || s.unheardThisTerm(h)) && holdSilent:
				wp.Hosts++
				wp.Phases[phaseSilent]++
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

// advanceRollouts moves every running rollout on and checks the gates of
// the paused ones (from Tick). The first tick of a new leader term starts
// the leader grace.
func (s *State) advanceRollouts(p Tick) {
	if p.Term != 0 && p.Term != s.Grace.Term {
		s.Grace = LeaderGrace{Term: p.Term, Since: s.Now}
		if p.AliveWithin > 0 && s.activeRollouts() {
			s.event("leader_grace", "", "", "leader term %d: silent hosts fail no rollout gate until %s (they hold their waves)", p.Term, s.Now.Add(s.graceWindow(p.Timing)).Format(time.RFC3339))
		}
	}
	for _, id := range sortedKeys(s.Rollouts) {
		switch r := s.Rollouts[id]; r.State {
		case RolloutRunning:
			s.advanceRollout(r, p.Timing)
		case RolloutPaused:
			// A paused rollout is still watched: a failure while paused
			// fails it.
			s.checkGates(r, p.Timing)
		}
	}
}

// activeRollouts reports whether a rollout is running or paused.
func (s *State) activeRollouts() bool {
	for _, r := range s.Rollouts {
		if r.State == RolloutRunning || r.State == RolloutPaused {
			return true
		}
	}
	return false
}

// checkGates fails r when one of its started staging or canary waves
// fails (see gateFailure and gateMembers) and reports whether it did;
// held reports whether a silent host (in the leader grace) keeps a
// soaking wave from passing.
func (s *State) checkGates(r *Rollout, t Timing) (failed bool, held map[int]bool) {
	held = map[int]bool{}
	for i := range r.Waves {
		w := &r.Waves[i]
		if !strictWave(w) || w.Started.IsZero() {
			continue
		}
		why := s.gateMembers(r, w)
		if why == "" {
			var hold bool
			why, hold = s.gateFailure(r, w, t)
			held[i] = hold
		}
		if why != "" {
			s.failRollout(r, fmt.Sprintf("wave %s: %s", w.Name, why))
			return true, held
		}
	}
	return false, held
}

// recordMembers adds the hosts of r's line in strict wave w's datacenters
// that are not members yet.
func (s *State) recordMembers(r *Rollout, w *Wave) {
	for _, name := range w.Datacenters {
		for _, h := range s.lineHosts(name, r.Line) {
			if _, ok := w.Members[h.ID]; !ok {
				if w.Members == nil {
					w.Members = map[string]time.Time{}
				}
				w.Members[h.ID] = h.Registered
			}
		}
	}
}

// gateMembers returns why strict wave w fails because a member left it
// before it passed — removed or expired (or removed and registered
// again), moved to another datacenter, or off the rollout's line — or "";
// then it records the hosts that joined w's datacenters since.
func (s *State) gateMembers(r *Rollout, w *Wave) string {
	if !w.Passed.IsZero() {
		return ""
	}
	for _, id := range sortedKeys(w.Members) {
		h := s.Hosts[id]
		switch {
		case h == nil:
			return fmt.Sprintf("host %s left the wave before it passed: removed or expired", id)
		case !h.Registered.Equal(w.Members[id]):
			return fmt.Sprintf("host %s left the wave before it passed: removed and registered again at %s", id, h.Registered.Format(time.RFC3339))
		case !slices.Contains(w.Datacenters, h.Datacenter):
			return fmt.Sprintf("host %s left the wave before it passed: moved to datacenter %s", id, h.Datacenter)
		case h.FleetLock || h.KernelLine != r.Line:
			return fmt.Sprintf("host %s left the wave before it passed: no longer reports line %s", id, r.Line)
		}
	}
	s.recordMembers(r, w)
	return ""
}

// countWaveFailure counts an unhealthy report of h that counted against
// its datacenter's failure budget against the started wave containing the
// datacenter in every running or paused rollout of h's line.
func (s *State) countWaveFailure(h *Host) {
	for _, id := range sortedKeys(s.Rollouts) {
		r := s.Rollouts[id]
		if r.Line != h.KernelLine || (r.State != RolloutRunning && r.State != RolloutPaused) {
			continue
		}
		for i := range r.Waves {
			if w := &r.Waves[i]; !w.Started.IsZero() && slices.Contains(w.Datacenters, h.Datacenter) {
				w.Failures++
				break
			}
		}
	}
}

// strictWave reports whether w is a staging or canary wave: it passes
// only when every host of the line in it is healthy on the release's
// kernel through the soak, and any failure in it fails the rollout (the
// failure budget applies to the edge waves only).
func strictWave(w *Wave) bool { return w.Name == WaveStaging || w.Name == WaveCanary }

// failurePhase reports whether an agent in phase has found its new kernel
// bad (or is out of service after finding it bad).
func failurePhase(phase string) bool {
	switch phase {
	case wire.PhaseUnhealthy, wire.PhaseWrongKernel, wire.PhaseRollback, wire.PhaseFailed:
		return true
	}
	return false
}

// sortedLineHosts returns lineHosts ordered by id (reasons and events must
// be the same on every replica).
func (s *State) sortedLineHosts(dc, line string) []*Host {
	hs := s.lineHosts(dc, line)
	slices.SortFunc(hs, func(a, b *Host) int { return cmp.Compare(a.ID, b.ID) })
	return hs
}

// gateFailure returns why the started strict wave w fails, or "". A
// failure is an unhealthy report or failure phase, a holder lost mid-reboot
// (silent past its reboot deadline), a host silent on the release's kernel,
// and, once every host was healthy (the soak), a host that is silent or not
// on the release's kernel any more. A host that is silent on its old
// kernel without a slot does not fail the wave, but it never passes it.
// In the leader grace silence fails nothing; held reports whether a host
// of a soaking wave is silent: the wave must not pass then.
func (s *State) gateFailure(r *Rollout, w *Wave, t Timing) (why string, held bool) {
	soaking := !w.Completed.IsZero() && w.Passed.IsZero()
	grace := s.inGrace(t)
	for _, name := range w.Datacenters {
		dc := s.Datacenters[name]
		for _, h := range s.sortedLineHosts(name, r.Line) {
			var sl *Slot
			if dc != nil {
				sl = dc.Slots[h.ID]
			}
			alive := s.alive(h, s.Now, gateWindow(t.AliveWithin))
			silent := !alive && sl == nil && (soaking || h.Kernel == r.Kernel)
			held = held || (soaking && (!alive || ((grace || s.unsettled()) && s.unheardThisTerm(h))))
			switch {
			case h.Unhealthy:
				return fmt.Sprintf("host %s in %s reported unhealthy on %s", h.ID, name, orDefault(h.Kernel, "its kernel")), held
			case failurePhase(h.Phase):
				return fmt.Sprintf("host %s in %s is %s on %s", h.ID, name, h.Phase, orDefault(h.Kernel, "its kernel")), held
			case sl != nil && sl.Lost:
				return fmt.Sprintf("host %s in %s was lost mid-reboot (silent past its reboot deadline)", h.ID, name), held
			case silent && grace:
				// Silent since before the leader's term, perhaps only
				// because there was no leader: wait.
			case silent:
				if !s.LivenessByFlag {
					return fmt.Sprintf("host %s in %s went silent on %s (last heartbeat %s)", h.ID, name, orDefault(h.Kernel, "its kernel"), h.LastHeartbeat.Format(time.RFC3339)), held
				}
				return fmt.Sprintf("host %s in %s went silent on %s (marked silent %s)", h.ID, name, orDefault(h.Kernel, "its kernel"), h.SilentSince.Format(time.RFC3339)), held
			case soaking && h.Kernel != r.Kernel:
				return fmt.Sprintf("host %s in %s left %s during the soak (now on %s, phase %s)", h.ID, name, r.Kernel, orDefault(h.Kernel, "an unknown kernel"), orDefault(h.Phase, "unknown")), held
			}
		}
	}
	return "", held
}

// gateHealthy reports whether every host of the line in strict wave w is
// alive, on the release's kernel and healthy, and there is at least one.
func (s *State) gateHealthy(r *Rollout, w *Wave, t Timing) (int, bool) {
	n := 0
	for _, name := range w.Datacenters {
		for _, h := range s.lineHosts(name, r.Line) {
			alive := s.alive(h, s.Now, gateWindow(t.AliveWithin))
			if !alive || h.Unhealthy || h.Kernel != r.Kernel || (h.Phase != wire.PhaseIdle && h.Phase != wire.PhaseHealthy && h.Phase != "") {
				return n, false
			}
			n++
		}
	}
	return n, n > 0
}

// failRollout stops r for good: state failed with the reason, the targets
// it set withdrawn, and its release rejected for the line.
func (s *State) failRollout(r *Rollout, reason string) {
	r.State, r.PauseReason = RolloutFailed, reason
	for _, name := range sortedKeys(s.Datacenters) {
		dc := s.Datacenters[name]
		if tg, ok := dc.Targets[r.Line]; ok && tg.Rollout == r.ID {
			targets := map[string]Target{}
			for l, x := range dc.Targets {
				if l != r.Line {
					targets[l] = x
				}
			}
			dc.Targets = targets
		}
	}
	s.event("rollout_failed", "", "", "rollout %s of %s FAILED: %s", r.ID, r.Release, reason)
	if rel := s.Releases[r.Release]; rel != nil {
		rejected := make(map[string]Rejection, len(rel.Rejected)+1)
		for l, x := range rel.Rejected {
			rejected[l] = x
		}
		rejected[r.Line] = Rejection{Rollout: r.ID, Reason: reason, At: s.Now}
		rel.Rejected = rejected
		s.event("release_rejected", "", "", "release %s rejected for line %s: %s", rel.ID, r.Line, reason)
		s.refreshRelease(rel.ID)
	}
}

// hostUnhealthy fails, at once, every running or paused rollout of h's
// line with a started staging or canary wave in h's datacenter: an
// unhealthy report there is never waited out (nor can a later heartbeat
// that clears the mark hide it from the next tick).
func (s *State) hostUnhealthy(h *Host, kernel, detail string) {
	for _, id := range sortedKeys(s.Rollouts) {
		r := s.Rollouts[id]
		if r.Line != h.KernelLine || (r.State != RolloutRunning && r.State != RolloutPaused) {
			continue
		}
		for i := range r.Waves {
			w := &r.Waves[i]
			if strictWave(w) && !w.Started.IsZero() && slices.Contains(w.Datacenters, h.Datacenter) {
				s.failRollout(r, fmt.Sprintf("wave %s: host %s in %s reported unhealthy on %s: %s", w.Name, h.ID, h.Datacenter, orDefault(kernel, "its kernel"), detail))
				break
			}
		}
	}
}

// advanceRollout fails the rollout when a staging or canary host fails,
// completes waves whose hosts are done, passes staging and canary waves
// that stayed healthy through the soak, pauses on an edge wave over its
// failure budget, and starts the waves whose gates are open.
func (s *State) advanceRollout(r *Rollout, t Timing) {
	defer s.refreshRelease(r.Release)
	failed, held := s.checkGates(r, t)
	if failed {
		return
	}
	grace := s.inGrace(t)
	gatesOpen := true // every earlier gating wave completed (strict ones passed)
	var edgeStart time.Time
	edgeIndex := 0
	edgeWaves := 0
	for _, w := range r.Waves {
		if w.Name != WaveStaging && w.Name != WaveControl {
			edgeWaves++
		}
	}
	for i := range r.Waves {
		w := &r.Waves[i]
		isEdge := w.Name != WaveStaging && w.Name != WaveControl
		strict := strictWave(w)
		if !w.Started.IsZero() {
			switch {
			case strict && w.Completed.IsZero():
				if n, ok := s.gateHealthy(r, w, t); ok {
					w.Completed = s.Now
					s.event("rollout_wave_done", "", "", "rollout %s: wave %s healthy (%d hosts on %s); soaking until %s", r.ID, w.Name, n, r.Kernel, s.Now.Add(r.Soak).Format(time.RFC3339))
				}
			case w.Completed.IsZero():
				wp := s.progress(r, w.Datacenters, t.AliveWithin, grace || s.unsettled())
				if w.Failures > r.Budget {
					r.State = RolloutPaused
					r.PauseReason = fmt.Sprintf("wave %s: %d unhealthy reports counted, over the wave's failure budget of %d", w.Name, w.Failures, r.Budget)
					s.event("rollout_paused", "", "", "rollout %s paused: %s", r.ID, r.PauseReason)
					return
				}
				if wp.Done+wp.Failed == wp.Hosts {
					w.Completed = s.Now
					s.event("rollout_wave_done", "", "", "rollout %s: wave %s done (%d hosts on %s, %d failed)", r.ID, w.Name, wp.Done, r.Kernel, wp.Failed)
				}
			}
			if strict && !w.Completed.IsZero() && w.Passed.IsZero() && !held[i] && !s.Now.Before(w.Completed.Add(r.Soak)) {
				// gateFailure found nothing at this very time (and no
				// silent host held the wave): every host stayed healthy
				// through the soak.
				w.Passed = s.Now
				s.event("rollout_wave_passed", "", "", "rollout %s: wave %s passed: every host healthy on %s through the %s soak", r.ID, w.Name, r.Kernel, r.Soak)
			}
			if isEdge {
				if edgeIndex == 0 {
					edgeStart = w.Started
				}
				edgeIndex++
			}
			if w.Gates && (w.Completed.IsZero() || (strict && w.Passed.IsZero())) {
				gatesOpen = false
			}
			continue
		}
		// Not started: may it start now?
		if !gatesOpen {
			break
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
		if strict {
			s.recordMembers(r, w)
		}
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
		all = all && !w.Completed.IsZero() && (!strictWave(&w) || !w.Passed.IsZero())
	}
	if all {
		r.State = RolloutDone
		s.event("rollout_done", "", "", "rollout %s of %s done", r.ID, r.Release)
		if rel := s.Releases[r.Release]; rel != nil {
			if _, ok := rel.Rejected[r.Line]; ok {
				rejected := maps.Clone(rel.Rejected)
				delete(rejected, r.Line)
				if len(rejected) == 0 {
					rejected = nil
				}
				rel.Rejected = rejected
				s.event("release_accepted", "", "", "release %s is no longer rejected for line %s: rollout %s passed every gate", rel.ID, r.Line, r.ID)
			}
		}
	}
}
