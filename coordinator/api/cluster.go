package api

import (
	"errors"
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func (s *Server) members(w http.ResponseWriter, r *http.Request, _ Identity) {
	m, err := s.cfg.Store.Members()
	if err != nil {
		writeError(w, http.StatusInternalServerError, wire.KindInternal, err.Error())
		return
	}
	writeJSON(w, m)
}

// changeMembership runs a join or remove on the leader (forwarded when
// this node follows) and answers the new member list.
func (s *Server) changeMembership(w http.ResponseWriter, r *http.Request, mc membershipChange) {
	var err error
	switch {
	case mc.Join != nil:
		err = s.cfg.Store.Join(r.Context(), *mc.Join)
	default:
		err = s.cfg.Store.Remove(r.Context(), mc.Remove.ID)
	}
	if errors.Is(err, store.ErrNotLeader) {
		err = s.forward(r.Context(), pathInternalJoin, mc, nil)
	}
	if err != nil {
		var fe *forwardError
		switch {
		case errors.As(err, &fe):
			writeError(w, fe.status, fe.kind, fe.value)
		case errors.Is(err, errNoLeader):
			writeError(w, http.StatusServiceUnavailable, wire.KindNoLeader, err.Error())
		case errors.Is(err, errOutcomeUnknown):
			writeError(w, http.StatusServiceUnavailable, wire.KindOutcomeUnknown, err.Error())
		default:
			writeError(w, http.StatusConflict, wire.KindConflict, err.Error())
		}
		return
	}
	s.members(w, r, Identity{})
}

func (s *Server) join(w http.ResponseWriter, r *http.Request, _ Identity) {
	req, rerr := decode(&s.json, r, false, validateJoin)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	s.changeMembership(w, r, membershipChange{Join: &req})
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, _ Identity) {
	req, rerr := decode(&s.json, r, false, validateRemove)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	s.changeMembership(w, r, membershipChange{Remove: &req})
}
