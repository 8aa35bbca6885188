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
	// The version of the documents the agent holds shapes only the answer;
	// it is no part of the host's replicated state.
	have := hb.DesiredVersion
	hb.DesiredVersion = ""
	if hb.View != nil {
		var registered int
		s.cfg.Store.FSM().View(func(st *fsm.State) {
			registered = len(st.HostsIn(hb.Datacenter))
			if h := st.HostsIn(hb.Datacenter)[hb.HostID]; h == nil {
				registered++ // the reporter registers now
			}
		})
		v := clampView(*hb.View, registered)
		hb.View = &v
	}
	res, ok := s.applyAndWait(w, r, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: hb, Timing: s.cfg.Store.Timing()})
	if !ok {
		return
	}
	writeJSON(w, s.desiredState(have, res))
}

// clampView bounds a gossip view by the datacenter's registered size: no
// count can exceed it, and the out-of-service counts together cannot
// either (the state machine bounds them again, by its own count).
func clampView(v wire.DCView, registered int) wire.DCView {
	left := registered
	take := func(n int) int {
		n = min(n, left)
		left -= n
		return n
	}
	v.Alive = min(v.Alive, registered)
	v.Dead = take(v.Dead)
	v.Rebooting = take(v.Rebooting)
	v.Draining = take(v.Draining)
	return v
}
