package api

import (
	"net/http"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// releases lists the known releases.
func (s *Server) releases(w http.ResponseWriter, r *http.Request, _ Identity) {
	var out []wire.Release
	s.cfg.Store.FSM().View(func(st *fsm.State) { out = st.ReleaseViews() })
	writeJSON(w, out)
}

// addRelease verifies a signed release manifest against the coordinator's
// trusted release keys and records it.
func (s *Server) addRelease(w http.ResponseWriter, r *http.Request, _ Identity) {
	req, rerr := decode(&s.json, r, false, validateReleaseAdd)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if len(s.cfg.ReleaseKeys) == 0 {
		writeError(w, http.StatusForbidden, wire.KindForbidden, "no trusted release keys are configured ([releases] trusted_keys)")
		return
	}
	v, err := release.Open(req.Manifest, req.Signature, s.cfg.ReleaseKeys)
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	m, keyID := v.Manifest(), v.KeyID()
	rel := fsm.Release{
		ID: m.ID, Line: m.Line, KernelVersion: m.KernelVersion, UpstreamVersion: m.UpstreamVersion,
		Kind: string(m.Kind), Created: m.Created, KeyID: keyID,
		Manifest: append([]byte(nil), req.Manifest...), Signature: append([]byte(nil), req.Signature...),
	}
	if _, ok := s.applyAndWait(w, r, fsm.TypeAddRelease, fsm.AddRelease{Release: rel}); !ok {
		return
	}
	var out wire.Release
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		for _, v := range st.ReleaseViews() {
			if v.ID == m.ID {
				out = v
			}
		}
	})
	writeJSON(w, out)
}
