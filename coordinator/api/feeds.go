package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// feedBuilds lists the builds the feeds found and refused (unsigned,
// bad-signature, mismatch, invalid, conflict), newest first; ?feed=NAME
// keeps one feed's.
func (s *Server) feedBuilds(w http.ResponseWriter, r *http.Request, _ Identity) {
	feed := r.URL.Query().Get("feed")
	if feed != "" && !fsm.ValidName(feed) {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, "invalid feed name")
		return
	}
	var out []wire.FeedBuild
	s.cfg.Store.FSM().View(func(st *fsm.State) { out = st.FeedBuildViews(feed) })
	writeJSON(w, out)
}
