package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func (s *Server) hosts(w http.ResponseWriter, r *http.Request, _ Identity) {
	var out []wire.Host
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		out = st.HostViews(r.URL.Query().Get("dc"), s.cfg.Now(), s.cfg.Store.Timing().AliveWithin)
	})
	writeJSON(w, out)
}

func (s *Server) host(w http.ResponseWriter, r *http.Request, _ Identity) {
	var (
		v  wire.Host
		ok bool
	)
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		v, ok = st.HostView(r.PathValue("id"), s.cfg.Now(), s.cfg.Store.Timing().AliveWithin)
	})
	if !ok {
		writeError(w, http.StatusNotFound, wire.KindNotFound, "unknown host "+r.PathValue("id"))
		return
	}
	writeJSON(w, v)
}
