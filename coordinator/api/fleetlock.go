package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// FleetLock protocol (Fedora CoreOS Zincati, airlock): POST /v1/pre-reboot
// takes the node's lock in its group (a datacenter), POST /v1/steady-state
// releases it. Locks are owned and recursive; releasing a lock the node
// does not hold succeeds (nodes report steady state at every boot).

// fleetLockRequest checks the protocol header and decodes the body,
// writing the error response when it fails.
func fleetLockRequest(w http.ResponseWriter, r *http.Request) (wire.FleetLockClientParams, bool) {
	if r.Header.Get(wire.FleetLockHeader) != "true" {
		writeError(w, http.StatusBadRequest, wire.KindMissingHeader, "header "+wire.FleetLockHeader+": true is required")
		return wire.FleetLockClientParams{}, false
	}
	req, rerr := decode(r, false, validateFleetLock)
	if rerr != nil {
		if rerr.kind == wire.KindInvalidRequest {
			rerr.kind = wire.KindInvalidClientParams
		}
		writeRequestError(w, rerr)
		return wire.FleetLockClientParams{}, false
	}
	return req.ClientParams, true
}

func (s *Server) preReboot(w http.ResponseWriter, r *http.Request, id Identity) {
	p, ok := fleetLockRequest(w, r)
	if !ok || !actsFor(w, id, p.ID) {
		return
	}
	if _, ok := s.apply(w, r, fsm.TypeAcquire, fsm.Acquire{Datacenter: p.Group, Host: p.ID, Owner: fsm.OwnerFleetLock, Timing: s.cfg.Store.Timing()}); !ok {
		return
	}
	writeJSON(w, struct{}{})
}

func (s *Server) steadyState(w http.ResponseWriter, r *http.Request, id Identity) {
	p, ok := fleetLockRequest(w, r)
	if !ok || !actsFor(w, id, p.ID) {
		return
	}
	if _, ok := s.apply(w, r, fsm.TypeRelease, fsm.SlotRelease{Datacenter: p.Group, Host: p.ID, Owner: fsm.OwnerFleetLock}); !ok {
		return
	}
	writeJSON(w, struct{}{})
}
