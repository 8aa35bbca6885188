package api

import (
	"errors"
	"net/http"
	"strings"

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

// removeHost forgets a decommissioned host (krollctl host remove): it
// leaves its datacenter's slot limit base and capacity floor. A slot
// holder is refused unless forced with a reason. It answers the host as it
// was.
func (s *Server) removeHost(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, true, validateHostRemove)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	host := r.PathValue("id")
	if err := checkName("id", host); err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	var (
		v  wire.Host
		ok bool
	)
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		v, ok = st.HostView(host, s.cfg.Now(), s.cfg.Store.Timing().AliveWithin)
	})
	reason := strings.TrimSpace(req.Reason)
	if reason == "" && !req.Force {
		reason = "removed by " + id.Name
	} else if reason != "" {
		reason += " (by " + id.Name + ")"
	}
	if _, applied := s.apply(w, r, fsm.TypeRemoveHost, fsm.RemoveHost{Host: host, Force: req.Force, Reason: reason}); !applied {
		return
	}
	if !ok {
		v = wire.Host{ID: host}
	}
	writeJSON(w, v)
}

func validateHostRemove(req *wire.HostRemoveRequest) error {
	if len(req.Reason) > 1024 {
		return errors.New("reason: at most 1024 bytes")
	}
	if req.Force && strings.TrimSpace(req.Reason) == "" {
		return errors.New("reason: forcing a removal needs one (it is recorded in the event log)")
	}
	return nil
}
