package train

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// Decide returns the train steps state s calls for at time now, line by
// line (sorted) in the order they are to be applied. It reads s only
// (the caller holds the state's read lock, fsm.FSM.View) and is
// deterministic. On the state those steps make it returns none of them
// again: a stage makes its candidate staging, a supersede marks its
// release, a control step records the control tier's release, a
// departure or a skip moves the next departure on.
//
// Per line, unless the train is held (then a due departure is only
// recorded as skipped):
//   - candidates: the newest unstaged candidate supersedes every older
//     unstaged one, and so does a newer validated release; it starts
//     staging when no staging rollout of the train is in flight and the
//     staging datacenters are settled (fsm.State.StagingBlocked);
//   - control: the newest validated release starts on the control tier
//     at once, outside a freeze, when it is newer than everything the
//     control tier runs or was sent (fsm.State.ControlFloor: never a
//     downgrade; an order kversion cannot decide holds it, see View);
//   - departure: when the next departure is due, the newest validated
//     release newer than everything the edge runs departs — unless the
//     operator skips it, a freeze holds, an operator's rollout of the
//     line or the previous edge train is still in flight, or no such
//     release exists: then the departure is skipped with its reason.
func Decide(s *fsm.State, now time.Time) []fsm.TrainStep {
	var out []fsm.TrainStep
	lines := make([]string, 0, len(s.Trains))
	for l := range s.Trains {
		lines = append(lines, l)
	}
	sort.Strings(lines)
	for _, line := range lines {
		out = append(out, decideLine(s, s.Trains[line], now)...)
	}
	return out
}

// newestFirst orders releases newest first by their builds; an order
// kversion cannot decide falls back on creation time, then id.
func newestFirst(rels []*fsm.Release) {
	slices.SortStableFunc(rels, func(a, b *fsm.Release) int {
		if c, err := fsm.CompareReleases(a, b); err == nil && c != 0 {
			return -c
		}
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// newer reports whether a is decidably newer than b.
func newer(a, b *fsm.Release) bool {
	c, err := fsm.CompareReleases(a, b)
	return err == nil && c > 0
}

func decideLine(s *fsm.State, t *fsm.Train, now time.Time) []fsm.TrainStep {
	var out []fsm.TrainStep
	d, err := ParseDeparture(t.Departure)
	if err != nil {
		return nil // validated when set; nothing to decide on
	}
	due := !now.Before(t.NextDeparture)
	skip := func(reason string) {
		out = append(out, fsm.TrainStep{Line: t.Line, Action: fsm.StepSkip, Due: t.NextDeparture,
			Next: d.Next(t.NextDeparture, t.EdgeCycle, now), Reason: reason})
	}
	if t.Held {
		if due {
			skip("train held: " + t.HoldReason)
		}
		return out
	}
	var candidates, validated []*fsm.Release
	for _, rel := range s.Releases {
		if rel.Line != t.Line {
			continue
		}
		switch {
		case rel.State == fsm.ReleaseCandidate:
			candidates = append(candidates, rel)
		case fsm.ValidatedForTrain(rel):
			validated = append(validated, rel)
		}
	}
	newestFirst(candidates)
	newestFirst(validated)
	manual := s.ManualRollout(t.Line)

	// Candidates.
	stage, supersede, _ := sortCandidates(t, candidates, validated)
	out = append(out, supersede...)
	if stage != nil && manual == nil && s.TrainRollout(t.Line, fsm.ScopeStaging) == nil && hasHosts(s, t.Line, fsm.TierStaging, t.Staging) &&
		s.StagingBlocked(t) == "" {
		out = append(out, fsm.TrainStep{Line: t.Line, Action: fsm.StepStage, Release: stage.ID})
	}

	// Control.
	_, frozen := t.FrozenAt(now)
	if len(validated) > 0 && manual == nil && !frozen && hasHosts(s, t.Line, fsm.TierControl, nil) {
		if top, _ := controlNext(s, t, validated[0]); top != nil {
			out = append(out, fsm.TrainStep{Line: t.Line, Action: fsm.StepControl, Release: top.ID})
		}
	}

	// Departure.
	if !due {
		return out
	}
	if t.SkipNext {
		skip("skipped by an operator: " + t.SkipReason)
		return out
	}
	if f, ok := t.FrozenAt(now); ok {
		skip(fmt.Sprintf("freeze %s", f.Spec))
		return out
	}
	if manual != nil {
		skip(fmt.Sprintf("operator rollout %s of %s is %s", manual.ID, manual.Release, manual.State))
		return out
	}
	if r := s.TrainRollout(t.Line, fsm.ScopeEdge); r != nil {
		skip(fmt.Sprintf("the previous edge train (rollout %s of %s) is still %s", r.ID, r.Release, r.State))
		return out
	}
	floor, err := s.EdgeFloor(t.Line)
	if err != nil {
		skip(fmt.Sprintf("cannot order the edge's releases: %v", err))
		return out
	}
	var pick *fsm.Release
	var older []string
	for _, rel := range validated {
		if rel.State != fsm.ReleaseValidated {
			continue
		}
		if floor == nil || newer(rel, floor) {
			pick = rel
			break
		}
		older = append(older, rel.ID)
	}
	switch {
	case pick == nil && floor != nil:
		why := fmt.Sprintf("no validated release newer than %s, which the edge runs", floor.ID)
		if len(older) > 0 {
			why += " (not departed, never a downgrade: " + strings.Join(older, ", ") + ")"
		}
		skip(why)
	case pick == nil:
		skip("no validated release")
	case !hasHosts(s, t.Line, fsm.TierEdge, nil):
		skip(fmt.Sprintf("no edge datacenter has hosts of line %s", t.Line))
	default:
		out = append(out, fsm.TrainStep{Line: t.Line, Action: fsm.StepDepart, Release: pick.ID, Due: t.NextDeparture,
			Next: d.Next(t.NextDeparture, t.EdgeCycle, now)})
	}
	return out
}

// sortCandidates decides the line's candidates (newest first) against its
// validated releases (newest first): the one to stage, the supersede
// steps, and why each candidate that is neither is left alone (its order
// against the newest validated release or the one to stage is
// undecidable: an operator must reject one of them).
func sortCandidates(t *fsm.Train, candidates, validated []*fsm.Release) (stage *fsm.Release, supersede []fsm.TrainStep, stuck []string) {
	for _, c := range candidates {
		switch {
		case len(validated) > 0 && !newer(c, validated[0]):
			switch {
			case newer(validated[0], c):
				supersede = append(supersede, fsm.TrainStep{Line: t.Line, Action: fsm.StepSupersede, Release: c.ID, By: validated[0].ID})
			case c.ID != validated[0].ID:
				stuck = append(stuck, fmt.Sprintf("candidate %s is neither staged nor superseded: cannot order it against validated %s (reject one: krollctl release reject)", c.ID, validated[0].ID))
			}
		case stage != nil && newer(stage, c):
			supersede = append(supersede, fsm.TrainStep{Line: t.Line, Action: fsm.StepSupersede, Release: c.ID, By: stage.ID})
		case stage != nil:
			stuck = append(stuck, fmt.Sprintf("candidate %s is neither staged nor superseded: cannot order it against candidate %s, which stages next (reject one: krollctl release reject)", c.ID, stage.ID))
		default:
			stage = c
		}
	}
	return stage, supersede, stuck
}

// controlNext returns top when the control tier is to take it: newer
// than the control floor. Otherwise nil, and why when an operator must
// look (the order is undecidable); a control tier already on top or on a
// newer release needs no word.
func controlNext(s *fsm.State, t *fsm.Train, top *fsm.Release) (*fsm.Release, string) {
	floor, err := s.ControlFloor(t.Line)
	switch {
	case err != nil:
		return nil, fmt.Sprintf("control does not take %s: cannot order the control tier's releases: %v", top.ID, err)
	case floor == nil || newer(top, floor):
		return top, ""
	case floor.ID != top.ID && !newer(floor, top):
		return nil, fmt.Sprintf("control does not take %s: cannot order it against %s, which the control tier runs or was sent", top.ID, floor.ID)
	}
	return nil, ""
}

// hasHosts reports whether a datacenter of tier (among only, when set)
// has agent hosts of line.
func hasHosts(s *fsm.State, line, tier string, only []string) bool {
	for name, dc := range s.Datacenters {
		t := dc.Tier
		if t == "" {
			t = fsm.TierEdge
		}
		if t != tier || (only != nil && !slices.Contains(only, name)) {
			continue
		}
		if s.LineHostCount(name, line) > 0 {
			return true
		}
	}
	return false
}
