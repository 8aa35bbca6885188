package api

import (
	"net/http"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// rollouts lists the rollouts with their progress.
func (s *Server) rollouts(w http.ResponseWriter, r *http.Request, _ Identity) {
	var out []wire.Rollout
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		out = st.RolloutViews(s.cfg.Now(), s.cfg.Store.Timing().AliveWithin)
	})
	writeJSON(w, out)
}

// writeRollout answers the current view of rollout id.
func (s *Server) writeRollout(w http.ResponseWriter, id string) {
	var (
		out wire.Rollout
		ok  bool
	)
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		if ro := st.Rollouts[id]; ro != nil {
			out, ok = st.RolloutView(ro, s.cfg.Now(), s.cfg.Store.Timing().AliveWithin), true
		}
	})
	if !ok {
		writeError(w, http.StatusNotFound, wire.KindNotFound, "unknown rollout "+id)
		return
	}
	writeJSON(w, out)
}

func (s *Server) rollout(w http.ResponseWriter, r *http.Request, _ Identity) {
	s.writeRollout(w, r.PathValue("id"))
}

// startRollout starts a rollout; the state machine plans its waves.
func (s *Server) startRollout(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, false, validateRolloutStart)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	rid := req.ID
	if rid == "" {
		rid = req.Release
	}
	cmd := fsm.StartRollout{ID: rid, Release: req.Release, Expedite: req.Expedite, Reason: req.Reason, Waves: req.Waves,
		Canary: req.Canary, Soak: time.Duration(req.SoakSeconds) * time.Second, Cycle: time.Duration(req.CycleSeconds) * time.Second,
		Budget: req.Budget, Force: req.Force}
	if cmd.Reason != "" {
		cmd.Reason += " (by " + id.Name + ")"
	}
	if _, ok := s.applyAndWait(w, r, fsm.TypeStartRollout, cmd); !ok {
		return
	}
	s.writeRollout(w, rid)
}

func (s *Server) rolloutAction(t fsm.Type) func(w http.ResponseWriter, r *http.Request, id Identity) {
	return func(w http.ResponseWriter, r *http.Request, id Identity) {
		req, rerr := decode(&s.json, r, true, validateRolloutAction)
		if rerr != nil {
			writeRequestError(w, rerr)
			return
		}
		rid := r.PathValue("id")
		reason := req.Reason
		if reason != "" {
			reason += " (by " + id.Name + ")"
		}
		if _, ok := s.applyAndWait(w, r, t, fsm.NewRolloutAction(t, fsm.RolloutAction{ID: rid, Reason: reason})); !ok {
			return
		}
		s.writeRollout(w, rid)
	}
}
