package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const recoverPeerToken = "peer-token-for-recover-tests"

// recoverNode is a store node of a recover test: real Raft on disk.
type recoverNode struct {
	cfg store.Config
	st  *store.Store
}

func openNode(t *testing.T, cfg store.Config) *store.Store {
	t.Helper()
	st, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitLeader waits (bounded) until one of nodes leads and returns it.
func waitLeader(t *testing.T, nodes ...*store.Store) *store.Store {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.IsLeader() && n.Ready() {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader within 20 s")
	return nil
}

// fleetState is what a recovery or restore must keep: datacenters (with
// their slots) and hosts, as JSON.
func fleetState(t *testing.T, st *store.Store) string {
	t.Helper()
	var out []byte
	var err error
	st.FSM().View(func(s *fsm.State) {
		out, err = json.Marshal(map[string]any{"datacenters": s.Datacenters, "hosts": s.Hosts})
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func runCoordinator(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := cli.Env{Name: "kroll-coordinator", Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code = cli.ExitCode(env, run(context.Background(), env, args))
	return code, out.String(), errb.String()
}

// TestRecoverLostQuorum: a 3-node cluster with datacenters, hosts and a
// held slot loses two nodes for good; 'kroll-coordinator recover' on the
// stopped survivor with a one-member configuration lets it start as the
// leader of a cluster of one, with the state it had, and take writes.
func TestRecoverLostQuorum(t *testing.T) {
	peers := map[string]string{}
	for i := 1; i <= 3; i++ {
		peers[fmt.Sprintf("c%d", i)] = freeAddr(t)
	}
	nodes := map[string]*recoverNode{}
	var all []*store.Store
	for id, addr := range peers {
		cfg := store.Config{NodeID: id, DataDir: t.TempDir(), RaftAddr: addr, HTTPAddr: freeAddr(t), Peers: peers,
			PeerToken: recoverPeerToken, TickInterval: time.Hour,
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 200 * time.Millisecond}
		n := &recoverNode{cfg: cfg, st: openNode(t, cfg)}
		nodes[id] = n
		all = append(all, n.st)
	}
	leader := waitLeader(t, all...)
	ctx := context.Background()
	apply := func(st *store.Store, typ fsm.Type, payload any) fsm.Result {
		t.Helper()
		res, err := st.Apply(ctx, typ, payload)
		if err != nil || res.Err != nil {
			t.Fatalf("apply %s: %v %v", typ, err, res.Err)
		}
		return res
	}
	slots := 2
	for _, dc := range []string{"fra1", "ams1"} {
		apply(leader, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{SlotLimit: &slots}})
		for i := range 3 {
			apply(leader, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: fmt.Sprintf("%s-h%d", dc, i), Datacenter: dc}})
		}
	}
	res := apply(leader, fsm.TypeAcquire, fsm.Acquire{Datacenter: "fra1", Host: "fra1-h0", Owner: fsm.OwnerAgent, Timing: leader.Timing()})
	// The survivor is a follower (the harder case: it did not lead);
	// wait until it applied everything.
	var survivor *recoverNode
	for _, n := range nodes {
		if n.st != leader {
			survivor = n
			break
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := survivor.st.WaitApplied(wctx, res.Index); err != nil {
		t.Fatal(err)
	}
	id := survivor.cfg.NodeID
	onePeer := id + "=" + peers[id]

	// Running: recover refuses the data directory and changes nothing.
	code, _, stderr := runCoordinator("recover", "--node-id", id, "--data-dir", survivor.cfg.DataDir, "--peers", onePeer)
	if code != 1 || !strings.Contains(stderr, "data directory in use") {
		t.Fatalf("recover of a running node: exit %d, stderr %q; want exit 1, 'data directory in use'", code, stderr)
	}

	// The log is quiet (no ticks: TickInterval is an hour), so this is
	// the state the survivor ends with.
	want := fleetState(t, survivor.st)
	// Two nodes are lost for good; the operator stops the survivor.
	for _, n := range nodes {
		n.st.Close()
	}
	code, stdout, stderr := runCoordinator("recover", "--dry-run", "--node-id", id, "--data-dir", survivor.cfg.DataDir, "--peers", onePeer)
	if code != 0 || !strings.Contains(stdout, "dry run: nothing changed") || !strings.Contains(stdout, "2 datacenters, 6 hosts") {
		t.Fatalf("recover --dry-run: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCoordinator("recover", "--node-id", id, "--data-dir", survivor.cfg.DataDir, "--peers", onePeer)
	if code != 0 || !strings.Contains(stdout, "recovered: the voters are now "+onePeer) {
		t.Fatalf("recover: exit %d stdout %q stderr %q", code, stdout, stderr)
	}

	// Started normally with the new --peers, it leads alone and keeps
	// the state.
	cfg := survivor.cfg
	cfg.Peers = map[string]string{id: peers[id]}
	st := openNode(t, cfg)
	waitLeader(t, st)
	members, err := st.Members()
	if err != nil || len(members) != 1 || members[0].ID != id || !members[0].Voter {
		t.Fatalf("members after recovery: %+v, %v; want %s alone", members, err, id)
	}
	if got := fleetState(t, st); got != want {
		t.Fatalf("state after recovery differs:\n got %s\nwant %s", got, want)
	}
	var holder string
	st.FSM().View(func(s *fsm.State) {
		for h := range s.Datacenters["fra1"].Slots {
			holder = h
		}
	})
	if holder != "fra1-h0" {
		t.Fatalf("slot of fra1 held by %q after recovery, want fra1-h0", holder)
	}
	// And it commits writes on its own.
	apply(st, fsm.TypeAcquire, fsm.Acquire{Datacenter: "fra1", Host: "fra1-h1", Owner: fsm.OwnerAgent, Timing: st.Timing()})
}

func TestRecoverCommandLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, inStderr string
		args           []string
		code           int
	}{
		{"no-flags", "--node-id", nil, 2},
		{"no-peers", "--peers is required", []string{"--node-id", "c1", "--data-dir", dir}, 2},
		{"node-not-in-peers", `--peers does not list --node-id "c1"`, []string{"--node-id", "c1", "--data-dir", dir, "--peers", "c2=127.0.0.1:7002"}, 2},
		{"bad-peers", `"c1" is not ID=HOST:PORT`, []string{"--node-id", "c1", "--data-dir", dir, "--peers", "c1"}, 2},
		{"no-data-dir", "--data-dir is required", []string{"--node-id", "c1", "--peers", "c1=127.0.0.1:7001"}, 2},
		{"not-a-data-dir", "holds no Raft log", []string{"--node-id", "c1", "--data-dir", dir, "--peers", "c1=127.0.0.1:7001"}, 1},
		{"extra-argument", `unexpected argument "x"`, []string{"--node-id", "c1", "--data-dir", dir, "--peers", "c1=127.0.0.1:7001", "x"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCoordinator(append([]string{"recover"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.inStderr) {
				t.Fatalf("exit %d stderr %q; want exit %d, stderr ∋ %q", code, stderr, tc.code, tc.inStderr)
			}
			if n := strings.Count(stderr, "\n"); n > 1 {
				t.Errorf("error spans %d lines, want one", n)
			}
		})
	}
}
