package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// clusterNode is one coordinator: a Raft node and its API on an httptest
// server whose address is the node's HTTP address.
type clusterNode struct {
	id       string
	raftAddr string
	srv      *httptest.Server
	store    *store.Store
	api      *Server
	cancel   context.CancelFunc
}

func (n *clusterNode) do(t testing.TB, method, path, token string, body any, header ...string) response {
	t.Helper()
	return doRequest(t, n.srv.Client(), n.srv.URL, method, path, token, body, header...)
}

// stop shuts the node's HTTP server and Raft node down.
func (n *clusterNode) stop() {
	if n.store == nil {
		return
	}
	n.cancel()
	n.srv.Close()
	n.store.Close()
	n.store = nil
}

// testCluster is n coordinators on loopback, each with its data on disk;
// only the nodes named in start run.
type testCluster struct {
	t     testing.TB
	nodes []*clusterNode
}

func newTestCluster(t testing.TB, n int, start ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	peers := map[string]string{}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("c%d", i)
		peers[id] = freeAddr(t)
		c.nodes = append(c.nodes, &clusterNode{id: id, raftAddr: peers[id]})
	}
	for _, nd := range c.nodes {
		if len(start) > 0 && !strings.Contains(strings.Join(start, ","), nd.id) {
			continue
		}
		// The unstarted server's listener fixes the HTTP address before the
		// Raft node, which announces it, opens.
		nd.srv = httptest.NewUnstartedServer(nil)
		httpAddr := nd.srv.Listener.Addr().String()
		st, err := store.Open(storeConfig(t, nd.id, t.TempDir(), nd.raftAddr, httpAddr, peers))
		if err != nil {
			t.Fatal(err)
		}
		nd.store = st
		nd.api = New(Config{Store: st, Auth: testAuth(t), PeerToken: tokPeer, Logger: discardLogger})
		nd.srv.Config.Handler = nd.api
		nd.srv.Start()
		ctx, cancel := context.WithCancel(context.Background())
		nd.cancel = cancel
		go nd.api.Announce(ctx, fsm.SetMember{ID: nd.id, RaftAddr: nd.raftAddr, HTTPAddr: httpAddr})
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.stop()
		}
	})
	return c
}

// leader waits until a running node leads and every running node knows
// the leader's HTTP address, and returns the leader.
func (c *testCluster) leader() *clusterNode {
	c.t.Helper()
	var l *clusterNode
	waitFor(c.t, 10*time.Second, "a leader known to every node", func() bool {
		l = nil
		for _, nd := range c.nodes {
			if nd.store != nil && nd.store.IsLeader() {
				l = nd
			}
		}
		if l == nil {
			return false
		}
		for _, nd := range c.nodes {
			if nd.store == nil {
				continue
			}
			if id, addr := nd.store.Leader(); id != l.id || addr != l.srv.Listener.Addr().String() {
				return false
			}
		}
		return true
	})
	return l
}

func (c *testCluster) followers(leader *clusterNode) []*clusterNode {
	var out []*clusterNode
	for _, nd := range c.nodes {
		if nd != leader && nd.store != nil {
			out = append(out, nd)
		}
	}
	return out
}

// TestForwardReadYourWrites: a write sent to a follower runs on the
// leader, and its answer and every read after it on that follower show it.
func TestForwardReadYourWrites(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.followers(c.leader())[0]
	mustOK(t, f.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(1)}))
	for i := 1; i <= 30; i++ {
		d := decodeOK[wire.Datacenter](t, f.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{MinHealthyPct: ptr(i)}))
		if d.MinHealthyPct != i {
			t.Fatalf("write %d: PUT on the follower answered min_healthy_pct %d, want %d", i, d.MinHealthyPct, i)
		}
		if d := decodeOK[wire.Datacenter](t, f.do(t, http.MethodGet, wire.PathDatacenter+"fra", tokRead, nil)); d.MinHealthyPct != i {
			t.Fatalf("write %d: GET on the follower right after the PUT: min_healthy_pct %d, want %d", i, d.MinHealthyPct, i)
		}
		host := fmt.Sprintf("h%d", i)
		mustOK(t, f.do(t, http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: host, Datacenter: "fra"}))
		if r := f.do(t, http.MethodGet, wire.PathHost+host, tokRead, nil); r.status != 200 {
			t.Fatalf("write %d: host registered through the follower is not readable there: %d %s", i, r.status, r.body)
		}
	}
}

// TestForwardToLeader: writes sent to a follower run on the leader; the
// leader's refusals reach the client unchanged; without a quorum writes
// answer 503 no_leader.
func TestForwardToLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	fs := c.followers(l)
	f := fs[0]
	// eventually polls a read on node n until ok accepts it (followers
	// apply what they forwarded a moment later; see
	// TestForwardReadYourWrites for the strict check).
	eventually := func(n *clusterNode, path string, ok func(response) bool) {
		t.Helper()
		waitFor(t, 5*time.Second, "GET "+path+" on "+n.id, func() bool { return ok(n.do(t, http.MethodGet, path, tokRead, nil)) })
	}

	// The dc set answer is read on the node that answers; set it on the
	// leader here (TestForwardReadYourWrites sends it to a follower).
	mustOK(t, l.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(1)}))
	eventually(f, wire.PathDatacenter+"fra", func(r response) bool { return r.status == 200 })
	for _, h := range []string{"h1", "h2"} {
		mustOK(t, f.do(t, http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: h, Datacenter: "fra"}))
		eventually(f, wire.PathHost+h, func(r response) bool { return r.status == 200 })
	}
	sl := decodeOK[wire.Slot](t, f.do(t, http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}))
	if sl.HostID != "h1" || sl.Token == 0 {
		t.Fatalf("slot granted through the follower: %+v", sl)
	}
	eventually(f, wire.PathSlots, func(r response) bool {
		slots := decodeOK[[]wire.Slot](t, r)
		return len(slots) == 1 && slots[0].Token == sl.Token
	})

	// The leader's refusals reach the client unchanged, through either
	// follower.
	for _, nd := range fs {
		checkError(t, nd.do(t, http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h2", Datacenter: "fra"}), 409, wire.KindSemaphoreFull)
		checkError(t, nd.do(t, http.MethodPost, wire.PathSlotRenew, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra", Token: sl.Token + 1}), 409, wire.KindStaleToken)
		checkError(t, nd.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{Window: ptr("someday")}), 400, wire.KindInvalidRequest)
		checkError(t, nd.do(t, http.MethodPost, wire.PathDatacenter+"ams"+wire.PathDatacenterPause, tokOperate, nil), 404, wire.KindNotFound)
		checkError(t, nd.do(t, http.MethodPost, wire.PathFleetLockPreReboot, tokAgent, flBody("node-a", "fra"), flHeader, "true"), 409, wire.KindSemaphoreFull)
	}
	mustOK(t, f.do(t, http.MethodPost, wire.PathSlotRelease, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra", Token: sl.Token}))
	mustOK(t, fs[1].do(t, http.MethodPost, wire.PathFleetLockPreReboot, tokAgent, flBody("node-a", "fra"), flHeader, "true"))
	eventually(fs[1], wire.PathSlots, func(r response) bool {
		slots := decodeOK[[]wire.Slot](t, r)
		return len(slots) == 1 && slots[0].HostID == "node-a" && slots[0].Token > sl.Token
	})

	// Every node lists all members with their HTTP addresses once they
	// announced themselves.
	waitFor(t, 5*time.Second, "members with HTTP addresses", func() bool {
		ms := decodeOK[[]wire.Member](t, f.do(t, http.MethodGet, wire.PathMembers, tokRead, nil))
		leaders := 0
		for i, m := range ms {
			if m.HTTPAddr != c.nodes[i].srv.Listener.Addr().String() || m.ID != c.nodes[i].id || !m.Voter {
				return false
			}
			if m.Leader {
				leaders++
			}
		}
		return len(ms) == 3 && leaders == 1
	})
	if m := decodeOK[map[string]string](t, f.do(t, http.MethodGet, "/readyz", "", nil)); m["leader"] != l.id {
		t.Fatalf("readyz on follower: %v", m)
	}
	if r := f.do(t, http.MethodGet, "/metrics", "", nil); !strings.Contains(string(r.body), `kroll_raft_state{state="Follower"} 1`) {
		t.Fatal("follower's /metrics lacks kroll_raft_state Follower")
	}

	// The internal route is for peers only.
	cmd := `{"type":"tick","payload":{}}`
	checkError(t, l.do(t, http.MethodPost, pathInternalApply, "", cmd), 401, wire.KindUnauthorized)
	checkError(t, l.do(t, http.MethodPost, pathInternalApply, tokAdmin, cmd), 403, wire.KindForbidden)
	checkError(t, l.do(t, http.MethodPost, pathInternalApply, tokAgent, cmd), 403, wire.KindForbidden)
	mustOK(t, l.do(t, http.MethodPost, pathInternalApply, tokPeer, cmd))
	checkError(t, f.do(t, http.MethodPost, pathInternalApply, tokPeer, cmd), 503, wire.KindNoLeader)
	checkError(t, l.do(t, http.MethodPost, pathInternalApply, tokPeer, `{"type":"tick"} x`), 400, wire.KindInvalidRequest)
	// So is the liveness route; only the leader takes batches.
	lv := `{"ages_ms":{"h1":10}}`
	checkError(t, l.do(t, http.MethodPost, pathInternalLiveness, "", lv), 401, wire.KindUnauthorized)
	checkError(t, l.do(t, http.MethodPost, pathInternalLiveness, tokAgent, lv), 403, wire.KindForbidden)
	mustOK(t, l.do(t, http.MethodPost, pathInternalLiveness, tokPeer, lv))
	checkError(t, f.do(t, http.MethodPost, pathInternalLiveness, tokPeer, lv), 503, wire.KindNoLeader)
	checkError(t, l.do(t, http.MethodPost, pathInternalLiveness, tokPeer, `{"ages_ms":{"bad id!":10}}`), 400, wire.KindInvalidRequest)
	checkError(t, l.do(t, http.MethodPost, pathInternalLiveness, tokPeer, `{"ages_ms":{"h1":-1}}`), 400, wire.KindInvalidRequest)
	// Peers may read but not operate.
	mustOK(t, f.do(t, http.MethodGet, wire.PathStatus, tokPeer, nil))
	checkError(t, f.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokPeer, wire.DatacenterUpdate{SlotLimit: ptr(1)}), 403, wire.KindForbidden)

	// A follower whose peer token the leader refuses reports its own
	// misconfiguration, not the client's credentials as bad.
	bad := httptest.NewServer(New(Config{Store: f.store, Auth: testAuth(t), PeerToken: "wrong", Logger: discardLogger}))
	defer bad.Close()
	r := doRequest(t, bad.Client(), bad.URL, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(2)})
	if e := errorBody(t, r.status, r.header, r.body); r.status < 500 || e.Kind != wire.KindInternal {
		t.Fatalf("forwarding with a refused peer token: %d %s, want 5xx internal", r.status, r.body)
	}

	// Without a quorum there is no leader: writes answer 503 no_leader,
	// reads go on.
	l.stop()
	fs[1].stop()
	// A write racing the leader's end may go out on a kept connection the
	// leader has just closed: 503 outcome_unknown (the follower cannot tell
	// whether the leader read it). Once the follower has noticed, no
	// leader takes writes: no_leader.
	waitFor(t, 10*time.Second, "writes answered no_leader", func() bool {
		r := f.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(3)})
		e := errorBody(t, r.status, r.header, r.body)
		if r.status != http.StatusServiceUnavailable || (e.Kind != wire.KindNoLeader && e.Kind != wire.KindOutcomeUnknown) {
			t.Fatalf("a write without a leader: %d %s", r.status, r.body)
		}
		return e.Kind == wire.KindNoLeader
	})
	for i := 0; i < 3; i++ {
		checkError(t, f.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(3)}), 503, wire.KindNoLeader)
		checkError(t, f.do(t, http.MethodPost, wire.PathFleetLockSteady, tokAgent, flBody("node-a", "fra"), flHeader, "true"), 503, wire.KindNoLeader)
	}
	waitFor(t, 5*time.Second, "the follower to lose its leader", func() bool {
		return f.do(t, http.MethodGet, "/readyz", "", nil).status == http.StatusServiceUnavailable
	})
	checkError(t, f.do(t, http.MethodGet, "/readyz", "", nil), 503, wire.KindNoLeader)
	// A heartbeat needs a leader too, with a durable change (here a new
	// host) or without (a cut-off follower's state may be stale: its
	// agents must move to another node, see
	// TestHeartbeatLocalAnswerNeedsQuorum).
	checkError(t, f.do(t, http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra"}), 503, wire.KindNoLeader)
	checkError(t, f.do(t, http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h9", Datacenter: "fra"}), 503, wire.KindNoLeader)
	if d := decodeOK[wire.Datacenter](t, f.do(t, http.MethodGet, wire.PathDatacenter+"fra", tokRead, nil)); d.SlotLimit != 1 || d.Name != "fra" {
		t.Fatalf("read without a leader: %+v", d)
	}
	mustOK(t, f.do(t, http.MethodGet, "/healthz", "", nil))
}

// TestNoLeaderOneOfThree: a lone node of a three-node cluster never has a
// leader; it serves reads and probes and refuses writes with 503.
func TestNoLeaderOneOfThree(t *testing.T) {
	c := newTestCluster(t, 3, "c1")
	n := c.nodes[0]
	tests := []struct {
		name         string
		method, path string
		token        string
		body         any
		header       []string
		status       int
		kind         string
	}{
		{"dc set", http.MethodPut, wire.PathDatacenter + "fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(1)}, nil, 503, wire.KindNoLeader},
		{"heartbeat", http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra"}, nil, 503, wire.KindNoLeader},
		{"pre-reboot", http.MethodPost, wire.PathFleetLockPreReboot, tokAgent, flBody("h1", "fra"), []string{flHeader, "true"}, 503, wire.KindNoLeader},
		{"join", http.MethodPost, wire.PathJoin, tokAdmin, wire.JoinRequest{ID: "c4", RaftAddr: "127.0.0.1:9"}, nil, 503, wire.KindNoLeader},
		{"readyz", http.MethodGet, "/readyz", "", nil, nil, 503, wire.KindNoLeader},
		{"invalid body is still 400", http.MethodPost, wire.PathHeartbeat, tokAgent, `{`, nil, 400, wire.KindInvalidRequest},
		{"healthz", http.MethodGet, "/healthz", "", nil, nil, 200, ""},
		{"datacenters", http.MethodGet, wire.PathDatacenters, tokRead, nil, nil, 200, ""},
		{"members", http.MethodGet, wire.PathMembers, tokRead, nil, nil, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := n.do(t, tc.method, tc.path, tc.token, tc.body, tc.header...)
			if tc.kind == "" {
				mustOK(t, r)
				return
			}
			checkError(t, r, tc.status, tc.kind)
		})
	}
}

// TestInternalMembershipValidated: the peers' membership route validates a
// join or remove like the operators' cluster routes; nothing invalid
// reaches the Raft configuration.
func TestInternalMembershipValidated(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		body string
	}{
		{"join without id", `{"join":{"id":"","raft_addr":"127.0.0.1:7009"}}`},
		{"join with an invalid id", `{"join":{"id":"../c9 x","raft_addr":"127.0.0.1:7009"}}`},
		{"join without raft address", `{"join":{"id":"c9"}}`},
		{"remove without id", `{"remove":{"id":""}}`},
		{"join and remove", `{"join":{"id":"c9","raft_addr":"127.0.0.1:7009"},"remove":{"id":"c1"}}`},
		{"neither", `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, e.do(http.MethodPost, pathInternalJoin, tokPeer, tc.body), 400, wire.KindInvalidRequest)
			if ms, err := e.store.Members(); err != nil || len(ms) != 1 {
				t.Fatalf("members %+v %v, want c1 only", ms, err)
			}
		})
	}
}
