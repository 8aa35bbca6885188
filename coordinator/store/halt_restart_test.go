package store

import (
	"errors"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestHaltSurvivesRestart: a node restarted with the same code meets the
// entry it could not apply again and halts again at the same index — it
// never skips it — having replayed everything before it.
func TestHaltSurvivesRestart(t *testing.T) {
	c := newTestCluster(t, 1, func(id string, cfg *Config) { cfg.SnapshotThreshold = 2 })
	l := c.leader(10 * time.Second)
	mustApply(t, l, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}})
	mustApply(t, l, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: "h1", Datacenter: "fra"}})
	if err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	mustApply(t, l, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: "h2", Datacenter: "fra"}})
	if err := l.ProposeRaw([]byte(`{"type":"drain_region","v":2,"time":"2030-01-01T00:00:00Z","payload":{}}`)); err != nil {
		t.Fatal(err)
	}
	halted := func(s *Store) *fsm.HaltError {
		t.Helper()
		var h *fsm.HaltError
		deadline := time.Now().Add(10 * time.Second)
		for !errors.As(s.Halted(), &h) {
			if time.Now().After(deadline) {
				t.Fatal("not halted")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return h
	}
	first := halted(l)
	index := l.FSM().Index()
	if first.Type != "drain_region" || first.Index != index+1 {
		t.Fatalf("halted at %+v with the state at index %d", first, index)
	}
	if err := l.Snapshot(); err == nil {
		t.Fatal("snapshot while halted")
	}
	c.stop("c1")
	c.start("c1")
	s := c.nodes["c1"]
	again := halted(s)
	if *again != *first {
		t.Fatalf("after restart halted at %+v, before at %+v", again, first)
	}
	if got := s.FSM().Index(); got != index {
		t.Fatalf("after restart the state is at index %d, want %d", got, index)
	}
	s.FSM().View(func(st *fsm.State) {
		if st.Hosts["h1"] == nil || st.Hosts["h2"] == nil {
			t.Fatalf("the commands before the halt were not replayed: %v", st.Hosts)
		}
	})
	if s.Ready() {
		t.Fatal("a halted node is ready")
	}
}
