package train

import (
	"strings"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// MaxViewEvents bounds the events a train view carries.
const MaxViewEvents = 20

// View returns the train of line as krollctl train show prints it (ok
// false when the line has none).
func View(s *fsm.State, line string, now time.Time) (wire.Train, bool) {
	t := s.Trains[line]
	if t == nil {
		return wire.Train{}, false
	}
	v := wire.Train{Line: t.Line, Staging: t.Staging, StagingSoakSeconds: int64(t.StagingSoak / time.Second),
		ControlSoakSeconds: int64(t.ControlSoak / time.Second), EdgeCycleSeconds: int64(t.EdgeCycle / time.Second),
		Departure: t.Departure, NextDeparture: t.NextDeparture, Held: t.Held, HoldReason: t.HoldReason,
		SkipNext: t.SkipNext, SkipReason: t.SkipReason, EdgeRelease: t.EdgeRelease, EdgeRollout: t.EdgeRollout,
		Departed: t.Departed, ControlRelease: t.ControlRelease, StagingBlocked: s.StagingBlocked(t)}
	for _, f := range t.Freezes {
		v.Freezes = append(v.Freezes, wire.TrainFreeze{Spec: f.Spec, From: f.From, To: f.To, Active: !now.Before(f.From) && now.Before(f.To)})
	}
	var rels []*fsm.Release
	for _, r := range s.Releases {
		if r.Line == line && r.State != fsm.ReleaseDone {
			rels = append(rels, r)
		}
	}
	newestFirst(rels)
	v.Attention = attention(s, t)
	floor, _ := s.EdgeFloor(line)
	for _, r := range rels {
		v.Releases = append(v.Releases, wire.TrainRelease{ID: r.ID, Kernel: r.KernelVersion, State: r.State, StateReason: r.StateReason})
		if v.Waiting == "" && r.State == fsm.ReleaseValidated && (floor == nil || newer(r, floor)) {
			v.Waiting = r.ID
		}
	}
	prefix := "train " + line + ":"
	evs := s.EventViews(0, 0)
	for i := len(evs) - 1; i >= 0 && len(v.Events) < MaxViewEvents; i-- {
		if strings.HasPrefix(evs[i].Message, prefix) || strings.HasPrefix(evs[i].Message, "train "+line+" ") {
			v.Events = append(v.Events, evs[i])
		}
	}
	for i, j := 0, len(v.Events)-1; i < j; i, j = i+1, j-1 {
		v.Events[i], v.Events[j] = v.Events[j], v.Events[i]
	}
	return v, true
}

// attention returns what the train of t cannot decide (see
// wire.Train.Attention).
func attention(s *fsm.State, t *fsm.Train) []string {
	var candidates, validated []*fsm.Release
	for _, r := range s.Releases {
		switch {
		case r.Line != t.Line:
		case r.State == fsm.ReleaseCandidate:
			candidates = append(candidates, r)
		case fsm.ValidatedForTrain(r):
			validated = append(validated, r)
		}
	}
	newestFirst(candidates)
	newestFirst(validated)
	_, _, out := sortCandidates(t, candidates, validated)
	if len(validated) > 0 {
		if _, why := controlNext(s, t, validated[0]); why != "" {
			out = append(out, why)
		}
	}
	return out
}
