package fsm

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// applyV encodes and applies one command written in format v, as a node
// of that format proposed it, and returns its result (errors included).
func applyV(t *testing.T, f *FSM, v int, typ Type, now time.Time, payload any) Result {
	t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(Command{Type: typ, V: v, Time: now.UTC(), Payload: raw})
	if err != nil {
		t.Fatal(err)
	}
	res := f.ApplyCommand(data)
	if res.Halted {
		t.Fatalf("%s (v%d) halted: %v", typ, v, f.Halted())
	}
	return res
}

// TestFleetLockOffAgentHosts: from format 4 on, FleetLock (any caller)
// can neither take nor give back a slot for a host a kroll agent
// registered, and a request without credentials (Acquire.Stay) never
// moves a registered host; a credentialed FleetLock request still moves a
// FleetLock-only host, and a host that holds a FleetLock slot when its
// agent registers can still give it back. Format 3 commands replay as
// format 3 code applied them (the agent's host lost its slot to
// FleetLock).
func TestFleetLockOffAgentHosts(t *testing.T) {
	tm := Timing{Lease: time.Minute, RebootDeadline: 15 * time.Minute, AliveWithin: time.Minute}
	type step struct {
		name string
		typ  Type
		p    any
		// kind is the refusal's error kind by format ("" = applied).
		v3, v4 string
	}
	fl := func(dc, host string, stay bool) Acquire {
		return Acquire{Datacenter: dc, Host: host, Owner: OwnerFleetLock, Stay: stay, Timing: tm}
	}
	steady := func(dc, host string) SlotRelease {
		return SlotRelease{Datacenter: dc, Host: host, Owner: OwnerFleetLock}
	}
	agent := func(dc, host string) Heartbeat {
		return Heartbeat{Heartbeat: wire.Heartbeat{HostID: host, Datacenter: dc, Phase: wire.PhaseIdle}, Timing: tm}
	}
	steps := []step{
		{"agent edge-17 registers", TypeHeartbeat, agent("fra", "edge-17"), "", ""},
		{"fleetlock pre-reboot for the agent host", TypeAcquire, fl("fra", "edge-17", false), "", wire.KindConflict},
		{"same, without credentials", TypeAcquire, fl("fra", "edge-17", true), "", wire.KindConflict},
		{"fleetlock pre-reboot for it naming ams", TypeAcquire, fl("ams", "edge-17", false), wire.KindUnknownHost, wire.KindConflict},
		{"fleetlock steady-state for the agent host", TypeRelease, steady("fra", "edge-17"), "", wire.KindConflict},
		{"zinc-1 registers by FleetLock in ams", TypeAcquire, fl("ams", "zinc-1", true), "", ""},
		{"zinc-1 gives its lock back", TypeRelease, steady("ams", "zinc-1"), "", ""},
		{"without credentials naming fra: no move", TypeAcquire, fl("fra", "zinc-1", true), "", wire.KindConflict},
		{"with credentials naming fra: moves", TypeAcquire, fl("fra", "zinc-1", false), "", ""},
		{"zinc-2 locks in ams", TypeAcquire, fl("ams", "zinc-2", false), "", ""},
		{"an agent installed on zinc-2", TypeHeartbeat, agent("ams", "zinc-2"), "", ""},
		{"zinc-2 gives its FleetLock slot back", TypeRelease, steady("ams", "zinc-2"), "", ""},
		{"and cannot take one again", TypeAcquire, fl("ams", "zinc-2", false), "", wire.KindConflict},
	}
	for _, v := range []int{FormatV3, FormatV4} {
		t.Run(map[int]string{FormatV3: "format 3", FormatV4: "format 4"}[v], func(t *testing.T) {
			f := New()
			now := t0
			for _, dc := range []string{"fra", "ams"} {
				applyV(t, f, v, TypeSetDatacenter, now, SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{SlotLimit: ptr(5)}})
			}
			for _, s := range steps {
				now = now.Add(time.Second)
				want := map[int]string{FormatV3: s.v3, FormatV4: s.v4}[v]
				r := applyV(t, f, v, s.typ, now, s.p)
				switch {
				case want == "" && r.Err != nil:
					t.Fatalf("%s: refused %+v", s.name, r.Err)
				case want != "" && (r.Err == nil || r.Err.Kind != want):
					t.Fatalf("%s: result %+v, want a %s refusal", s.name, r, want)
				}
			}
			var fraHolders []string
			f.View(func(st *State) {
				for h := range st.Datacenters["fra"].Slots {
					fraHolders = append(fraHolders, h)
				}
				if got := st.Hosts["zinc-1"].Datacenter; got != "fra" {
					t.Errorf("zinc-1 in %s, want fra (moved by the credentialed request)", got)
				}
				if st.Hosts["edge-17"].FleetLock {
					t.Error("edge-17 became a FleetLock host")
				}
			})
			// Format 3's FleetLock slot of edge-17 went back at its
			// steady-state; zinc-1 holds the one it took in fra.
			if len(fraHolders) != 1 || fraHolders[0] != "zinc-1" {
				t.Errorf("fra holders %v, want [zinc-1]", fraHolders)
			}
		})
	}
}
