package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// slotRelease gives a held slot back; the fencing token must match.
func (s *Server) slotRelease(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, false, validateSlotRequest(true))
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if !actsFor(w, id, req.HostID) {
		return
	}
	res, ok := s.apply(w, r, fsm.TypeRelease, fsm.SlotRelease{Datacenter: req.Datacenter, Host: req.HostID, Token: req.Token, Owner: fsm.OwnerAgent, Reason: req.Reason})
	if !ok {
		return
	}
	writeJSON(w, res.Slot)
}
