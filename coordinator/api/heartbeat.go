package api

import (
	"net/http"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// heartbeat registers a host or refreshes it, and answers its desired
// state. A heartbeat that carries no durable change (durableChange) is
// answered at once from this node's state, without Raft, while the node
// is current (store.Store.Current: the leader, or a follower that heard
// from the leader recently): the node only
// records in memory that it heard the host (the leader aggregates those
// records, see store.Heard). One that does goes through Raft; the handler
// waits for the local apply then, so the host is readable on this node
// when the agent gets its answer. A node that is not current (cut off
// from the majority, no leader) takes the Raft path too and so answers
// 503 no_leader: its agents move to another node instead of living on
// its stale state (a policy push would not reach them).
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, id Identity) {
	hb, rerr := decode(&s.json, r, false, validateHeartbeat)
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
	timing := s.cfg.Store.Timing()
	var (
		why   string
		res   fsm.Result
		local bool
	)
	current := s.cfg.Store.Current()
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		if hb.View != nil {
			registered := len(st.HostsIn(hb.Datacenter))
			if h := st.HostsIn(hb.Datacenter)[hb.HostID]; h == nil {
				registered++ // the reporter registers now
			}
			v := clampView(*hb.View, registered)
			hb.View = &v
		}
		if why = durableChange(st, hb); why == "" && current {
			res, local = st.HeartbeatAnswer(hb.HostID, timing)
		}
	})
	if !local {
		var ok bool
		if res, ok = s.applyAndWait(w, r, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: hb, Timing: timing}); !ok {
			return
		}
	}
	s.cfg.Metrics.heartbeat(local)
	s.cfg.Store.Heard(hb.HostID, time.Now())
	writeJSON(w, s.desiredState(have, res))
}

// durableChange is the "durable change?" decision of a heartbeat: why it
// must go through Raft (a new host, a move, a silent host heard again, a
// phase, kernel, boot id, policy state, gossip address or material gossip
// view change, see fsm.State.DurableChange), or "" when this node answers
// it from its own state.
func durableChange(st *fsm.State, hb wire.Heartbeat) string {
	return st.DurableChange(hb)
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
