package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// cveShow answers the fleet's exposure to one CVE and the playbook per
// kernel line (krollctl cve show), computed from this node's state (a
// read: a follower answers from what it has applied).
func (s *Server) cveShow(w http.ResponseWriter, r *http.Request, _ Identity) {
	id := r.PathValue("id")
	if rerr := validateCVE(id); rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	var rep wire.CVEReport
	s.cfg.Store.FSM().View(func(st *fsm.State) { rep = st.CVEExposure(id) })
	writeJSON(w, rep)
}
