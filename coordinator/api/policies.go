package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// policies lists the pushed policies with their coverage.
func (s *Server) policies(w http.ResponseWriter, r *http.Request, _ Identity) {
	var out []wire.Policy
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		out = st.PolicyViews(s.cfg.Now(), s.cfg.Store.Timing().AliveWithin)
	})
	writeJSON(w, out)
}

// writePolicy answers the current view of policy id.
func (s *Server) writePolicy(w http.ResponseWriter, id string) {
	var (
		out wire.Policy
		ok  bool
	)
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		for _, v := range st.PolicyViews(s.cfg.Now(), s.cfg.Store.Timing().AliveWithin) {
			if v.ID == id {
				out, ok = v, true
			}
		}
	})
	if !ok {
		writeError(w, http.StatusNotFound, wire.KindNotFound, "unknown policy "+id)
		return
	}
	writeJSON(w, out)
}

// pushPolicy verifies a signed policy against the coordinator's trusted
// policy keys and commits it; agents get it with their desired state and
// spread it through their datacenter's gossip pool.
func (s *Server) pushPolicy(w http.ResponseWriter, r *http.Request, _ Identity) {
	req, rerr := decode(&s.json, r, false, validatePolicyPush)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if len(s.cfg.PolicyKeys) == 0 {
		writeError(w, http.StatusForbidden, wire.KindForbidden, "no trusted policy keys are configured ([policies] trusted_keys)")
		return
	}
	v, err := policy.Open([]byte(req.Document), req.Signature, s.cfg.PolicyKeys)
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	if v.Expired(s.cfg.Now()) {
		// Decode with the clock says precisely what is wrong.
		_, err := policy.Decode([]byte(req.Document), s.cfg.Now())
		if err == nil {
			err = fmt.Errorf("policy %s expired at %s", v.Policy().ID, v.Policy().Expires.UTC().Format(time.RFC3339))
		}
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	p, keyID := v.Policy(), v.KeyID()
	rec := fsm.Policy{ID: p.ID, Version: p.Version, CVE: p.CVE, Kind: string(p.Kind), Mode: string(p.Mode),
		Datacenters: p.AppliesTo.Datacenters, Expires: p.Expires.UTC().Truncate(time.Second), KeyID: keyID,
		Document: req.Document, Signature: append([]byte(nil), req.Signature...)}
	if _, ok := s.applyAndWait(w, r, fsm.TypePushPolicy, fsm.PushPolicy{Policy: rec}); !ok {
		return
	}
	s.writePolicy(w, p.ID)
}

// retirePolicy retires a policy fleet-wide: agents remove it.
func (s *Server) retirePolicy(w http.ResponseWriter, r *http.Request, id Identity) {
	req, rerr := decode(&s.json, r, false, validatePolicyRetire)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if req.Reason == "" {
		req.Reason = "retired by " + id.Name
	}
	if _, ok := s.applyAndWait(w, r, fsm.TypeRetirePolicy, fsm.RetirePolicy{ID: req.ID, Reason: req.Reason}); !ok {
		return
	}
	s.writePolicy(w, req.ID)
}
