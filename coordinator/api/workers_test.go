package api

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// stalledRaft is a Store whose heartbeat commands wait, once stall is
// set, until release is closed: a slow Raft commit.
type stalledRaft struct {
	Store
	stall   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *stalledRaft) Apply(ctx context.Context, typ fsm.Type, payload any) (fsm.Result, error) {
	if typ == fsm.TypeHeartbeat && s.stall.Load() {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.Apply(ctx, typ, payload)
}

// TestHeartbeatWorkers: with a single heartbeat worker, neither a sender
// slow to send its body nor a heartbeat waiting for its Raft commit keeps
// the next heartbeat from being answered; and the worker bound holds:
// a second heartbeat waits while one works.
func TestHeartbeatWorkers(t *testing.T) {
	e := newEnv(t)
	raft := &stalledRaft{Store: e.store, entered: make(chan struct{}, 1), release: make(chan struct{})}
	e.api = New(Config{Store: raft, Auth: testAuth(t), Logger: discardLogger, PeerToken: tokPeer,
		Admission: Admission{HeartbeatConcurrency: 8, HeartbeatWorkers: 1, PressureTarget: -1}})
	e.srv.Config.Handler = e.api
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	e.heartbeat("h1", "fra")

	// beat answers h1's unchanged heartbeat within 5 s (or fails).
	beat := func(why string) {
		t.Helper()
		done := make(chan response, 1)
		go func() { done <- e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra", Phase: wire.PhaseIdle}) }()
		select {
		case r := <-done:
			mustOK(t, r)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: a heartbeat got no answer in 5 s", why)
		}
	}

	// A body that does not come: the sender holds an admission place,
	// not the worker.
	finish := blockedHeartbeat(t, e, "b1")
	released, finished := false, false
	t.Cleanup(func() { // a failed test must leave no handler stalled
		if !released {
			close(raft.release)
		}
		if !finished {
			finish()
		}
	})
	waitFor(t, 10*time.Second, "the slow heartbeat admitted", func() bool { return len(e.api.heartbeats.places) == 1 })
	beat("while a sender is slow to send its body")
	if len(e.api.heartbeats.workers) != 0 {
		t.Fatal("the slow sender holds a worker")
	}

	// A new host's heartbeat waits for its commit: it gives the worker up.
	raft.stall.Store(true)
	committed := make(chan response, 1)
	go func() {
		committed <- e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "n1", Datacenter: "fra", Phase: wire.PhaseIdle})
	}()
	<-raft.entered
	raft.stall.Store(false)
	beat("while a heartbeat waits for Raft")
	close(raft.release)
	released = true
	mustOK(t, <-committed)
	finished = true
	mustOK(t, finish())

	// The bound: with the worker taken, the next heartbeat waits for it.
	e.api.heartbeats.workers <- struct{}{}
	waiting := make(chan response, 1)
	go func() {
		waiting <- e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra", Phase: wire.PhaseIdle})
	}()
	select {
	case r := <-waiting:
		t.Fatalf("answered %d while the only worker was taken", r.status)
	case <-time.After(300 * time.Millisecond):
	}
	<-e.api.heartbeats.workers
	mustOK(t, <-waiting)
}
