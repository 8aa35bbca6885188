package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func (s *Server) datacenters(w http.ResponseWriter, r *http.Request, _ Identity) {
	var out []wire.Datacenter
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		out = st.DatacenterViews(s.cfg.Now(), s.cfg.Store.Timing().AliveWithin)
	})
	writeJSON(w, out)
}

// writeDatacenter answers the current view of datacenter name.
func (s *Server) writeDatacenter(w http.ResponseWriter, name string) {
	var (
		v  wire.Datacenter
		ok bool
	)
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		v, ok = st.DatacenterView(name, s.cfg.Now(), s.cfg.Store.Timing().AliveWithin)
	})
	if !ok {
		writeError(w, http.StatusNotFound, wire.KindNotFound, "unknown datacenter "+name)
		return
	}
	writeJSON(w, v)
}

func (s *Server) datacenter(w http.ResponseWriter, r *http.Request, _ Identity) {
	s.writeDatacenter(w, r.PathValue("name"))
}

// setDatacenter creates or updates a datacenter; the state machine
// validates the resulting policy.
func (s *Server) setDatacenter(w http.ResponseWriter, r *http.Request, _ Identity) {
	name := r.PathValue("name")
	if err := checkName("name", name); err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	upd, rerr := decode(&s.json, r, false, validateDatacenterUpdate)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if _, ok := s.applyAndWait(w, r, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: name, Update: upd}); !ok {
		return
	}
	s.writeDatacenter(w, name)
}

func (s *Server) pauseDatacenter(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, true, validatePause)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	name := r.PathValue("name")
	reason := req.Reason
	if reason == "" {
		reason = "paused by " + id.Name
	}
	if _, ok := s.applyAndWait(w, r, fsm.TypePause, fsm.Pause{Name: name, Reason: reason}); !ok {
		return
	}
	s.writeDatacenter(w, name)
}

func (s *Server) resumeDatacenter(w http.ResponseWriter, r *http.Request, _ Identity) {
	if _, rerr := decode[struct{}](&s.json, r, true, nil); rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	name := r.PathValue("name")
	if _, ok := s.applyAndWait(w, r, fsm.TypeResume, fsm.Resume{Name: name}); !ok {
		return
	}
	s.writeDatacenter(w, name)
}
