package api

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// followerOf is a Store that is not the leader and names leaderAddr as
// the leader's HTTP address, so every command is forwarded there.
type followerOf struct {
	Store
	leaderAddr string
}

func (f *followerOf) Apply(context.Context, fsm.Type, any) (fsm.Result, error) {
	return fsm.Result{}, store.ErrNotLeader
}
func (f *followerOf) IsLeader() bool                { return false }
func (f *followerOf) Leader() (id, httpAddr string) { return "c9", f.leaderAddr }

// TestForwardOutcome: a follower tells a command that never reached a
// leader (503 no_leader: safe to retry, nothing happened) from one that
// may have been applied (503 outcome_unknown): the leader's address
// refuses connections; the leader reads the request and drops the
// connection; the leader answers that leadership was lost mid-commit; the
// leader answers no_leader.
func TestForwardOutcome(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	e.heartbeat("h1", "fra")

	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()

	leader := func(h http.HandlerFunc) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	dropped := leader(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	lost := leader(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusServiceUnavailable, wire.KindOutcomeUnknown, store.ErrOutcomeUnknown.Error())
	})
	noLeader := leader(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusServiceUnavailable, wire.KindNoLeader, "not the leader")
	})
	garbage := leader(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})

	for _, tc := range []struct {
		name, addr, kind string
	}{
		{"connection refused", refused, wire.KindNoLeader},
		{"leader read it and dropped the connection", dropped, wire.KindOutcomeUnknown},
		{"leader lost leadership committing it", lost, wire.KindOutcomeUnknown},
		{"leader was not the leader", noLeader, wire.KindNoLeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.api = New(Config{Store: &followerOf{Store: e.store, leaderAddr: tc.addr}, Auth: testAuth(t), Logger: discardLogger, PeerToken: tokPeer})
			e.srv.Config.Handler = e.api
			checkError(t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}), 503, tc.kind)
			checkError(t, e.do(http.MethodPost, wire.PathSlotRelease, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra", Token: 1}), 503, tc.kind)
		})
	}
	// A leader answering an error without a body: not a known refusal.
	e.api = New(Config{Store: &followerOf{Store: e.store, leaderAddr: garbage}, Auth: testAuth(t), Logger: discardLogger, PeerToken: tokPeer})
	e.srv.Config.Handler = e.api
	if r := e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}); r.status < 500 {
		t.Fatalf("a leader's bare 502 was passed on as %d", r.status)
	}
}
