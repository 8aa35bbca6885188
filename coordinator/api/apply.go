package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	pathInternalApply = "/internal/v1/apply"
	pathInternalJoin  = "/internal/v1/membership"
)

// forwardedCommand is a command a follower forwards to the leader, which
// stamps it with its own clock.
type forwardedCommand struct {
	Type    fsm.Type        `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// apply runs a command on the leader: directly when this node leads, else
// forwarded to the leader over HTTP. It writes the error response itself
// and returns ok=false when the command did not run or was refused.
func (s *Server) apply(w http.ResponseWriter, r *http.Request, typ fsm.Type, payload any) (fsm.Result, bool) {
	res, err := s.applyOrForward(r.Context(), typ, payload)
	if err != nil {
		kind := wire.KindInternal
		var fe *forwardError
		switch {
		case errors.Is(err, errNoLeader):
			kind = wire.KindNoLeader
		case errors.Is(err, errOutcomeUnknown), errors.Is(err, store.ErrOutcomeUnknown):
			kind = wire.KindOutcomeUnknown
		case errors.As(err, &fe) && fe.kind == wire.KindOverloaded:
			// The leader shed the forwarded command: so does this node,
			// with its own Retry-After.
			s.cfg.Metrics.shed.WithLabelValues("leader").Inc()
			s.writeOverloaded(w, "the leader is past its capacity")
			return res, false
		case errors.As(err, &fe):
			writeError(w, fe.status, fe.kind, fe.value)
			return res, false
		case errors.Is(err, fsm.ErrHalted):
			// Fail closed: this node's state machine stopped applying.
			s.cfg.Logger.Error("apply refused: state machine halted", "type", typ, "err", err)
			writeError(w, http.StatusServiceUnavailable, wire.KindInternal, err.Error())
			return res, false
		}
		s.cfg.Logger.Warn("apply", "type", typ, "err", err)
		writeError(w, statusOf(kind), kind, err.Error())
		return res, false
	}
	s.cfg.Metrics.applied(typ, res)
	if res.Err != nil {
		writeResultError(w, res.Err)
		return res, false
	}
	return res, true
}

// errNoLeader: no leader could take the command, which was not proposed.
var errNoLeader = errors.New("the cluster has no leader right now; retry shortly")

// errOutcomeUnknown: the command was sent to the leader, or may have been,
// and no answer came back; it may have been applied.
var errOutcomeUnknown = errors.New("the leader did not answer; the command may or may not have been applied")

// forwardError is an error response from the leader, passed through.
type forwardError struct {
	status      int
	kind, value string
}

func (e *forwardError) Error() string { return fmt.Sprintf("leader: %s: %s", e.kind, e.value) }

func (s *Server) applyOrForward(ctx context.Context, typ fsm.Type, payload any) (fsm.Result, error) {
	start := time.Now()
	res, err := s.cfg.Store.Apply(ctx, typ, payload)
	if !errors.Is(err, store.ErrNotLeader) {
		if err == nil {
			s.cfg.Metrics.commit.Observe(time.Since(start).Seconds())
		}
		return res, err
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return res, err
	}
	var out fsm.Result
	err = s.forward(ctx, pathInternalApply, forwardedCommand{Type: typ, Payload: raw}, &out)
	return out, err
}

// applyAndWait is apply for handlers that answer from the local state
// afterwards: on a follower it also waits until the command is applied
// locally (read-your-writes). Handlers answering from the command's result
// skip the wait, which costs a follower up to one Raft heartbeat.
func (s *Server) applyAndWait(w http.ResponseWriter, r *http.Request, typ fsm.Type, payload any) (fsm.Result, bool) {
	res, ok := s.apply(w, r, typ, payload)
	if !ok {
		return res, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.WaitApplied(ctx, res.Index); err != nil {
		// Applied, but not yet here: the client cannot be told the
		// result, only that the command may have taken effect.
		writeError(w, http.StatusServiceUnavailable, wire.KindOutcomeUnknown, "applied at index "+strconv.FormatUint(res.Index, 10)+" but this node has not caught up: "+err.Error())
		return res, false
	}
	return res, true
}

// Announce records this node's HTTP address in the replicated state
// (forwarded to the leader when this node follows), retrying until it
// succeeds or ctx ends; krollctl cluster members shows it.
func (s *Server) Announce(ctx context.Context, self fsm.SetMember) {
	for {
		if _, err := s.applyOrForward(ctx, fsm.TypeSetMember, self); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// forward POSTs body to the leader's internal route and decodes the reply.
func (s *Server) forward(ctx context.Context, path string, body, out any) error {
	leaderID, addr := s.cfg.Store.Leader()
	if leaderID == "" || addr == "" || leaderID == s.cfg.Store.NodeID() {
		return errNoLeader
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.PeerScheme+"://"+addr+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.PeerToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.PeerToken)
	}
	// Whether any request reached the wire: a call that failed before its
	// headers were written (refused connection, TLS handshake, a peer
	// certificate refused) was never seen by anyone; after, the other end
	// may have acted on it.
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }}))
	resp, err := s.cfg.PeerClient.Do(req)
	if err != nil {
		if !wrote.Load() {
			return fmt.Errorf("%w (forwarding to leader %s at %s: %v)", errNoLeader, leaderID, addr, err)
		}
		return fmt.Errorf("%w (forwarding to leader %s at %s: %v)", errOutcomeUnknown, leaderID, addr, err)
	}
	defer resp.Body.Close()
	if resp.TLS != nil {
		// The member answering at the leader's HTTP address must be the
		// leader itself.
		if id, err := s.peerOf(*resp.TLS); err != nil || id != leaderID {
			// Another member read the request: had it become the
			// leader, it may have applied it.
			return fmt.Errorf("%w (forwarding to leader %s at %s: answered by %q: %v)", errOutcomeUnknown, leaderID, addr, id, err)
		}
	}
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%w (forwarding to leader %s: reading its answer: %v)", errOutcomeUnknown, leaderID, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e wire.Error
		if json.Unmarshal(respBody, &e) != nil || e.Kind == "" {
			e = wire.Error{Kind: wire.KindInternal, Value: fmt.Sprintf("leader %s answered HTTP %d", leaderID, resp.StatusCode)}
		}
		switch e.Kind {
		case wire.KindNoLeader:
			return errNoLeader
		case wire.KindOutcomeUnknown:
			return fmt.Errorf("%w (leader %s: %s)", errOutcomeUnknown, leaderID, e.Value)
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			// The leader refused this node's peer credentials: the cluster
			// is misconfigured; the client's credentials were fine.
			s.cfg.Logger.Error("leader refused this node's peer credentials", "leader", leaderID, "status", resp.StatusCode, "err", e.Value)
			return &forwardError{status: http.StatusInternalServerError, kind: wire.KindInternal,
				value: fmt.Sprintf("leader %s refused this node's peer credentials: %s", leaderID, e.Value)}
		}
		return &forwardError{status: resp.StatusCode, kind: e.Kind, value: e.Value}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(respBody, out)
}

// internalApply runs a command forwarded by a follower. It answers 200
// with the fsm.Result, also for refused commands (the follower passes the
// refusal on).
func (s *Server) internalApply(w http.ResponseWriter, r *http.Request, id Identity) {
	data, rerr := readBody(r)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	var fc forwardedCommand
	if err := s.json.Decode(data, wire.MaxBodySize, &fc); err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	// A forwarded heartbeat counts against the leader's heartbeat
	// admission, every other command against the priority one.
	class := s.priority
	if fc.Type == fsm.TypeHeartbeat {
		class = s.heartbeats
	}
	s.admitted(class, w, r, id, func() { s.internalApplyAdmitted(w, r, fc) })
}

// internalApplyAdmitted runs an admitted forwarded command.
func (s *Server) internalApplyAdmitted(w http.ResponseWriter, r *http.Request, fc forwardedCommand) {
	res, err := s.cfg.Store.Apply(r.Context(), fc.Type, fc.Payload)
	if err != nil {
		kind := wire.KindInternal
		switch {
		case errors.Is(err, store.ErrNotLeader):
			kind = wire.KindNoLeader
		case errors.Is(err, store.ErrOutcomeUnknown):
			kind = wire.KindOutcomeUnknown
		}
		writeError(w, statusOf(kind), kind, err.Error())
		return
	}
	writeJSON(w, res)
}

// membershipChange is a join or remove forwarded to the leader.
type membershipChange struct {
	Join   *wire.JoinRequest   `json:"join,omitempty"`
	Remove *wire.RemoveRequest `json:"remove,omitempty"`
}

// validateMembership checks a forwarded membership change as the public
// routes check theirs: exactly one of join and remove, each validated.
func validateMembership(mc *membershipChange) error {
	switch {
	case mc.Join != nil && mc.Remove != nil:
		return errors.New("join and remove: set exactly one")
	case mc.Join != nil:
		return validateJoin(mc.Join)
	case mc.Remove != nil:
		return validateRemove(mc.Remove)
	}
	return errors.New("neither join nor remove")
}

func (s *Server) internalJoin(w http.ResponseWriter, r *http.Request, _ Identity) {
	// A peer's request is validated like an operator's: a compromised or
	// buggy peer must not add a voter with an id no operator could give.
	mc, rerr := decode[membershipChange](&s.json, r, false, validateMembership)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	var err error
	switch {
	case mc.Join != nil:
		err = s.cfg.Store.Join(r.Context(), *mc.Join)
	case mc.Remove != nil:
		err = s.cfg.Store.Remove(r.Context(), mc.Remove.ID)
	default:
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, "neither join nor remove")
		return
	}
	if err != nil {
		kind := wire.KindInternal
		if errors.Is(err, store.ErrNotLeader) {
			kind = wire.KindNoLeader
		}
		writeError(w, statusOf(kind), kind, err.Error())
		return
	}
	writeJSON(w, struct{}{})
}
