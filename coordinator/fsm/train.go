package fsm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// The release train (FormatV5). A Train per kernel line takes every new
// candidate release of the line through the line's staging datacenters
// (a rollout of scope ScopeStaging); a release whose staging wave passes
// is validated, and the control tier takes it at once (ScopeControl); the
// edge train departs on the line's cadence with the newest validated
// release not yet on the edge (ScopeEdge: canary, then growing waves paced
// over the edge cycle). The leader's driver (package coordinator/train)
// decides the steps and proposes them as TrainStep commands; every step
// is checked again here, against the command's time, so a step the state
// no longer allows is refused: a hold, a freeze, a rejected release, a
// downgrade or an edge train still in flight stops it. Release states are
// derived inside apply from the release's rollouts (refreshRelease), so
// no transition depends on a leader step that might be lost.

// ReleaseSuperseded marks a candidate the train never staged: a newer
// build of its line arrived before its staging started (terminal).
const ReleaseSuperseded = "superseded"

// Rollout scopes of a train's rollouts (Rollout.Scope).
const (
	ScopeStaging = "staging"
	ScopeControl = "control"
	ScopeEdge    = "edge"
)

// Train step actions (TrainStep.Action).
const (
	// StepStage starts a staging rollout of a candidate.
	StepStage = "stage"
	// StepSupersede marks an unstaged candidate superseded by a newer one.
	StepSupersede = "supersede"
	// StepControl starts a control-tier rollout of a validated release.
	StepControl = "control"
	// StepDepart departs the edge train with a validated release.
	StepDepart = "depart"
	// StepSkip records a departure that did not happen, with its reason.
	StepSkip = "skip"
)

// Bounds of a train's settings.
const (
	MinTrainSoak  = time.Minute
	MaxTrainSoak  = 90 * 24 * time.Hour
	MaxEdgeCycle  = 52 * 7 * 24 * time.Hour
	MaxFreezes    = 32
	MaxTrainNotes = 512
	week          = 7 * 24 * time.Hour
)

// Train is the release train of one kernel line.
type Train struct {
	Line string `json:"line"`
	// Staging are the staging-tier datacenters that stage candidates.
	Staging     []string      `json:"staging"`
	StagingSoak time.Duration `json:"staging_soak"`
	// ControlSoak is the soak of the control rollouts and of the edge
	// train's canary wave.
	ControlSoak time.Duration `json:"control_soak"`
	// EdgeCycle is both the cadence of the departures (whole weeks) and
	// the time an edge train's waves are paced over.
	EdgeCycle time.Duration `json:"edge_cycle"`
	// Departure is the departure weekday, time and zone ("Tue 09:00
	// UTC"); NextDeparture is the next departure instant, computed by the
	// leader from it (time zones are resolved outside apply, so every
	// replica applies the same instant).
	Departure     string    `json:"departure"`
	NextDeparture time.Time `json:"next_departure"`
	// Freezes are windows in which no departure and no control or edge
	// rollout starts.
	Freezes []Freeze `json:"freezes,omitempty"`
	Held    bool     `json:"held,omitempty"`
	// HoldReason is the operator's reason for the hold.
	HoldReason string    `json:"hold_reason,omitempty"`
	HeldSince  time.Time `json:"held_since,omitzero"`
	// SkipNext skips the next departure (SkipReason says why).
	SkipNext   bool   `json:"skip_next,omitempty"`
	SkipReason string `json:"skip_reason,omitempty"`
	// EdgeRelease is the release the last edge train took (EdgeRollout
	// its rollout, Departed when); ControlRelease the control tier's.
	EdgeRelease    string    `json:"edge_release,omitempty"`
	EdgeRollout    string    `json:"edge_rollout,omitempty"`
	Departed       time.Time `json:"departed,omitzero"`
	ControlRelease string    `json:"control_release,omitempty"`
	// Seq numbers the train's rollouts (train-LINE-SCOPE-SEQ).
	Seq     uint64    `json:"seq"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Freeze is a window [From, To) in which the train departs nothing and
// starts no control or edge rollout; Spec is the operator's form
// ("2026-12-20..2027-01-04", dates inclusive in the departure's zone).
type Freeze struct {
	Spec string    `json:"spec"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// FrozenAt returns the freeze of t containing at, if any.
func (t *Train) FrozenAt(at time.Time) (Freeze, bool) {
	for _, f := range t.Freezes {
		if !at.Before(f.From) && at.Before(f.To) {
			return f, true
		}
	}
	return Freeze{}, false
}

// SetTrain creates or changes the train of Line. The API resolves the
// departure and the freezes in their zone (see package coordinator/train)
// and NextDeparture, the first departure after the request; a change that
// keeps Departure and EdgeCycle keeps the train's next departure.
type SetTrain struct {
	Line          string        `json:"line"`
	Staging       []string      `json:"staging"`
	StagingSoak   time.Duration `json:"staging_soak"`
	ControlSoak   time.Duration `json:"control_soak"`
	EdgeCycle     time.Duration `json:"edge_cycle"`
	Departure     string        `json:"departure"`
	NextDeparture time.Time     `json:"next_departure"`
	Freezes       []Freeze      `json:"freezes,omitempty"`
}

// TrainAction is the body of the operator's train actions.
type TrainAction struct {
	Line   string `json:"line"`
	Reason string `json:"reason,omitempty"`
}

// HoldTrain stops every automatic step of a line's train.
type HoldTrain TrainAction

// ResumeTrain ends a hold.
type ResumeTrain TrainAction

// SkipTrain skips the next departure of a line's train only.
type SkipTrain TrainAction

// ExpediteTrain departs a validated release now, outside the cadence (an
// expedited rollout: no pacing over the cycle, maintenance windows
// ignored); Reason is required.
type ExpediteTrain struct {
	Line    string `json:"line"`
	Release string `json:"release"`
	Reason  string `json:"reason"`
}

// RejectRelease is an operator's rejection of a release for its line: it
// never rolls again (unless forced), and its running rollouts are
// aborted.
type RejectRelease struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// TrainStep is one automatic step of a train, decided by the leader's
// driver and checked again when applied.
type TrainStep struct {
	Line    string `json:"line"`
	Action  string `json:"action"`
	Release string `json:"release,omitempty"`
	// By is the newer release that supersedes Release.
	By string `json:"by,omitempty"`
	// Due is the departure a depart or skip step takes (it must be the
	// train's NextDeparture); Next the departure after it, computed by the
	// leader in the departure's zone.
	Due  time.Time `json:"due,omitzero"`
	Next time.Time `json:"next,omitzero"`
	// Reason says why (a skip's reason is recorded verbatim).
	Reason string `json:"reason,omitempty"`
}

// The train command types.
const (
	TypeSetTrain      Type = "set_train"
	TypeHoldTrain     Type = "hold_train"
	TypeResumeTrain   Type = "resume_train"
	TypeSkipTrain     Type = "skip_train"
	TypeExpediteTrain Type = "expedite_train"
	TypeTrainStep     Type = "train_step"
	TypeRejectRelease Type = "reject_release"
)

// ValidateSetTrain checks a SetTrain against the state: the line, the
// staging datacenters (they exist and are of the staging tier), the
// durations and the freezes. The API and apply both call it.
func (s *State) ValidateSetTrain(p SetTrain) error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	// The name rule, not wire.ValidLine: format-v5 logs hold trains of
	// lines such as "lts" and must replay as they applied. New trains
	// are made by train.SetTrain, which takes kernel lines only.
	if !ValidName(p.Line) || len(p.Line) > 32 {
		bad("invalid line %q", p.Line)
	}
	if len(p.Staging) == 0 {
		bad("no staging datacenter (--staging)")
	}
	seen := map[string]bool{}
	for _, name := range p.Staging {
		dc := s.Datacenters[name]
		switch {
		case seen[name]:
			bad("staging datacenter %q listed twice", name)
		case dc == nil:
			bad("staging datacenter %q does not exist", name)
		case dc.Tier != TierStaging:
			bad("datacenter %q is of tier %s, not %s", name, orDefault(dc.Tier, TierEdge), TierStaging)
		}
		seen[name] = true
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"staging soak", p.StagingSoak}, {"control soak", p.ControlSoak}} {
		if d.v < MinTrainSoak || d.v > MaxTrainSoak {
			bad("%s %s: want %s to %s", d.name, d.v, MinTrainSoak, MaxTrainSoak)
		}
	}
	if p.EdgeCycle < week || p.EdgeCycle > MaxEdgeCycle || p.EdgeCycle%week != 0 {
		bad("edge cycle %s: want whole weeks (departures fall on one weekday), 1 to 52", p.EdgeCycle)
	}
	if strings.TrimSpace(p.Departure) == "" || p.NextDeparture.IsZero() {
		bad("no departure")
	}
	if len(p.Freezes) > MaxFreezes {
		bad("%d freezes: at most %d", len(p.Freezes), MaxFreezes)
	}
	for i, f := range p.Freezes {
		if !f.From.Before(f.To) {
			bad("freeze %s ends before it starts", f.Spec)
		}
		if i > 0 && f.From.Before(p.Freezes[i-1].To) {
			bad("freeze %s starts before freeze %s ends: list them in order, not overlapping", f.Spec, p.Freezes[i-1].Spec)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("train %s: %s", p.Line, strings.Join(errs, "; "))
	}
	return nil
}

func (s *State) setTrain(p SetTrain) Result {
	if err := s.ValidateSetTrain(p); err != nil {
		return refused(wire.KindInvalidRequest, "%s", err.Error())
	}
	t := s.Trains[p.Line]
	verb := "changed"
	if t == nil {
		t = &Train{Line: p.Line, Created: s.Now}
		verb = "set"
	}
	if t.Departure != p.Departure || t.EdgeCycle != p.EdgeCycle || t.NextDeparture.IsZero() {
		t.NextDeparture = p.NextDeparture.UTC()
	}
	t.Staging = slices.Clone(p.Staging)
	t.StagingSoak, t.ControlSoak, t.EdgeCycle, t.Departure = p.StagingSoak, p.ControlSoak, p.EdgeCycle, p.Departure
	t.Freezes = slices.Clone(p.Freezes)
	t.Updated = s.Now
	trains := maps.Clone(s.Trains)
	if trains == nil {
		trains = map[string]*Train{}
	}
	trains[p.Line] = t
	s.Trains = trains
	var fz []string
	for _, f := range t.Freezes {
		fz = append(fz, f.Spec)
	}
	s.event("train_set", "", "", "train %s %s: staging %s (soak %s), control soak %s, edge every %s departing %s, next departure %s%s",
		p.Line, verb, strings.Join(t.Staging, ","), t.StagingSoak, t.ControlSoak, t.EdgeCycle, t.Departure,
		t.NextDeparture.Format(time.RFC3339), trainNote(strings.Join(fz, ", "), "; freezes "))
	return Result{}
}

// trainNote returns prefix+v, or "" when v is empty.
func trainNote(v, prefix string) string {
	if v == "" {
		return ""
	}
	return prefix + v
}

// trainFor returns the train of line or its refusal.
func (s *State) trainFor(line string) (*Train, Result) {
	t := s.Trains[line]
	if t == nil {
		return nil, refused(wire.KindNotFound, "no train for line %q (krollctl train set)", line)
	}
	return t, Result{}
}

func validReason(reason string) Result {
	switch {
	case strings.TrimSpace(reason) == "":
		return refused(wire.KindInvalidRequest, "a reason is required (it is recorded in the event log)")
	case len(reason) > MaxTrainNotes:
		return refused(wire.KindInvalidRequest, "reason longer than %d bytes", MaxTrainNotes)
	}
	return Result{}
}

func (s *State) holdTrain(p HoldTrain) Result {
	t, res := s.trainFor(p.Line)
	if res.Err != nil {
		return res
	}
	if res := validReason(p.Reason); res.Err != nil {
		return res
	}
	if t.Held {
		return refused(wire.KindConflict, "train %s is held since %s: %s", t.Line, t.HeldSince.Format(time.RFC3339), t.HoldReason)
	}
	t.Held, t.HoldReason, t.HeldSince, t.Updated = true, p.Reason, s.Now, s.Now
	s.event("train_held", "", "", "train %s held: %s (no automatic step until resumed; running rollouts go on)", t.Line, p.Reason)
	return Result{}
}

func (s *State) resumeTrain(p ResumeTrain) Result {
	t, res := s.trainFor(p.Line)
	if res.Err != nil {
		return res
	}
	if res := validReason(p.Reason); res.Err != nil {
		return res
	}
	if !t.Held {
		return refused(wire.KindConflict, "train %s is not held", t.Line)
	}
	t.Held, t.HoldReason, t.HeldSince, t.Updated = false, "", time.Time{}, s.Now
	s.event("train_resumed", "", "", "train %s resumed: %s; next departure %s", t.Line, p.Reason, t.NextDeparture.Format(time.RFC3339))
	return Result{}
}

func (s *State) skipTrain(p SkipTrain) Result {
	t, res := s.trainFor(p.Line)
	if res.Err != nil {
		return res
	}
	if res := validReason(p.Reason); res.Err != nil {
		return res
	}
	if t.SkipNext {
		return refused(wire.KindConflict, "train %s already skips its next departure (%s): %s", t.Line, t.NextDeparture.Format(time.RFC3339), t.SkipReason)
	}
	t.SkipNext, t.SkipReason, t.Updated = true, p.Reason, s.Now
	s.event("train_skip", "", "", "train %s: the departure of %s will be skipped: %s", t.Line, t.NextDeparture.Format(time.RFC3339), p.Reason)
	return Result{}
}

func (s *State) rejectRelease(p RejectRelease) Result {
	rel := s.Releases[p.ID]
	if rel == nil {
		return refused(wire.KindNotFound, "unknown release %q", p.ID)
	}
	if res := validReason(p.Reason); res.Err != nil {
		return res
	}
	if rel.State == ReleaseRejected {
		return refused(wire.KindConflict, "release %s is already rejected: %s", rel.ID, rel.StateReason)
	}
	rejected := make(map[string]Rejection, len(rel.Rejected)+1)
	maps.Copy(rejected, rel.Rejected)
	rejected[rel.Line] = Rejection{Reason: "rejected by an operator: " + p.Reason, At: s.Now}
	rel.Rejected = rejected
	s.event("release_rejected", "", "", "release %s rejected for line %s by an operator: %s", rel.ID, rel.Line, p.Reason)
	for _, id := range sortedKeys(s.Rollouts) {
		if r := s.Rollouts[id]; r.Release == rel.ID && (r.State == RolloutRunning || r.State == RolloutPaused) {
			s.rolloutAction(RolloutAction{ID: id, Reason: "release " + rel.ID + " rejected by an operator: " + p.Reason}, TypeAbortRollout)
		}
	}
	s.refreshRelease(rel.ID)
	return Result{}
}

// CompareReleases orders two releases of one line by their kernel builds
// (see kversion.CompareBuild); an order it cannot decide is an error (the
// train then departs neither: it never risks a downgrade).
func CompareReleases(a, b *Release) (int, error) {
	va, err := kversion.ParseBuild(a.KernelVersion, a.UpstreamVersion)
	if err != nil {
		return 0, fmt.Errorf("release %s: %w", a.ID, err)
	}
	vb, err := kversion.ParseBuild(b.KernelVersion, b.UpstreamVersion)
	if err != nil {
		return 0, fmt.Errorf("release %s: %w", b.ID, err)
	}
	return kversion.CompareBuild(va, vb)
}

// EdgeFloor returns the newest release of line the edge runs or was sent
// to (the train's last departure and every edge datacenter's target): a
// departure must be newer than all of them. An undecidable order is an
// error.
func (s *State) EdgeFloor(line string) (*Release, error) {
	var last string
	if t := s.Trains[line]; t != nil {
		last = t.EdgeRelease
	}
	return s.tierFloor(line, TierEdge, last)
}

// ControlFloor returns the newest release of line the control tier runs
// or was sent to (the train's control release and every control
// datacenter's target): a control step must be newer than all of them.
// An undecidable order is an error.
func (s *State) ControlFloor(line string) (*Release, error) {
	var last string
	if t := s.Trains[line]; t != nil {
		last = t.ControlRelease
	}
	return s.tierFloor(line, TierControl, last)
}

// tierFloor is the newest of release last and the targets of line of the
// datacenters of tier (an untiered datacenter is an edge one).
func (s *State) tierFloor(line, tier, last string) (*Release, error) {
	var floor *Release
	consider := func(id string) error {
		rel := s.Releases[id]
		if rel == nil || rel.Line != line {
			return nil
		}
		if floor == nil {
			floor = rel
			return nil
		}
		c, err := CompareReleases(rel, floor)
		if err != nil {
			return err
		}
		if c > 0 {
			floor = rel
		}
		return nil
	}
	if last != "" {
		if err := consider(last); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedKeys(s.Datacenters) {
		dc := s.Datacenters[name]
		if t := orDefault(dc.Tier, TierEdge); t != tier {
			continue
		}
		if tg, ok := dc.Targets[line]; ok {
			if err := consider(tg.Release); err != nil {
				return nil, err
			}
		}
	}
	return floor, nil
}

// ActiveRollouts returns the running or paused rollouts of line, by id.
func (s *State) ActiveRollouts(line string) []*Rollout {
	var out []*Rollout
	for _, id := range sortedKeys(s.Rollouts) {
		if r := s.Rollouts[id]; r.Line == line && (r.State == RolloutRunning || r.State == RolloutPaused) {
			out = append(out, r)
		}
	}
	return out
}

// ManualRollout returns a running or paused rollout of line an operator
// started, if any: the train starts nothing beside it.
func (s *State) ManualRollout(line string) *Rollout {
	for _, r := range s.ActiveRollouts(line) {
		if r.Train == "" {
			return r
		}
	}
	return nil
}

// TrainRollout returns the running or paused rollout of scope the train
// of line started, if any.
func (s *State) TrainRollout(line, scope string) *Rollout {
	for _, r := range s.ActiveRollouts(line) {
		if r.Train == line && r.Scope == scope {
			return r
		}
	}
	return nil
}

// startTrainRollout starts a rollout of rel of scope for train t.
func (s *State) startTrainRollout(t *Train, rel *Release, scope string, p StartRollout) (string, Result) {
	t.Seq++
	p.ID = fmt.Sprintf("train-%s-%s-%d", t.Line, scope, t.Seq)
	p.Release = rel.ID
	res := s.startScopedRollout(p, rolloutScope{scope: scope, staging: t.Staging, train: t.Line})
	if res.Err != nil {
		t.Seq--
	}
	return p.ID, res
}

func (s *State) trainStep(p TrainStep) Result {
	t, res := s.trainFor(p.Line)
	if res.Err != nil {
		return res
	}
	if p.Action == StepSkip {
		return s.trainSkip(t, p)
	}
	if t.Held {
		return refused(wire.KindConflict, "train %s is held: %s", t.Line, t.HoldReason)
	}
	rel := s.Releases[p.Release]
	if rel == nil || rel.Line != t.Line {
		return refused(wire.KindNotFound, "no release %q of line %s", p.Release, t.Line)
	}
	if m := s.ManualRollout(t.Line); m != nil && p.Action != StepSupersede {
		return refused(wire.KindConflict, "train %s: operator rollout %s of the line is %s; the train waits for it", t.Line, m.ID, m.State)
	}
	switch p.Action {
	case StepSupersede:
		return s.trainSupersede(t, rel, p)
	case StepStage:
		return s.trainStage(t, rel)
	case StepControl:
		return s.trainControl(t, rel)
	case StepDepart:
		return s.trainDepart(t, rel, p, false, "")
	}
	return refused(wire.KindInvalidRequest, "unknown train step %q", p.Action)
}

// trainSupersede marks candidate rel, never staged, superseded by p.By, a
// newer release of its line.
func (s *State) trainSupersede(t *Train, rel *Release, p TrainStep) Result {
	by := s.Releases[p.By]
	if by == nil || by.Line != t.Line || by.ID == rel.ID {
		return refused(wire.KindNotFound, "no other release %q of line %s", p.By, t.Line)
	}
	if rel.State != ReleaseCandidate || s.hasRollout(rel.ID) {
		return refused(wire.KindConflict, "release %s is %s, not an unstaged candidate", rel.ID, rel.State)
	}
	if c, err := CompareReleases(by, rel); err != nil || c <= 0 {
		return refused(wire.KindConflict, "release %s is not newer than %s", by.ID, rel.ID)
	}
	rel.State, rel.StateReason = ReleaseSuperseded, fmt.Sprintf("superseded by %s before its staging started", by.ID)
	s.event("release_state", "", "", "train %s: release %s superseded by %s before its staging started; it is never rolled", t.Line, rel.ID, by.ID)
	return Result{}
}

// hasRollout reports whether a rollout of release id exists.
func (s *State) hasRollout(id string) bool {
	for _, r := range s.Rollouts {
		if r.Release == id {
			return true
		}
	}
	return false
}

func (s *State) trainStage(t *Train, rel *Release) Result {
	if rel.State != ReleaseCandidate {
		return refused(wire.KindConflict, "release %s is %s, not a candidate", rel.ID, rel.State)
	}
	if r := s.TrainRollout(t.Line, ScopeStaging); r != nil {
		return refused(wire.KindConflict, "train %s is staging %s (rollout %s)", t.Line, r.Release, r.ID)
	}
	if why := s.StagingBlocked(t); why != "" {
		return refused(wire.KindConflict, "train %s: staging is not ready: %s", t.Line, why)
	}
	id, res := s.startTrainRollout(t, rel, ScopeStaging, StartRollout{Soak: t.StagingSoak})
	if res.Err != nil {
		return res
	}
	t.Updated = s.Now
	s.event("train_step", "", "", "train %s: candidate %s (kernel %s) starts staging on %s, soak %s (rollout %s)",
		t.Line, rel.ID, rel.KernelVersion, strings.Join(t.Staging, ","), t.StagingSoak, id)
	return Result{}
}

// ValidatedForTrain reports whether rel passed staging and may roll on.
func ValidatedForTrain(rel *Release) bool {
	return rel.State == ReleaseValidated || rel.State == ReleaseRolling || rel.State == ReleaseDone
}

func (s *State) trainControl(t *Train, rel *Release) Result {
	if !ValidatedForTrain(rel) {
		return refused(wire.KindConflict, "release %s is %s, not validated", rel.ID, orDefault(rel.State, "unknown"))
	}
	if f, ok := t.FrozenAt(s.Now); ok {
		return refused(wire.KindConflict, "train %s: freeze %s: no control rollout starts", t.Line, f.Spec)
	}
	floor, err := s.ControlFloor(t.Line)
	if err != nil {
		return refused(wire.KindConflict, "train %s: cannot order the control tier's releases: %v", t.Line, err)
	}
	if floor != nil {
		if c, err := CompareReleases(rel, floor); err != nil || c <= 0 {
			return refused(wire.KindConflict, "train %s: the control tier runs or was sent %s; %s is not newer (never a downgrade)", t.Line, floor.ID, rel.ID)
		}
	}
	id, res := s.startTrainRollout(t, rel, ScopeControl, StartRollout{Soak: t.ControlSoak})
	if res.Err != nil {
		return res
	}
	t.ControlRelease, t.Updated = rel.ID, s.Now
	s.event("train_step", "", "", "train %s: release %s validated; the control tier takes it at once (rollout %s)", t.Line, rel.ID, id)
	return Result{}
}

// trainDepart departs the edge train with rel: at the due departure p.Due
// (the next one p.Next), or expedited now (reason set).
func (s *State) trainDepart(t *Train, rel *Release, p TrainStep, expedite bool, reason string) Result {
	if !expedite {
		switch {
		case !p.Due.Equal(t.NextDeparture):
			return refused(wire.KindConflict, "train %s: departure %s is not the next one (%s)", t.Line, p.Due.Format(time.RFC3339), t.NextDeparture.Format(time.RFC3339))
		case s.Now.Before(p.Due):
			return refused(wire.KindConflict, "train %s: departure %s is not due", t.Line, p.Due.Format(time.RFC3339))
		case !p.Next.After(s.Now):
			return refused(wire.KindInvalidRequest, "train %s: the next departure %s must lie ahead", t.Line, p.Next.Format(time.RFC3339))
		case t.SkipNext:
			return refused(wire.KindConflict, "train %s: this departure is skipped: %s", t.Line, t.SkipReason)
		}
	}
	if rel.State != ReleaseValidated {
		return refused(wire.KindConflict, "release %s is %s, not validated: it does not depart", rel.ID, orDefault(rel.State, "unknown"))
	}
	if f, ok := t.FrozenAt(s.Now); ok {
		return refused(wire.KindConflict, "train %s: freeze %s: nothing departs", t.Line, f.Spec)
	}
	if r := s.TrainRollout(t.Line, ScopeEdge); r != nil {
		return refused(wire.KindConflict, "train %s: edge rollout %s of %s is still %s (one edge train per line in flight)", t.Line, r.ID, r.Release, r.State)
	}
	floor, err := s.EdgeFloor(t.Line)
	if err != nil {
		return refused(wire.KindConflict, "train %s: cannot order %s against the edge's releases: %v; nothing departs", t.Line, rel.ID, err)
	}
	if floor != nil {
		c, err := CompareReleases(rel, floor)
		if err != nil {
			return refused(wire.KindConflict, "train %s: cannot order %s against %s: %v; nothing departs", t.Line, rel.ID, floor.ID, err)
		}
		if c <= 0 {
			return refused(wire.KindConflict, "train %s: %s is not newer than %s, which the edge runs: never a downgrade", t.Line, rel.ID, floor.ID)
		}
	}
	id, res := s.startTrainRollout(t, rel, ScopeEdge, StartRollout{Soak: t.ControlSoak, Cycle: t.EdgeCycle, Expedite: expedite, Reason: reason})
	if res.Err != nil {
		return res
	}
	t.EdgeRelease, t.EdgeRollout, t.Departed, t.Updated = rel.ID, id, s.Now, s.Now
	if expedite {
		s.event("train_depart", "", "", "train %s: EXPEDITED departure: release %s rolls to the edge now (rollout %s); reason: %s", t.Line, rel.ID, id, reason)
		return Result{}
	}
	t.NextDeparture = p.Next.UTC()
	s.event("train_depart", "", "", "train %s: departure %s: release %s (kernel %s) rolls to the edge in waves over %s (rollout %s); next departure %s",
		t.Line, p.Due.Format(time.RFC3339), rel.ID, rel.KernelVersion, t.EdgeCycle, id, t.NextDeparture.Format(time.RFC3339))
	return Result{}
}

// trainSkip records that the due departure p.Due does not happen.
func (s *State) trainSkip(t *Train, p TrainStep) Result {
	switch {
	case !p.Due.Equal(t.NextDeparture):
		return refused(wire.KindConflict, "train %s: departure %s is not the next one (%s)", t.Line, p.Due.Format(time.RFC3339), t.NextDeparture.Format(time.RFC3339))
	case s.Now.Before(p.Due):
		return refused(wire.KindConflict, "train %s: departure %s is not due", t.Line, p.Due.Format(time.RFC3339))
	case !p.Next.After(s.Now):
		return refused(wire.KindInvalidRequest, "train %s: the next departure %s must lie ahead", t.Line, p.Next.Format(time.RFC3339))
	case strings.TrimSpace(p.Reason) == "":
		return refused(wire.KindInvalidRequest, "a skipped departure needs its reason")
	}
	reason := p.Reason
	if t.SkipNext {
		reason = "skipped by an operator: " + t.SkipReason
		t.SkipNext, t.SkipReason = false, ""
	}
	t.NextDeparture, t.Updated = p.Next.UTC(), s.Now
	s.event("train_skip", "", "", "train %s: departure %s skipped: %s; next departure %s", t.Line, p.Due.Format(time.RFC3339), reason, t.NextDeparture.Format(time.RFC3339))
	return Result{}
}

func (s *State) expediteTrain(p ExpediteTrain) Result {
	t, res := s.trainFor(p.Line)
	if res.Err != nil {
		return res
	}
	if res := validReason(p.Reason); res.Err != nil {
		return res
	}
	if t.Held {
		return refused(wire.KindConflict, "train %s is held: %s; resume it first", t.Line, t.HoldReason)
	}
	rel := s.Releases[p.Release]
	if rel == nil || rel.Line != t.Line {
		return refused(wire.KindNotFound, "no release %q of line %s", p.Release, t.Line)
	}
	if m := s.ManualRollout(t.Line); m != nil {
		return refused(wire.KindConflict, "train %s: operator rollout %s of the line is %s", t.Line, m.ID, m.State)
	}
	return s.trainDepart(t, rel, TrainStep{}, true, p.Reason)
}

// refreshRelease derives the state of release id from its rollouts and
// records a change (with an event from FormatV5 on: a log of an older
// format replays into the very events it made). It runs wherever a
// rollout of the release changes, so the state is always the derivation
// of the rollouts (see deriveRelease), in every format; Restore derives
// it for a snapshot of format 4 or older.
func (s *State) refreshRelease(id string) {
	rel := s.Releases[id]
	if rel == nil {
		return
	}
	st, why := s.deriveRelease(rel)
	if st == rel.State && why == rel.StateReason {
		return
	}
	old := rel.State
	rel.State, rel.StateReason = st, why
	if s.format >= FormatV5 && old != "" && old != st {
		prefix := ""
		if t := s.Trains[rel.Line]; t != nil {
			prefix = "train " + rel.Line + ": "
		}
		s.event("release_state", "", "", "%srelease %s %s → %s: %s", prefix, rel.ID, old, st, why)
	}
}

// deriveRelease returns the state of rel its rollouts make: rejected
// (a failed gate or an operator, Release.Rejected), done (a rollout with
// edge waves completed), rolling (a running or paused rollout with a
// started canary or edge wave), validated (a staging wave passed),
// staging (a running or paused rollout's staging wave started), else
// candidate, or superseded when the train marked it so.
func (s *State) deriveRelease(rel *Release) (string, string) {
	if rej, ok := rel.Rejected[rel.Line]; ok {
		if rej.Rollout == "" {
			return ReleaseRejected, rej.Reason
		}
		return ReleaseRejected, fmt.Sprintf("rollout %s failed: %s", rej.Rollout, rej.Reason)
	}
	rank := map[string]int{ReleaseCandidate: 0, ReleaseStaging: 1, ReleaseValidated: 2, ReleaseRolling: 3, ReleaseDone: 4}
	best, why := ReleaseCandidate, ""
	raise := func(st, reason string) {
		if rank[st] > rank[best] {
			best, why = st, reason
		}
	}
	for _, id := range sortedKeys(s.Rollouts) {
		r := s.Rollouts[id]
		if r.Release != rel.ID || r.Line != rel.Line {
			continue
		}
		active := r.State == RolloutRunning || r.State == RolloutPaused
		edge := false
		for _, w := range r.Waves {
			isEdge := w.Name != WaveStaging && w.Name != WaveControl
			edge = edge || isEdge
			switch {
			case w.Name == WaveStaging && !w.Passed.IsZero():
				raise(ReleaseValidated, fmt.Sprintf("staging wave of rollout %s passed at %s after a %s soak on %s", r.ID, w.Passed.Format(time.RFC3339), r.Soak, strings.Join(w.Datacenters, ",")))
			case w.Name == WaveStaging && active && !w.Started.IsZero():
				raise(ReleaseStaging, fmt.Sprintf("staging wave of rollout %s on %s", r.ID, strings.Join(w.Datacenters, ",")))
			case isEdge && active && !w.Started.IsZero():
				raise(ReleaseRolling, fmt.Sprintf("rollout %s: wave %s", r.ID, w.Name))
			}
		}
		if r.State == RolloutDone && edge {
			raise(ReleaseDone, fmt.Sprintf("rollout %s done", r.ID))
		}
	}
	if best == ReleaseCandidate && rel.State == ReleaseSuperseded {
		return ReleaseSuperseded, rel.StateReason
	}
	return best, why
}

// deriveReleases derives every release's state (Restore, for snapshots
// of format 4 and older, and any release without one).
func (s *State) deriveReleases(all bool) {
	for _, id := range sortedKeys(s.Releases) {
		if rel := s.Releases[id]; all || rel.State == "" {
			rel.State, rel.StateReason = s.deriveRelease(rel)
		}
	}
}

// planScopedWaves plans a train's rollout of rel limited to sc: the
// staging wave over the train's staging datacenters with hosts of the
// line; the control wave over the control tier's; or the canary and edge
// waves over the edge tier's (the release passed staging before, in the
// train's staging rollout). A scope without a datacenter with hosts of
// the line is refused: the train waits.
func planScopedWaves(names []string, tiers map[string]string, size map[string]int, rel *Release, p StartRollout, fracs []float64, sc rolloutScope) ([]Wave, Result) {
	var dcs []string
	for _, name := range names {
		tier := orDefault(tiers[name], TierEdge)
		if size[name] == 0 {
			continue
		}
		switch sc.scope {
		case ScopeStaging:
			if tier == TierStaging && slices.Contains(sc.staging, name) {
				dcs = append(dcs, name)
			}
		case ScopeControl:
			if tier == TierControl {
				dcs = append(dcs, name)
			}
		case ScopeEdge:
			if tier == TierEdge {
				dcs = append(dcs, name)
			}
		default:
			return nil, refused(wire.KindInvalidRequest, "unknown rollout scope %q", sc.scope)
		}
	}
	if len(dcs) == 0 {
		return nil, refused(wire.KindConflict, "no %s datacenter has hosts of line %s", sc.scope, rel.Line)
	}
	switch sc.scope {
	case ScopeStaging:
		return []Wave{{Name: WaveStaging, Datacenters: dcs, Gates: true}}, Result{}
	case ScopeControl:
		return []Wave{{Name: WaveControl, Datacenters: dcs}}, Result{}
	}
	edgeTiers := make(map[string]string, len(dcs))
	for _, d := range dcs {
		edgeTiers[d] = TierEdge
	}
	p.Force, p.Reason = true, orDefault(p.Reason, "train")
	waves, _, res := planWaves(dcs, edgeTiers, size, rel, p, fracs)
	return waves, res
}

// LineHostCount returns how many agent hosts of line datacenter dc has.
func (s *State) LineHostCount(dc, line string) int { return len(s.lineHosts(dc, line)) }

// StagingBlocked returns why the train's staging datacenters cannot
// stage a candidate now, or "": a staging host of the line that holds a
// slot, is silent, reported unhealthy or is in any phase but idle or
// healthy (still upgrading, rolling back, or failed and waiting for an
// operator's reset). A candidate staged then would meet what the last
// one left behind, and a failure of the old kernel would reject the new
// release: the train waits instead (train show says why).
func (s *State) StagingBlocked(t *Train) string {
	for _, name := range t.Staging {
		dc := s.Datacenters[name]
		if dc == nil {
			return fmt.Sprintf("staging datacenter %s does not exist", name)
		}
		for _, h := range s.sortedLineHosts(name, t.Line) {
			_, holding := dc.Slots[h.ID]
			switch {
			case holding:
				return fmt.Sprintf("host %s in %s holds a reboot slot", h.ID, name)
			case !s.alive(h, s.Now, noLimit):
				return fmt.Sprintf("host %s in %s is silent", h.ID, name)
			case h.Unhealthy || failurePhase(h.Phase):
				return fmt.Sprintf("host %s in %s is %s on %s (an operator must reset it: kroll-agent reset)", h.ID, name, orDefault(h.Phase, "unhealthy"), orDefault(h.Kernel, "its kernel"))
			case h.Phase != "" && h.Phase != wire.PhaseIdle && h.Phase != wire.PhaseHealthy:
				return fmt.Sprintf("host %s in %s is %s", h.ID, name, h.Phase)
			}
		}
	}
	return ""
}

// releaseWithdrawn returns the refusal (wire.KindReleaseWithdrawn) of a
// slot for host in dc to boot release id, or nil when id is the host's
// desired release (targetRelease of its datacenter and line): a release
// rejected for the host's line, whose rollout failed, was aborted or is
// paused, or that is no longer the datacenter's target, is never booted,
// even by an agent that staged it and asks before its next heartbeat
// tells it so. An unknown host or datacenter is left to the scheduler.
func (s *State) releaseWithdrawn(dc *Datacenter, host, id string) *wire.Error {
	h := s.Hosts[host]
	if dc == nil || h == nil {
		return nil
	}
	if tg := s.targetRelease(dc, h.KernelLine); tg != nil && tg.ID == id {
		return nil
	}
	why := ""
	rel := s.Releases[id]
	tg, targeted := dc.Targets[h.KernelLine]
	var (
		rej      Rejection
		rejected bool
	)
	if rel != nil {
		rej, rejected = rel.Rejected[h.KernelLine]
	}
	switch {
	case rel == nil:
		why = "the coordinator knows no such release"
	case rel.Line != h.KernelLine:
		why = fmt.Sprintf("it is of line %s, the host is on line %s", rel.Line, orDefault(h.KernelLine, "(none)"))
	case rejected:
		why = "it is rejected for line " + h.KernelLine + ": " + rej.Reason
		if rej.Rollout != "" {
			why = fmt.Sprintf("it is rejected for line %s: rollout %s failed: %s", h.KernelLine, rej.Rollout, rej.Reason)
		}
	case !targeted:
		why = fmt.Sprintf("datacenter %s has no target for line %s (withdrawn)", dc.Name, h.KernelLine)
	case tg.Release != id:
		why = fmt.Sprintf("datacenter %s now targets %s for line %s", dc.Name, tg.Release, h.KernelLine)
	default:
		if r := s.Rollouts[tg.Rollout]; r == nil {
			why = fmt.Sprintf("its rollout %s is gone", tg.Rollout)
		} else {
			why = fmt.Sprintf("its rollout %s is %s: %s", r.ID, r.State, orDefault(r.PauseReason, "no reason recorded"))
		}
	}
	return &wire.Error{Kind: wire.KindReleaseWithdrawn, Value: fmt.Sprintf("release %s is withdrawn for %s in %s: %s; give the slot back, do not boot it", id, host, dc.Name, why)}
}
