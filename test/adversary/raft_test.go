package adversary

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// raftDialer opens a connection to a Raft port the way an attacker would.
type raftDialer func(address string, timeout time.Duration) (net.Conn, error)

// raftStream is a raft.StreamLayer that dials with an attacker's dialer;
// its listener is only there because NetworkTransport wants one.
type raftStream struct {
	net.Listener
	dial raftDialer
}

func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dial(string(address), timeout)
}

// raftTLSDialer dials with cert (none when nil), trusting any server.
func raftTLSDialer(cert *tls.Certificate) raftDialer {
	return func(address string, timeout time.Duration) (net.Conn, error) {
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", address, cfg)
	}
}

// raftTCPDialer dials plain TCP, as any local process can.
func raftTCPDialer(address string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", address, timeout)
}

// raftAttack is the original attack: an AppendEntries RPC from a
// self-appointed leader with a higher term that appends, and commits, a
// datacenter no API call made (any slot count, no capacity floor). It
// retries while the target's log moves under it and returns the last
// RPC error (nil when the target answered success).
func raftAttack(t *testing.T, target *testcoord.Coordinator, dial raftDialer, dc string) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &raftStream{Listener: ln, dial: dial}, MaxPool: 1, Timeout: 3 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
	})
	defer trans.Close()
	cmd, err := fsm.NewCommand(fsm.TypeSetDatacenter, time.Now(), fsm.SetDatacenter{Name: dc,
		Update: wire.DatacenterUpdate{SlotPct: raftPtr(100), MinHealthyPct: raftPtr(0)}})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		stats := target.Store.Stats()
		term, _ := strconv.ParseUint(stats["term"], 10, 64)
		last, _ := strconv.ParseUint(stats["last_log_index"], 10, 64)
		lastTerm, _ := strconv.ParseUint(stats["last_log_term"], 10, 64)
		req := &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("c1"), Addr: []byte(ln.Addr().String())},
			Term:      term + 10, PrevLogEntry: last, PrevLogTerm: lastTerm, LeaderCommitIndex: last + 1,
			Entries: []*raft.Log{{Index: last + 1, Term: term + 10, Type: raft.LogCommand, Data: cmd}},
		}
		var resp raft.AppendEntriesResponse
		err = trans.AppendEntries(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), req, &resp)
		if err != nil || resp.Success {
			return err
		}
	}
	return nil
}

func raftPtr(v int) *int { return &v }

// raftHasDatacenter reports which nodes know datacenter dc.
func raftHasDatacenter(nodes []*testcoord.Coordinator, dc string) []string {
	var out []string
	for _, n := range nodes {
		n.Store.FSM().View(func(st *fsm.State) {
			if st.Datacenters[dc] != nil {
				out = append(out, n.ID)
			}
		})
	}
	return out
}

// raftFollower returns a node that does not lead.
func raftFollower(t *testing.T, nodes []*testcoord.Coordinator) *testcoord.Coordinator {
	t.Helper()
	for _, n := range nodes {
		if !n.Store.IsLeader() {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
}

// raftLeader waits for the node that leads.
func raftLeader(t *testing.T, nodes []*testcoord.Coordinator) *testcoord.Coordinator {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, n := range nodes {
			if n.Store.IsLeader() {
				return n
			}
		}
	}
	t.Fatal("no leader within 20 s")
	return nil
}

// raftCheckWorks shows the legitimate cluster still serves: a write sent
// to a follower is forwarded to the leader and replicates to every node.
func raftCheckWorks(t *testing.T, nodes []*testcoord.Coordinator, dc string) {
	t.Helper()
	f := raftFollower(t, nodes)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := f.Client.SetDatacenter(t.Context(), dc, wire.DatacenterUpdate{SlotLimit: raftPtr(1)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("write through follower %s: %v", f.ID, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for time.Now().Before(deadline) && len(raftHasDatacenter(nodes, dc)) != len(nodes) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := raftHasDatacenter(nodes, dc); len(got) != len(nodes) {
		t.Fatalf("datacenter %s replicated to %v, want all %d nodes", dc, got, len(nodes))
	}
}

// raftCheckRefused runs the attack against a follower's Raft port and
// checks that it is refused and changed nothing on any node.
func raftCheckRefused(t *testing.T, nodes []*testcoord.Coordinator, dial raftDialer, dc string) {
	t.Helper()
	target := raftFollower(t, nodes)
	termBefore, _ := strconv.ParseUint(target.Store.Stats()["term"], 10, 64)
	if err := raftAttack(t, target, dial, dc); err == nil {
		t.Errorf("AppendEntries to %s's Raft port was answered, want the connection refused", target.ID)
	} else {
		t.Logf("refused: %v", err)
	}
	// Give an accepted entry time to be applied everywhere.
	time.Sleep(500 * time.Millisecond)
	if got := raftHasDatacenter(nodes, dc); len(got) > 0 {
		t.Errorf("datacenter %s that no API call made is committed on %v", dc, got)
	}
	if term, _ := strconv.ParseUint(target.Store.Stats()["term"], 10, 64); term >= termBefore+10 {
		t.Errorf("%s moved to the attacker's term %d", target.ID, term)
	}
}

// TestRaftPortRefusesNonPeersTLS attacks a TLS cluster's Raft port with
// every certificate that is not a current member's peer certificate.
func TestRaftPortRefusesNonPeersTLS(t *testing.T) {
	ca, other := testpki.NewCA(t), testpki.NewCA(t)
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{CA: ca})
	raftLeader(t, nodes)
	raftCheckWorks(t, nodes, "before")
	cert := func(c tls.Certificate) *tls.Certificate { return &c }
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
	}{
		{"agent-certificate", cert(ca.Issue(t, "agent", "h1"))},
		{"operator-certificate", cert(ca.Issue(t, "admin", "ops"))},
		{"peer-certificate-unknown-id", cert(ca.Issue(t, "peer", "c9"))},
		{"peer-certificate-other-ca", cert(other.Issue(t, "peer", "c1"))},
		{"certificate-without-identity", cert(ca.Issue(t, "", "c1"))},
		{"no-certificate", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raftLeader(t, nodes)
			raftCheckRefused(t, nodes, raftTLSDialer(tc.cert), "evil-"+tc.name)
		})
	}
	raftCheckWorks(t, nodes, "after")
}

// TestRaftPortRefusesWithoutTokenLoopback attacks the Raft port of a
// cluster without TLS (loopback) from a local process that does not know
// the peer token.
func TestRaftPortRefusesWithoutTokenLoopback(t *testing.T) {
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{})
	raftLeader(t, nodes)
	raftCheckWorks(t, nodes, "before")
	raftCheckRefused(t, nodes, raftTCPDialer, "evil-plain-tcp")
	raftCheckWorks(t, nodes, "after")
}

// TestInternalAPIRefusesNonPeersTLS sends a forwarded command to the
// leader's /internal/v1/apply with every credential that is not a current
// member's peer certificate.
func TestInternalAPIRefusesNonPeersTLS(t *testing.T) {
	ca, other := testpki.NewCA(t), testpki.NewCA(t)
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{CA: ca})
	leader := raftLeader(t, nodes)
	raftCheckWorks(t, nodes, "before")
	cert := func(c tls.Certificate) *tls.Certificate { return &c }
	for _, tc := range []struct {
		name  string
		cert  *tls.Certificate
		token string
	}{
		{"agent-certificate", cert(ca.Issue(t, "agent", "h1")), ""},
		{"operator-certificate", cert(ca.Issue(t, "admin", "ops")), ""},
		{"peer-certificate-unknown-id", cert(ca.Issue(t, "peer", "c9")), ""},
		{"peer-certificate-other-ca", cert(other.Issue(t, "peer", "c1")), ""},
		{"peer-token-under-tls", nil, testcoord.PeerToken},
		{"operator-token", nil, testcoord.OperatorToken},
		{"nothing", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc := "evil-" + tc.name
			cfg := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
			if tc.cert != nil {
				cfg.Certificates = []tls.Certificate{*tc.cert}
			}
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
			payload, _ := json.Marshal(fsm.SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{SlotPct: raftPtr(100), MinHealthyPct: raftPtr(0)}})
			body, _ := json.Marshal(map[string]any{"type": fsm.TypeSetDatacenter, "payload": json.RawMessage(payload)})
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, leader.URL+"/internal/v1/apply", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := hc.Do(req)
			if err == nil {
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
					t.Errorf("HTTP %d %s, want 401 or 403", resp.StatusCode, msg)
				}
			} else {
				t.Logf("refused in the TLS handshake: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			if got := raftHasDatacenter(nodes, dc); len(got) > 0 {
				t.Errorf("datacenter %s committed on %v", dc, got)
			}
		})
	}
	raftCheckWorks(t, nodes, "after")
}

// TestForwardingRefusesNonPeerLeaderTLS points the leader's HTTP address
// in the replicated state at an impostor with a certificate of the
// cluster CA (or another CA) and checks that followers do not forward
// writes to it: only the leader proving kroll:peer:<leader-id> counts.
func TestForwardingRefusesNonPeerLeaderTLS(t *testing.T) {
	ca, other := testpki.NewCA(t), testpki.NewCA(t)
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{CA: ca})
	raftCheckWorks(t, nodes, "before")
	leader := raftLeader(t, nodes)
	var member *testcoord.Coordinator
	for _, n := range nodes {
		if n != leader {
			member = n
		}
	}
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		// sees: the impostor may receive the request (a member, which
		// is trusted with it, but whose answer does not count).
		sees bool
	}{
		{"agent-certificate", ca.Issue(t, "agent", "h1"), false},
		{"peer-certificate-unknown-id", ca.Issue(t, "peer", "c9"), false},
		{"peer-certificate-other-ca", other.Issue(t, "peer", leader.ID), false},
		{"other-member-certificate", ca.Issue(t, "peer", member.ID), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits := make(chan string, 16)
			impostor := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits <- r.URL.Path
				io.WriteString(w, `{"index":1}`)
			}), ErrorLog: raftQuietLog()}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{tc.cert}, MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatal(err)
			}
			go impostor.Serve(ln)
			t.Cleanup(func() { impostor.Close() })
			// The leader's announced HTTP address now leads to the
			// impostor (again, should leadership move meanwhile).
			f := raftRedirectLeader(t, nodes, ln.Addr().String())
			dc := "forwarded-" + tc.name
			// The follower must refuse the impostor (no leader it can
			// reach), not take its fake answer: no_leader when the
			// request never left (the handshake refused the impostor);
			// outcome_unknown when a member read it (had that member
			// led, it might have applied it).
			want := wire.KindNoLeader
			if tc.sees {
				want = wire.KindOutcomeUnknown
			}
			if _, err := f.Client.SetDatacenter(t.Context(), dc, wire.DatacenterUpdate{SlotLimit: raftPtr(1)}); client.ErrorKind(err) != want {
				t.Errorf("write through %s with the impostor as leader: %v, want %s", f.ID, err, want)
			} else {
				t.Logf("refused: %v", err)
			}
			if len(hits) > 0 && !tc.sees {
				t.Errorf("the impostor received %s", <-hits)
			}
		})
	}
}

// raftRedirectLeader records addr as the current leader's HTTP address
// and returns a follower that knows it; the test's end restores it.
func raftRedirectLeader(t *testing.T, nodes []*testcoord.Coordinator, addr string) *testcoord.Coordinator {
	t.Helper()
	for range 5 {
		leader := raftLeader(t, nodes)
		if _, err := leader.Store.Apply(t.Context(), fsm.TypeSetMember, fsm.SetMember{ID: leader.ID, RaftAddr: leader.RaftAddr, HTTPAddr: addr}); err != nil {
			continue
		}
		t.Cleanup(func() {
			leader.Store.Apply(context.Background(), fsm.TypeSetMember, fsm.SetMember{ID: leader.ID, RaftAddr: leader.RaftAddr, HTTPAddr: leader.URL[len("https://"):]})
		})
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for _, f := range nodes {
				if id, got := f.Store.Leader(); f != leader && id == leader.ID && got == addr {
					return f
				}
			}
		}
	}
	t.Fatal("no follower learned the impostor's address")
	return nil
}

// raftQuietLog discards the impostor's TLS handshake errors.
func raftQuietLog() *log.Logger { return log.New(io.Discard, "", 0) }
