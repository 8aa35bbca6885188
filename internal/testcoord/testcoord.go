// Package testcoord runs real coordinator nodes (Raft store on disk, real
// Raft transport, HTTP API) inside a test process, for agent, end-to-end
// and adversary tests.
package testcoord

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/api"
	"github.com/kroll-dev/kroll/coordinator/clock"
	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/client"
)

// Tokens of the test coordinator.
const (
	OperatorToken = "operator-secret-token"
	AgentToken    = "agent-secret-token"
)

// Options configure a test coordinator.
type Options struct {
	// CA, when set, makes the coordinators serve TLS with a certificate
	// for 127.0.0.1 and IPs carrying kroll:peer:<node-id>, agents
	// authenticate with client certificates, and Raft and forwarding run
	// over mutual TLS.
	CA  *testpki.CA
	IPs []string
	// ReleaseKeys and PolicyKeys are the trusted release and policy keys.
	ReleaseKeys, PolicyKeys []ed25519.PublicKey
	// Timing of slots; defaults suit a VM's kexec.
	Timing fsm.Timing
	// Clocks, by node id ("c1", ...), replace a node's clock (tests that
	// step the wall clock); nodes without one use the host's.
	Clocks map[string]clock.Clock
	// HeartbeatInterval told to agents; default 2s.
	HeartbeatInterval time.Duration
	// TickInterval is how often the leader proposes a Tick; default 1s.
	TickInterval time.Duration
	// LivenessInterval is how often the leader looks for silent hosts and
	// followers send it the hosts they heard; default 1s.
	LivenessInterval time.Duration
	// Feeds are build feeds every node runs (polling while it leads);
	// without Keys a feed trusts ReleaseKeys.
	Feeds []feed.Config
}

// Coordinator is a running test coordinator.
type Coordinator struct {
	// URL is how the host reaches it; Port its TCP port.
	URL, Port string
	// ID is the node id (c1, c2, ...); RaftAddr its Raft port's address.
	ID, RaftAddr string
	// Client is an operator (admin) client.
	Client *client.Client
	Store  *store.Store
	// Stop shuts the coordinator down before the test ends (idempotent).
	Stop func()
	// Feeds are the node's feed pollers (Options.Feeds).
	Feeds []*feed.Poller

	// How the node was started, for Restart.
	opts    Options
	dataDir string
	peers   map[string]string
}

// PeerToken authenticates forwarding between the nodes of a test cluster.
const PeerToken = "peer-secret-token-for-tests"

// Start runs a single-node coordinator until the test ends.
func Start(t testing.TB, o Options) *Coordinator {
	t.Helper()
	return StartCluster(t, 1, o)[0]
}

// StartCluster runs an n-node coordinator quorum (real Raft on disk, real
// HTTP with forwarding to the leader) until the test ends; it returns when
// a leader serves.
func StartCluster(t testing.TB, n int, o Options) []*Coordinator {
	t.Helper()
	lns := make([]net.Listener, n)
	raftAddrs := map[string]string{}
	// The Raft ports are picked by listening on port 0; the listeners stay
	// open until every port is picked (the store listens itself), so that
	// no two nodes get the same port ("found duplicate address in
	// configuration").
	var raftLns []net.Listener
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		raftLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		raftAddrs[fmt.Sprintf("c%d", i+1)] = raftLn.Addr().String()
		raftLns = append(raftLns, raftLn)
	}
	for _, ln := range raftLns {
		ln.Close()
	}
	out := make([]*Coordinator, n)
	for i := range n {
		out[i] = startNode(t, o, fmt.Sprintf("c%d", i+1), lns[i], t.TempDir(), raftAddrs)
	}
	// Ready: one leader, and every node knows it and its HTTP address (a
	// follower that does not yet answers writes with no_leader).
	deadline := time.Now().Add(20 * time.Second)
	for {
		leaders, known := 0, 0
		for _, c := range out {
			if c.Store.IsLeader() {
				leaders++
			}
			if c.Store.Ready() {
				known++
			}
		}
		if leaders == 1 && known == len(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("testcoord: no leader known to all %d nodes within 20 s (%d leaders, %d nodes know one)", len(out), leaders, known)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out
}

// Restart starts a stopped coordinator again with its data directory,
// node id, Raft and HTTP addresses (a crashed node coming back): its
// fields then describe the new process. The caller stops it first (Stop)
// and calls Restart from the test's goroutine only.
func (c *Coordinator) Restart(t testing.TB) {
	t.Helper()
	c.Stop()
	httpAddr := net.JoinHostPort("127.0.0.1", c.Port)
	var ln net.Listener
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if ln, err = net.Listen("tcp", httpAddr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("testcoord: restart %s: listen on %s again: %v", c.ID, httpAddr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	*c = *startNode(t, c.opts, c.ID, ln, c.dataDir, c.peers)
}

func startNode(t testing.TB, o Options, id string, ln net.Listener, dataDir string, peers map[string]string) *Coordinator {
	t.Helper()
	saved := o
	raftAddr := peers[id]
	var err error
	if o.Timing == (fsm.Timing{}) {
		o.Timing = fsm.Timing{Lease: 2 * time.Minute, RebootDeadline: 10 * time.Minute, AliveWithin: time.Minute}
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 2 * time.Second
	}
	if o.TickInterval == 0 {
		o.TickInterval = time.Second
	}
	if o.LivenessInterval == 0 {
		o.LivenessInterval = time.Second
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodeCert tls.Certificate
	var peerTLS *tls.Config
	if o.CA != nil {
		nodeCert = o.CA.IssueIPs(t, id, append([]string{"127.0.0.1"}, o.IPs...), "kroll:peer:"+id)
		peerTLS = o.CA.MutualTLS(nodeCert)
	}
	st, err := store.Open(store.Config{
		NodeID: id, DataDir: dataDir, RaftAddr: raftAddr, HTTPAddr: ln.Addr().String(),
		Peers: peers, Timing: o.Timing, TickInterval: o.TickInterval, HeartbeatInterval: o.HeartbeatInterval, LivenessInterval: o.LivenessInterval, Logger: quiet, TLS: peerTLS, PeerToken: PeerToken, Clock: o.Clocks[id],
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	auth := &api.Auth{AgentCertificates: o.CA != nil, PeerCertificates: o.CA != nil}
	for _, tk := range []struct {
		name, tok string
		role      api.Role
	}{{"ops", OperatorToken, api.RoleAdmin}, {"agents", AgentToken, api.RoleAgent}, {"peers", PeerToken, api.RolePeer}} {
		tok, err := api.NewToken(tk.name, tk.role, api.HashToken(tk.tok))
		if err != nil {
			t.Fatal(err)
		}
		auth.Tokens = append(auth.Tokens, tok)
	}
	acfg := api.Config{Store: st, Auth: auth, HeartbeatInterval: o.HeartbeatInterval, ReleaseKeys: o.ReleaseKeys, PolicyKeys: o.PolicyKeys,
		PeerToken: PeerToken, Logger: quiet}
	if peerTLS != nil {
		acfg.PeerToken, acfg.PeerTLS = "", peerTLS
	}
	h := api.New(acfg)
	actx, cancel := context.WithCancel(context.Background())
	go h.Announce(actx, fsm.SetMember{ID: id, RaftAddr: raftAddr, HTTPAddr: ln.Addr().String()})
	go h.ForwardLiveness(actx, o.LivenessInterval)
	var pollers []*feed.Poller
	for _, fc := range o.Feeds {
		if len(fc.Keys) == 0 {
			fc.Keys = o.ReleaseKeys
		}
		p, err := feed.New(fc, st, feed.Options{Logger: quiet, LeaderCheck: 50 * time.Millisecond})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		pollers = append(pollers, p)
		go p.Run(actx)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(quiet.Handler(), slog.LevelWarn)}
	c := &Coordinator{Store: st, ID: id, RaftAddr: raftAddr, opts: saved, dataDir: dataDir, peers: peers, Feeds: pollers}
	_, c.Port, _ = net.SplitHostPort(ln.Addr().String())
	opts := client.Options{Token: OperatorToken}
	if o.CA != nil {
		srvTLS := &tls.Config{Certificates: []tls.Certificate{nodeCert}, ClientCAs: o.CA.Pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
		go srv.Serve(tls.NewListener(ln, srvTLS))
		c.URL = "https://" + ln.Addr().String()
		opts.TLS = &tls.Config{RootCAs: o.CA.Pool, MinVersion: tls.VersionTLS12}
	} else {
		go srv.Serve(ln)
		c.URL = "http://" + ln.Addr().String()
	}
	var once sync.Once
	c.Stop = func() { once.Do(func() { cancel(); srv.Close(); st.Close() }) }
	t.Cleanup(c.Stop)
	c.Client, err = client.New(c.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
