package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// status is the cluster overview: members, datacenters, phase and kernel
// counts.
func (s *Server) status(w http.ResponseWriter, r *http.Request, _ Identity) {
	members, err := s.cfg.Store.Members()
	if err != nil {
		writeError(w, http.StatusInternalServerError, wire.KindInternal, err.Error())
		return
	}
	leader, _ := s.cfg.Store.Leader()
	st := wire.Status{Leader: leader, Members: members}
	s.cfg.Store.FSM().View(func(state *fsm.State) {
		st.Datacenters = state.DatacenterViews(s.cfg.Now(), s.cfg.Store.Timing().AliveWithin)
		st.Phases, st.Kernels = state.PhaseCounts()
		st.Lines = state.LineCounts()
	})
	writeJSON(w, st)
}
