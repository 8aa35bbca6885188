package api

import (
	"net/http"
	"strconv"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// events answers events with id > since, oldest first, at most limit
// (default 100, at most 1000).
func (s *Server) events(w http.ResponseWriter, r *http.Request, _ Identity) {
	q := r.URL.Query()
	var since uint64
	limit := 100
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, "since: want an event id")
			return
		}
		since = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > fsm.MaxEvents {
			writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, "limit: want 0..1000")
			return
		}
		if n > 0 {
			limit = n
		}
	}
	var out []wire.Event
	s.cfg.Store.FSM().View(func(st *fsm.State) { out = st.EventViews(since, limit) })
	writeJSON(w, out)
}
