package store

import (
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestRaftOverMutualTLS runs a 3-node quorum whose Raft transport is
// mutual TLS, and checks that a node with a certificate from another CA
// cannot take part.
func TestRaftOverMutualTLS(t *testing.T) {
	ca := testpki.NewCA(t)
	peers := freePeers(t, 3)
	c := &testCluster{t: t, cfgs: map[string]Config{}, nodes: map[string]*Store{}}
	t.Cleanup(func() {
		for _, s := range c.nodes {
			s.Close()
		}
	})
	for id, addr := range peers {
		tlsCfg := ca.MutualTLS(ca.Issue(t, "peer", id))
		if id == "c3" {
			rogue := testpki.NewCA(t)
			tlsCfg = rogue.MutualTLS(rogue.Issue(t, "peer", id))
		}
		c.cfgs[id] = Config{NodeID: id, DataDir: t.TempDir(), RaftAddr: addr, HTTPAddr: "127.0.0.1:1", Peers: peers, TLS: tlsCfg,
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 200 * time.Millisecond}
		c.start(id)
	}
	l := c.leader(10 * time.Second)
	if l.NodeID() == "c3" {
		t.Fatal("the node with a foreign certificate became leader")
	}
	mustApply(t, l, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}})
	// The two good nodes replicate; the rogue one never learns anything.
	time.Sleep(500 * time.Millisecond)
	for id, s := range c.nodes {
		var n int
		s.FSM().View(func(st *fsm.State) { n = len(st.Datacenters) })
		if want := map[bool]int{true: 0, false: 1}[id == "c3"]; n != want {
			t.Errorf("%s has %d datacenters, want %d", id, n, want)
		}
	}
}
