package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestSilentHosts checks the leader's liveness pass, which goes through
// the hosts one datacenter at a time: which registered agents it finds
// silent (heard here, heard by a follower, never heard this term), that
// FleetLock-only and already silent hosts are left out, that the term
// settles on its first pass after the grace, and that records of hosts
// no longer registered are dropped.
func TestSilentHosts(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader(10 * time.Second)
	for _, dc := range []string{"dc1", "dc2", "dc3"} {
		mustApply(t, s, fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}})
	}
	hosts := []struct {
		id, dc    string
		fleetLock bool
	}{
		{"a1", "dc1", false}, {"a2", "dc1", false}, {"a3", "dc1", false},
		{"b1", "dc2", false}, {"b2", "dc2", false},
		{"c1", "dc3", false},
		{"f1", "dc1", true},
	}
	for _, h := range hosts {
		res := mustApply(t, s, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: h.id, Datacenter: h.dc, Phase: wire.PhaseIdle}, FleetLock: h.fleetLock, Timing: s.cfg.Timing})
		if res.Err != nil {
			t.Fatalf("register %s: %v", h.id, res.Err)
		}
	}
	// c1 is silent already: the pass leaves it out.
	mustApply(t, s, fsm.TypeMarkSilent, fsm.MarkSilent{Hosts: []string{"c1"}}) // no AliveWithin: at once

	// The term's first pass starts its grace (the loop may have run it
	// already, with the real time: the term started then).
	if silent, settle := s.silentHosts(time.Now()); silent != nil || settle != 0 {
		t.Fatalf("within the grace: silent %v, settle %d", silent, settle)
	}
	s.lv.mu.Lock()
	start, term := s.lv.termStart, s.lv.term
	s.lv.mu.Unlock()
	aw, grace := s.cfg.Timing.AliveWithin, s.cfg.Timing.LivenessGrace
	now := start.Add(grace + aw + time.Second)

	s.Heard("a1", now.Add(-time.Second))                                              // this node, recently
	s.Heard("a3", now.Add(-aw-2*time.Second))                                         // this node, too long ago
	if err := s.Aggregate(map[string]time.Time{"b1": now.Add(-aw / 2)}); err != nil { // a follower, recently
		t.Fatal(err)
	}
	// Hosts not registered: their records are dropped once the leader
	// holds more records than there are hosts.
	for i := range len(hosts) {
		s.Heard(fmt.Sprintf("gone%d", i), now)
	}

	tests := []struct {
		name       string
		at         time.Time
		wantSilent []string
		wantSettle uint64
	}{
		{"first pass after the grace", now, []string{"a2", "a3", "b2"}, term},
		{"a later pass", now.Add(aw), []string{"a1", "a2", "a3", "b1", "b2"}, term},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			silent, settle := s.silentHosts(tt.at)
			if !slices.Equal(silent, tt.wantSilent) || settle != tt.wantSettle {
				t.Errorf("silent %v, settle %d; want %v, %d", silent, settle, tt.wantSilent, tt.wantSettle)
			}
		})
	}
	s.lv.mu.Lock()
	var kept []string
	for h := range s.lv.heard {
		if strings.HasPrefix(h, "gone") {
			kept = append(kept, h)
		}
	}
	s.lv.mu.Unlock()
	if len(kept) > 0 {
		t.Errorf("records of unregistered hosts kept: %v", kept)
	}
}
