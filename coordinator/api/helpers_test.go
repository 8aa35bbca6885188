package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/strictjson"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Bearer tokens of the test servers, by role.
const (
	tokAdmin   = "admin-secret"
	tokOperate = "operate-secret"
	tokRead    = "read-secret"
	tokAgent   = "agent-secret"
	tokPeer    = "peer-secret"
)

// testAuth accepts one token per role.
func testAuth(t testing.TB) *Auth {
	t.Helper()
	a := &Auth{}
	for _, e := range []struct {
		name, tok string
		role      Role
	}{
		{"alice", tokAdmin, RoleAdmin},
		{"olga", tokOperate, RoleOperate},
		{"rita", tokRead, RoleRead},
		{"agents", tokAgent, RoleAgent},
		{"peers", tokPeer, RolePeer},
	} {
		tok, err := NewToken(e.name, e.role, HashToken(e.tok))
		if err != nil {
			t.Fatal(err)
		}
		a.Tokens = append(a.Tokens, tok)
	}
	return a
}

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// storeConfig is a node configuration with short Raft timeouts.
func storeConfig(t testing.TB, id, dir, raftAddr, httpAddr string, peers map[string]string) store.Config {
	return store.Config{
		NodeID: id, DataDir: dir, RaftAddr: raftAddr, HTTPAddr: httpAddr, Peers: peers, PeerToken: tokPeer,
		TickInterval: 50 * time.Millisecond,
		// Short enough for quick elections, long enough not to flap when
		// make test runs other heavy packages (VM builds, simulators) at
		// the same time on two cores.
		HeartbeatTimeout: 400 * time.Millisecond, ElectionTimeout: 400 * time.Millisecond,
		LeaderLeaseTimeout: 400 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
		Logger:             discardLogger,
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// env is a real single-node store behind an api.Server on an httptest
// server.
type env struct {
	t     testing.TB
	store *store.Store
	api   *Server
	srv   *httptest.Server
}

// newEnv starts a single-node store in a temporary directory, waits until
// it leads, and serves an api.Server for it over plain HTTP.
func newEnv(t testing.TB) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	st := openLeader(t, t.TempDir(), srv.Listener.Addr().String())
	e := &env{t: t, store: st, api: New(Config{Store: st, Auth: testAuth(t), Logger: discardLogger, PeerToken: tokPeer}), srv: srv}
	srv.Config.Handler = e.api
	srv.Start()
	t.Cleanup(srv.Close) // runs before the store's Close
	return e
}

// openLeader opens a single-node store and waits until it leads and has
// announced itself.
func openLeader(t testing.TB, dir, httpAddr string) *store.Store {
	t.Helper()
	addr := freeAddr(t)
	st, err := store.Open(storeConfig(t, "c1", dir, addr, httpAddr, map[string]string{"c1": addr}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	waitFor(t, 10*time.Second, "leadership", st.IsLeader)
	waitFor(t, 10*time.Second, "the leader's announcement", func() bool {
		ms, err := st.Members()
		return err == nil && len(ms) == 1 && ms[0].HTTPAddr == httpAddr
	})
	return st
}

// response is an answered request.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with an optional bearer token and JSON body (a
// string or []byte is sent as is, anything else is marshaled).
func (e *env) do(method, path, token string, body any, header ...string) response {
	e.t.Helper()
	return doRequest(e.t, e.srv.Client(), e.srv.URL, method, path, token, body, header...)
}

func doRequest(t testing.TB, c *http.Client, base, method, path, token string, body any, header ...string) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// checkError asserts an error response: status, and a body that decodes
// strictly as exactly {"kind","value"} with kind want and a non-empty
// value.
func checkError(t testing.TB, r response, status int, kind string) wire.Error {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	e := errorBody(t, r.status, r.header, r.body)
	if e.Kind != kind {
		t.Fatalf("kind %q, want %q (value %q)", e.Kind, kind, e.Value)
	}
	return e
}

// errorBody checks that an error body is exactly {"kind","value"} with a
// known kind and a non-empty value.
func errorBody(t testing.TB, status int, h http.Header, body []byte) wire.Error {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("status %d: Content-Type %q, want application/json", status, ct)
	}
	var e wire.Error
	if err := strictjson.Decode(body, 0, &e); err != nil {
		t.Fatalf("status %d: error body %q is not {kind,value}: %v", status, body, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil || len(keys) != 2 {
		t.Fatalf("status %d: error body %q: want exactly the keys kind and value", status, body)
	}
	if !slices.Contains(knownKinds, e.Kind) || e.Value == "" {
		t.Fatalf("status %d: error body %q: unknown kind or empty value", status, body)
	}
	return e
}

var knownKinds = []string{
	wire.KindMissingHeader, wire.KindInvalidClientParams, wire.KindInvalidRequest, wire.KindRequestTooLarge,
	wire.KindMethodNotAllowed, wire.KindNotFound, wire.KindUnauthorized, wire.KindForbidden, wire.KindStaleToken,
	wire.KindNotHolder, wire.KindConflict, wire.KindNoLeader, wire.KindOutcomeUnknown, wire.KindInternal,
	wire.KindSemaphoreFull, wire.KindCapacityFloor, wire.KindPaused, wire.KindOutsideWindow,
	wire.KindFailureBudget, wire.KindUnknownDC, wire.KindUnknownHost, wire.KindUnknownDatacenter, wire.KindHostLimit,
	wire.KindOverloaded, wire.KindReleaseWithdrawn,
}

// decodeOK asserts status 200 and decodes the body into a T.
func decodeOK[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func ptr[T any](v T) *T { return &v }

// mustOK asserts status 200.
func mustOK(t testing.TB, r response) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
}

// setDC creates or updates a datacenter through the API.
func (e *env) setDC(name string, upd wire.DatacenterUpdate) wire.Datacenter {
	e.t.Helper()
	return decodeOK[wire.Datacenter](e.t, e.do(http.MethodPut, wire.PathDatacenter+name, tokOperate, upd))
}

// heartbeat registers host in dc through the agent API.
func (e *env) heartbeat(host, dc string) {
	e.t.Helper()
	mustOK(e.t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: host, Datacenter: dc, Phase: wire.PhaseIdle}))
}

// dcState reads a datacenter straight from the state machine.
func (e *env) dcState(name string) (fsm.Datacenter, bool) {
	var (
		dc fsm.Datacenter
		ok bool
	)
	e.store.FSM().View(func(s *fsm.State) {
		if d := s.Datacenters[name]; d != nil {
			dc, ok = *d, true
		}
	})
	return dc, ok
}
