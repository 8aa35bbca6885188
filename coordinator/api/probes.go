package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// healthz answers 200 while the process serves.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]string{"status": "ok", "node": s.cfg.Store.NodeID()})
}

// readyz answers 200 when the node is a member of a quorum with a leader
// and its state machine applies; 503 with the reason when it halted.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if h, ok := s.cfg.Store.(halter); ok {
		if err := h.Halted(); err != nil {
			writeError(w, http.StatusServiceUnavailable, wire.KindInternal, err.Error())
			return
		}
	}
	leader, _ := s.cfg.Store.Leader()
	if !s.cfg.Store.Ready() {
		writeError(w, http.StatusServiceUnavailable, wire.KindNoLeader, "no leader known to "+s.cfg.Store.NodeID())
		return
	}
	writeJSON(w, map[string]string{"status": "ready", "node": s.cfg.Store.NodeID(), "leader": leader})
}
