package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func (s *Server) slots(w http.ResponseWriter, r *http.Request, _ Identity) {
	var out []wire.Slot
	s.cfg.Store.FSM().View(func(st *fsm.State) { out = st.SlotViews(r.URL.Query().Get("dc")) })
	writeJSON(w, out)
}

// releaseSlot is the operator's break-glass release (e.g. of a lost host).
func (s *Server) releaseSlot(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, false, validateSlotRelease)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	reason := req.Reason
	if reason == "" {
		reason = "released by " + id.Name
	}
	res, ok := s.apply(w, r, fsm.TypeForceRelease, fsm.ForceRelease{Datacenter: req.Datacenter, Host: req.HostID, Reason: reason})
	if !ok {
		return
	}
	writeJSON(w, res.Slot)
}
