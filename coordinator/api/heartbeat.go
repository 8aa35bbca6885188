package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// heartbeat registers a host or refreshes it, and answers its desired
// state.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, id Identity) {
	hb, rerr := decode(r, false, validateHeartbeat)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if !actsFor(w, id, hb.HostID) {
		return
	}
	if _, ok := s.apply(w, r, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: hb}); !ok {
		return
	}
	ds := wire.DesiredState{HeartbeatIntervalSeconds: int(s.cfg.HeartbeatInterval.Seconds())}
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		if dc := st.Datacenters[hb.Datacenter]; dc != nil {
			if sl := dc.Slots[hb.HostID]; sl != nil {
				ds.Slot = &wire.Slot{Datacenter: dc.Name, HostID: sl.Host, Token: sl.Token, Granted: sl.Granted,
					LeaseExpires: sl.LeaseExpires, RebootDeadline: sl.RebootDeadline, Owner: sl.Owner, Lost: sl.Lost}
			}
		}
	})
	writeJSON(w, ds)
}
