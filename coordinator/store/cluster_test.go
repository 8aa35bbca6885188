package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// freePort returns a loopback address with a port that was free a moment
// ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freePeers returns loopback Raft addresses for nodes c1..cn, each port
// free a moment ago and all different: the listeners stay open until
// every port is picked (one at a time, the kernel may hand out a port just
// closed again: "found duplicate address in configuration").
func freePeers(t testing.TB, n int) map[string]string {
	t.Helper()
	peers := map[string]string{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		peers[fmt.Sprintf("c%d", i)] = ln.Addr().String()
	}
	return peers
}

// testCluster is n real nodes on loopback with on-disk state.
type testCluster struct {
	t     testing.TB
	cfgs  map[string]Config
	nodes map[string]*Store
}

func newTestCluster(t testing.TB, n int, opts ...func(id string, c *Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cfgs: map[string]Config{}, nodes: map[string]*Store{}}
	peers := freePeers(t, n)
	for id, addr := range peers {
		c.cfgs[id] = Config{
			NodeID: id, DataDir: t.TempDir(), RaftAddr: addr, HTTPAddr: "127.0.0.1:1" + addr[len(addr)-4:],
			Peers: peers, TickInterval: 100 * time.Millisecond, PeerToken: "peer-token-for-store-tests",
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 200 * time.Millisecond,
		}
		for _, o := range opts {
			cfg := c.cfgs[id]
			o(id, &cfg)
			c.cfgs[id] = cfg
		}
		c.start(id)
	}
	t.Cleanup(func() {
		for _, s := range c.nodes {
			s.Close()
		}
	})
	return c
}

func (c *testCluster) start(id string) {
	c.t.Helper()
	s, err := Open(c.cfgs[id])
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[id] = s
}

func (c *testCluster) stop(id string) {
	c.t.Helper()
	if err := c.nodes[id].Close(); err != nil {
		c.t.Logf("close %s: %v", id, err)
	}
	delete(c.nodes, id)
}

// leader waits for a leader among the running nodes.
func (c *testCluster) leader(timeout time.Duration) *Store {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, s := range c.nodes {
			if s.IsLeader() {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %s", timeout)
	return nil
}

func ptr[T any](v T) *T { return &v }

func mustApply(t testing.TB, s *Store, typ fsm.Type, payload any) fsm.Result {
	t.Helper()
	r, err := s.Apply(context.Background(), typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestClusterFailoverAndRestart(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader(10 * time.Second)
	mustApply(t, l, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(2)}})
	for i := 0; i < 5; i++ {
		mustApply(t, l, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: fmt.Sprintf("h%d", i), Datacenter: "fra"}})
	}
	r := mustApply(t, l, fsm.TypeAcquire, fsm.Acquire{Datacenter: "fra", Host: "h0", Owner: fsm.OwnerAgent, Timing: l.Timing()})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	first := r.Slot.Token

	// A follower refuses writes.
	for id, s := range c.nodes {
		if s != l {
			if _, err := s.Apply(context.Background(), fsm.TypeTick, fsm.Tick{}); err != ErrNotLeader {
				t.Fatalf("follower %s: apply err %v, want ErrNotLeader", id, err)
			}
			break
		}
	}

	// Kill the leader: a new one takes over, and knows the grant.
	start := time.Now()
	c.stop(l.NodeID())
	l2 := c.leader(10 * time.Second)
	t.Logf("new leader %s after %s", l2.NodeID(), time.Since(start).Round(time.Millisecond))
	r = mustApply(t, l2, fsm.TypeAcquire, fsm.Acquire{Datacenter: "fra", Host: "h1", Owner: fsm.OwnerAgent, Timing: l2.Timing()})
	if r.Err != nil || r.Slot.Token <= first {
		t.Fatalf("grant after failover: %+v %+v (first token %d)", r.Slot, r.Err, first)
	}
	r = mustApply(t, l2, fsm.TypeAcquire, fsm.Acquire{Datacenter: "fra", Host: "h2", Owner: fsm.OwnerAgent, Timing: l2.Timing()})
	if r.Err == nil || r.Err.Kind != wire.KindSemaphoreFull {
		t.Fatalf("third grant with limit 2 after failover: %+v", r)
	}
	if err := l2.Snapshot(); err != nil {
		t.Fatal(err)
	}
	mustApply(t, l2, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: "after-snapshot", Datacenter: "fra"}})

	// Restart every node from disk: snapshot + log replay restore state.
	for id := range c.nodes {
		c.stop(id)
	}
	for id := range c.cfgs {
		c.start(id)
	}
	l3 := c.leader(10 * time.Second)
	// Wait until the restarted leader has applied what was committed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var slots, hosts int
		l3.FSM().View(func(s *fsm.State) {
			if dc := s.Datacenters["fra"]; dc != nil {
				slots = len(dc.Slots)
			}
			hosts = len(s.Hosts)
		})
		if slots == 2 && hosts == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart: %d slots, %d hosts; want 2 and 6", slots, hosts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	members, err := l3.Members()
	if err != nil || len(members) != 3 {
		t.Fatalf("members %+v %v", members, err)
	}
}

// TestJoinAndRemove adds a fourth node to a running quorum (it does not
// bootstrap; the leader adds it), checks it catches up, and removes it;
// with the peer token and with mutual TLS (the joining node, which has no
// configuration yet, accepts the peers; the leader accepts it once added).
func TestJoinAndRemove(t *testing.T) {
	ca := testpki.NewCA(t)
	for _, tc := range []struct {
		name string
		opt  func(id string, c *Config)
	}{
		{"peer-token", func(string, *Config) {}},
		{"mutual-tls", func(id string, c *Config) { c.TLS = ca.MutualTLS(ca.Issue(t, "peer", id)) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testJoinAndRemove(t, tc.opt) })
	}
}

func testJoinAndRemove(t *testing.T, opt func(id string, c *Config)) {
	c := newTestCluster(t, 3, opt)
	l := c.leader(10 * time.Second)
	mustApply(t, l, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}})
	c4 := Config{NodeID: "c4", DataDir: t.TempDir(), RaftAddr: freePort(t), HTTPAddr: "127.0.0.1:1", Join: true, Peers: c.cfgs["c1"].Peers, PeerToken: "peer-token-for-store-tests",
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 200 * time.Millisecond}
	opt("c4", &c4)
	c.cfgs["c4"] = c4
	c.start("c4")
	if err := l.Join(context.Background(), wire.JoinRequest{ID: "c4", RaftAddr: c.cfgs["c4"].RaftAddr, HTTPAddr: "127.0.0.1:18004"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		c.nodes["c4"].FSM().View(func(s *fsm.State) { n = len(s.Datacenters) })
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("joined node did not catch up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	members, _ := l.Members()
	if len(members) != 4 || members[3].ID != "c4" || members[3].HTTPAddr != "127.0.0.1:18004" {
		t.Fatalf("members after join: %+v", members)
	}
	// c4 opens a Raft connection to the leader while it is a member...
	vote := func(tr *raft.NetworkTransport) error {
		var resp raft.RequestVoteResponse
		return tr.RequestVote(raft.ServerID(l.NodeID()), raft.ServerAddress(l.cfg.RaftAddr),
			&raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("c4")}, Term: 1}, &resp)
	}
	as4 := peerClient(t, c.cfgs["c4"], l.gate)
	if err := vote(as4); err != nil {
		t.Fatalf("RPC from member c4: %v", err)
	}
	if err := l.Remove(context.Background(), "c4"); err != nil {
		t.Fatal(err)
	}
	if members, _ := l.Members(); len(members) != 3 {
		t.Fatalf("members after remove: %+v", members)
	}
	// ...which is cut once c4 is removed, and c4 cannot open another.
	if err := vote(as4); err == nil {
		t.Fatal("RPC from removed c4 on its old connection was answered")
	}
	if err := vote(peerClient(t, c.cfgs["c4"], l.gate)); err == nil {
		t.Fatal("RPC from removed c4 on a new connection was answered")
	}
}

// peerClient is a one-connection Raft client that dials as cfg's node
// would (its token or certificate), judging the answering node by gate.
func peerClient(t *testing.T, cfg Config, gate *peerGate) *raft.NetworkTransport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var stream raft.StreamLayer = &tokenStream{Listener: ln, advertise: ln.Addr(), self: cfg.NodeID, token: []byte(cfg.PeerToken), gate: gate, log: slog.New(slog.DiscardHandler)}
	if cfg.TLS != nil {
		stream = newTLSStream(ln, ln.Addr(), cfg.TLS, gate, slog.New(slog.DiscardHandler))
	}
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 1, Timeout: 2 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard})})
	t.Cleanup(func() { tr.Close() })
	return tr
}
