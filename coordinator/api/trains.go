package api

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/train"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// trains lists the release trains, by line.
func (s *Server) trains(w http.ResponseWriter, r *http.Request, _ Identity) {
	out := []wire.Train{}
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		for _, line := range sortedTrainLines(st) {
			if v, ok := train.View(st, line, stateNow(st, s.cfg.Now)); ok {
				out = append(out, v)
			}
		}
	})
	writeJSON(w, out)
}

func sortedTrainLines(st *fsm.State) []string {
	lines := make([]string, 0, len(st.Trains))
	for l := range st.Trains {
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return lines
}

// stateNow is the train's clock: the state machine's time (the leader's
// stamped clock, which a test or simulation may compress), or wall
// before the first command.
func stateNow(st *fsm.State, wall func() time.Time) time.Time {
	if st.Now.IsZero() {
		return wall()
	}
	return st.Now
}

// writeTrain answers the view of the train of line.
func (s *Server) writeTrain(w http.ResponseWriter, line string) {
	var (
		out wire.Train
		ok  bool
	)
	s.cfg.Store.FSM().View(func(st *fsm.State) { out, ok = train.View(st, line, stateNow(st, s.cfg.Now)) })
	if !ok {
		writeError(w, http.StatusNotFound, wire.KindNotFound, "no train for line "+line)
		return
	}
	writeJSON(w, out)
}

func (s *Server) train(w http.ResponseWriter, r *http.Request, _ Identity) {
	s.writeTrain(w, r.PathValue("line"))
}

// setTrain sets a line's train: the departure and freezes are resolved
// in their zone here (train.SetTrain), the datacenters checked against
// the state (fsm.State.ValidateSetTrain) before the command is proposed,
// and again when it is applied.
func (s *Server) setTrain(w http.ResponseWriter, r *http.Request, _ Identity) {
	req, rerr := decode(&s.json, r, false, validateTrainSet)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	line := r.PathValue("line")
	if !fsm.ValidLine(line) {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, fmt.Sprintf("invalid line %q: want MAJOR.MINOR, e.g. 6.12", line))
		return
	}
	var now time.Time
	s.cfg.Store.FSM().View(func(st *fsm.State) { now = stateNow(st, s.cfg.Now) })
	cmd, err := train.SetTrain(train.Settings{Line: line, Staging: req.Staging, StagingSoak: time.Duration(req.StagingSoakSeconds) * time.Second,
		ControlSoak: time.Duration(req.ControlSoakSeconds) * time.Second, EdgeCycle: time.Duration(req.EdgeCycleSeconds) * time.Second,
		Departure: req.Departure, Freezes: req.Freezes}, now)
	if err == nil {
		s.cfg.Store.FSM().View(func(st *fsm.State) { err = st.ValidateSetTrain(cmd) })
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	if _, ok := s.applyAndWait(w, r, fsm.TypeSetTrain, cmd); !ok {
		return
	}
	s.writeTrain(w, line)
}

func (s *Server) trainAction(t fsm.Type) func(w http.ResponseWriter, r *http.Request, id Identity) {
	return func(w http.ResponseWriter, r *http.Request, id Identity) {
		req, rerr := decode(&s.json, r, false, validateTrainAction)
		if rerr != nil {
			writeRequestError(w, rerr)
			return
		}
		line := r.PathValue("line")
		a := fsm.TrainAction{Line: line, Reason: req.Reason + " (by " + id.Name + ")"}
		var payload any
		switch t {
		case fsm.TypeHoldTrain:
			payload = fsm.HoldTrain(a)
		case fsm.TypeResumeTrain:
			payload = fsm.ResumeTrain(a)
		default:
			payload = fsm.SkipTrain(a)
		}
		if _, ok := s.applyAndWait(w, r, t, payload); !ok {
			return
		}
		s.writeTrain(w, line)
	}
}

func (s *Server) expediteTrain(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, false, validateTrainExpedite)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	line := r.PathValue("line")
	if _, ok := s.applyAndWait(w, r, fsm.TypeExpediteTrain, fsm.ExpediteTrain{Line: line, Release: req.Release, Reason: req.Reason + " (by " + id.Name + ")"}); !ok {
		return
	}
	s.writeTrain(w, line)
}

// rejectRelease rejects a release for its line (its running rollouts
// are aborted).
func (s *Server) rejectRelease(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, false, validateReleaseReject)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if _, ok := s.applyAndWait(w, r, fsm.TypeRejectRelease, fsm.RejectRelease{ID: r.PathValue("id"), Reason: req.Reason + " (by " + id.Name + ")"}); !ok {
		return
	}
	writeJSON(w, struct{}{})
}
