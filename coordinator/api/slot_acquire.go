package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// slotAcquire grants the host a reboot slot with a fresh fencing token, or
// refuses with the scheduler's reason as the error kind.
func (s *Server) slotAcquire(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, false, validateSlotRequest(false))
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if !actsFor(w, id, req.HostID) {
		return
	}
	res, ok := s.apply(w, r, fsm.TypeAcquire, fsm.Acquire{Datacenter: req.Datacenter, Host: req.HostID, Owner: fsm.OwnerAgent, Release: req.Release, Timing: s.cfg.Store.Timing()})
	if !ok {
		return
	}
	writeJSON(w, res.Slot)
}
