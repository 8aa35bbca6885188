package fsm

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// internFleet is two datacenters of hosts whose heartbeats report equal
// values (lines, kernel, phase, policy states, a gossip view) in strings
// of their own, as decoded commands carry them.
func internFleet(t *testing.T) *FSM {
	t.Helper()
	f := New()
	for _, dc := range []string{"ams", "fra"} {
		if r := apply(t, f, TypeSetDatacenter, t0, SetDatacenter{Name: dc, Update: wire.DatacenterUpdate{SlotLimit: ptr(2)}}); r.Err != nil {
			t.Fatal(r.Err)
		}
		for i := 0; i < 4; i++ {
			hb := Heartbeat{Heartbeat: wire.Heartbeat{
				HostID: fmt.Sprintf("%s-h%d", dc, i), Datacenter: dc,
				KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseIdle,
				BootID: fmt.Sprintf("boot-%s-%d", dc, i),
				Policies: []wire.PolicyStatus{
					{ID: "copy-fail-af-alg", Version: 3, State: wire.PolicyEnforcing},
					{ID: "userns-create-audit", Version: 1, State: wire.PolicyAuditing, Detail: "audit only"},
				},
				View:       &wire.DCView{Alive: 2},
				GossipAddr: fmt.Sprintf("10.0.%d.%d:7946", len(dc), i),
			}, Timing: timing}
			if r := apply(t, f, TypeHeartbeat, t0, hb); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	return f
}

// sameString reports whether a and b share their bytes.
func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// assertInterned checks that every host of s shares the values the hosts
// hold alike with the first one.
func assertInterned(t *testing.T, s *State) {
	t.Helper()
	first := s.Hosts["ams-h0"]
	for id, h := range s.Hosts {
		for _, c := range []struct{ name, a, b string }{
			{"kernel_line", h.KernelLine, first.KernelLine},
			{"agent_line", h.AgentLine, first.AgentLine},
			{"line_source", h.LineSource, first.LineSource},
			{"kernel", h.Kernel, first.Kernel},
			{"phase", h.Phase, first.Phase},
		} {
			if c.a != c.b || !sameString(c.a, c.b) {
				t.Errorf("%s: %s %q not shared with ams-h0's %q", id, c.name, c.a, c.b)
			}
		}
		if h.View != first.View {
			t.Errorf("%s: view %v not shared with ams-h0's", id, *h.View)
		}
		if len(h.Policies) != 2 || &h.Policies[0] != &first.Policies[0] || cap(h.Policies) != len(h.Policies) {
			t.Errorf("%s: policy states %v (cap %d) not shared with ams-h0's", id, h.Policies, cap(h.Policies))
		}
		if h.Datacenter == first.Datacenter && !sameString(h.Datacenter, first.Datacenter) {
			t.Errorf("%s: datacenter %q not shared", id, h.Datacenter)
		}
	}
}

// TestInternRestore checks the intern table: hosts share equal values as
// they register, a restored state rebuilds the table and shares them
// again, and neither changes a byte of the snapshot.
func TestInternRestore(t *testing.T) {
	f := internFleet(t)
	f.View(func(s *State) { assertInterned(t, s) })
	before := snapshotBytes(t, f)
	g := restoredCopy(t, f)
	g.View(func(s *State) {
		if s.interned == nil {
			t.Fatal("restored state has no intern table")
		}
		assertInterned(t, s)
		if got := s.interned.str("6.1.0-47-amd64"); !sameString(got, s.Hosts["fra-h3"].Kernel) {
			t.Error("restored table does not hold the hosts' kernel")
		}
	})
	if after := snapshotBytes(t, g); !bytes.Equal(before, after) {
		t.Errorf("snapshot changed by a restore:\n%s\n%s", before, after)
	}
	// A heartbeat on the restored state shares what the restore interned.
	hb := Heartbeat{Heartbeat: wire.Heartbeat{HostID: "ams-h9", Datacenter: "ams", KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseIdle,
		Policies: []wire.PolicyStatus{
			{ID: "copy-fail-af-alg", Version: 3, State: wire.PolicyEnforcing},
			{ID: "userns-create-audit", Version: 1, State: wire.PolicyAuditing, Detail: "audit only"},
		},
		View: &wire.DCView{Alive: 2}}, Timing: timing}
	if r := apply(t, g, TypeHeartbeat, t0, hb); r.Err != nil {
		t.Fatal(r.Err)
	}
	g.View(func(s *State) { assertInterned(t, s) })
}

// TestInternTable checks the table's values: equal to what went in,
// distinct values kept apart, and a table that starts over when full
// still answers equal values.
func TestInternTable(t *testing.T) {
	tb := newInternTable()
	ps := []wire.PolicyStatus{{ID: "a", Version: 1, State: wire.PolicyEnforcing}}
	tests := []struct {
		name string
		in   []wire.PolicyStatus
		want []wire.PolicyStatus
	}{
		{"nil", nil, nil},
		{"empty", []wire.PolicyStatus{}, []wire.PolicyStatus{}},
		{"one", ps, ps},
		{"detail apart", []wire.PolicyStatus{{ID: "a", Version: 1, State: wire.PolicyEnforcing, Detail: "x"}}, []wire.PolicyStatus{{ID: "a", Version: 1, State: wire.PolicyEnforcing, Detail: "x"}}},
		{"version apart", []wire.PolicyStatus{{ID: "a", Version: 2, State: wire.PolicyEnforcing}}, []wire.PolicyStatus{{ID: "a", Version: 2, State: wire.PolicyEnforcing}}},
		{"quote in id", []wire.PolicyStatus{{ID: `a"1`, Version: 1}, {ID: "x"}}, []wire.PolicyStatus{{ID: `a"1`, Version: 1}, {ID: "x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tb.policyStates(tc.in)
			if (got == nil) != (tc.want == nil) || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("policyStates(%v) = %#v, want %#v", tc.in, got, tc.want)
			}
			if len(got) > 0 && &got[0] != &tb.policyStates(tc.in)[0] {
				t.Error("equal policy states not shared")
			}
		})
	}
	// Full: the table starts over, values stay equal.
	for i := 0; i < maxInterned+10; i++ {
		v := fmt.Sprint(i)
		if got := tb.str(v); got != v {
			t.Fatalf("str(%q) = %q", v, got)
		}
		if got := tb.view(&wire.DCView{Alive: i}); got.Alive != i {
			t.Fatalf("view(%d) = %v", i, *got)
		}
	}
	if len(tb.strs) > maxInterned || len(tb.views) > maxInterned {
		t.Errorf("table holds %d strings and %d views, at most %d each", len(tb.strs), len(tb.views), maxInterned)
	}
}
