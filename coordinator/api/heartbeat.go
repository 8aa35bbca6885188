package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// heartbeat registers a host or refreshes it, and answers its desired
// state. It waits for the local apply, so the host is readable on this node
// when the agent gets its answer.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, id Identity) {
	hb, rerr := decode(r, false, validateHeartbeat)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if !actsFor(w, id, hb.HostID) {
		return
	}
	res, ok := s.applyAndWait(w, r, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: hb})
	if !ok {
		return
	}
	ds := wire.DesiredState{HeartbeatIntervalSeconds: int(s.cfg.HeartbeatInterval.Seconds()), Slot: res.Slot, Release: res.Release,
		Policies: res.Policies, RetiredPolicies: res.RetiredPolicies, Retirements: res.Retirements, Datacenter: res.Limits, GossipSeeds: res.GossipSeeds}
	writeJSON(w, ds)
}
