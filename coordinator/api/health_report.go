package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// healthReport records an agent's verdict on its new kernel; unhealthy
// reports count against the datacenter's failure budget.
func (s *Server) healthReport(w http.ResponseWriter, r *http.Request, id Identity) {
	rep, rerr := decode(&s.json, r, false, validateHealth)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if !actsFor(w, id, rep.HostID) {
		return
	}
	if _, ok := s.apply(w, r, fsm.TypeHealth, fsm.Health{HealthReport: rep}); !ok {
		return
	}
	writeJSON(w, struct{}{})
}
