package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// slotRenew extends the lease of a held slot; a stale fencing token is
// refused.
func (s *Server) slotRenew(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, false, validateSlotRequest(true))
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if !actsFor(w, id, req.HostID) {
		return
	}
	res, ok := s.apply(w, r, fsm.TypeRenew, fsm.Renew{Datacenter: req.Datacenter, Host: req.HostID, Token: req.Token, Owner: fsm.OwnerAgent, Release: req.Release, Timing: s.cfg.Store.Timing()})
	if !ok {
		return
	}
	writeJSON(w, res.Slot)
}
