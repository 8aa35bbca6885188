package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestHeartbeatLocalAnswerNeedsQuorum: a heartbeat without a durable
// change is answered from the receiving node's state only while that
// node is part of a quorum with a leader it hears from; a node cut off
// from the majority (a follower whose leader and other follower stopped,
// a leader whose followers stopped) answers 503 no_leader, so its agents
// move to another node instead of living on its stale state.
func TestHeartbeatLocalAnswerNeedsQuorum(t *testing.T) {
	tests := []struct {
		name string
		// pick returns the node asked and the nodes stopped first.
		pick func(l *clusterNode, f []*clusterNode) (ask *clusterNode, stop []*clusterNode)
		// cutOff reports (on the asked node) that it noticed the loss.
		cutOff func(n *clusterNode) bool
		status int
	}{
		{
			name:   "follower with its leader answers locally",
			pick:   func(l *clusterNode, f []*clusterNode) (*clusterNode, []*clusterNode) { return f[0], nil },
			cutOff: func(*clusterNode) bool { return true },
			status: http.StatusOK,
		},
		{
			name: "follower without leader and other follower",
			pick: func(l *clusterNode, f []*clusterNode) (*clusterNode, []*clusterNode) {
				return f[1], []*clusterNode{l, f[0]}
			},
			cutOff: func(n *clusterNode) bool { id, _ := n.store.Leader(); return id == "" },
			status: http.StatusServiceUnavailable,
		},
		{
			name: "leader without its followers",
			pick: func(l *clusterNode, f []*clusterNode) (*clusterNode, []*clusterNode) {
				return l, f
			},
			cutOff: func(n *clusterNode) bool { return !n.store.IsLeader() },
			status: http.StatusServiceUnavailable,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, 3)
			l := c.leader()
			ask, stop := tc.pick(l, c.followers(l))
			mustOK(t, l.do(t, http.MethodPut, wire.PathDatacenter+"fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(1)}))
			hb := wire.Heartbeat{HostID: "h1", Datacenter: "fra", Phase: wire.PhaseIdle}
			mustOK(t, l.do(t, http.MethodPost, wire.PathHeartbeat, tokAgent, hb))
			caughtUp(t, ask, l)
			// With the quorum whole, the unchanged heartbeat is answered
			// by the asked node without a Raft entry.
			before := ask.store.FSM().Index()
			mustOK(t, ask.do(t, http.MethodPost, wire.PathHeartbeat, tokAgent, hb))
			if got := ask.store.FSM().Index(); got != before {
				t.Fatalf("unchanged heartbeat with a quorum went through Raft (index %d -> %d)", before, got)
			}
			for _, n := range stop {
				n.stop()
			}
			waitFor(t, 10*time.Second, ask.id+" notices it is cut off", func() bool { return tc.cutOff(ask) })
			r := ask.do(t, http.MethodPost, wire.PathHeartbeat, tokAgent, hb)
			if tc.status == http.StatusOK {
				mustOK(t, r)
				return
			}
			checkError(t, r, tc.status, wire.KindNoLeader)
		})
	}
}
