package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// setHostLine assigns a host a kernel line (krollctl host set-line), or
// clears the operator's assignment (an empty line). The assignment wins
// over the datacenter's line rule and the agent's configured line; the
// host moves when it is at rest and the move is no downgrade (see
// coordinator/fsm/lines.go). It answers the host as it is then: its line,
// or the line pending and why.
func (s *Server) setHostLine(w http.ResponseWriter, r *http.Request, id Identity) {
	host := r.PathValue("id")
	if err := checkName("id", host); err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	req, rerr := decode(&s.json, r, false, validateHostLine)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "by " + id.Name
	} else {
		reason += " (by " + id.Name + ")"
	}
	if _, ok := s.applyAndWait(w, r, fsm.TypeSetHostLine, fsm.SetHostLine{Host: host, Line: req.Line, Force: req.Force, Reason: reason}); !ok {
		return
	}
	var (
		v     wire.Host
		found bool
	)
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		v, found = st.HostView(host, s.cfg.Now(), s.cfg.Store.Timing().AliveWithin)
	})
	if !found {
		writeError(w, http.StatusNotFound, wire.KindNotFound, "unknown host "+host)
		return
	}
	writeJSON(w, v)
}

func validateHostLine(req *wire.HostLineRequest) error {
	if req.Line != "" && !fsm.ValidLine(req.Line) {
		return fmt.Errorf("line: %q is not a kernel line (MAJOR.MINOR, such as 6.12)", req.Line)
	}
	if req.Line == "" && req.Force {
		return errors.New("force: nothing to force when clearing an assignment")
	}
	if len(req.Reason) > 1024 {
		return errors.New("reason: at most 1024 bytes")
	}
	return nil
}
