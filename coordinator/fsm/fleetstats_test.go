package fsm

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func TestFleetStats(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	pushed := now.Add(-2 * time.Hour)
	enforcing := func(id string, v int64) []wire.PolicyStatus {
		return []wire.PolicyStatus{{ID: id, Version: v, State: wire.PolicyEnforcing}}
	}
	s := &State{
		LivenessByFlag: true,
		Datacenters: map[string]*Datacenter{
			"fra":   {Name: "fra", Slots: map[string]*Slot{"h2": {Host: "h2"}, "h3": {Host: "h3", Lost: true}}},
			"ams":   {Name: "ams", Policy: schedule.Policy{Paused: true}},
			"empty": {Name: "empty"},
		},
		Hosts: map[string]*Host{
			// In force at the current version.
			"h1": {ID: "h1", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85", Phase: wire.PhaseIdle, Policies: enforcing("copy-fail", 2)},
			// An older version does not count.
			"h2": {ID: "h2", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85", Phase: wire.PhaseRebooting, Policies: enforcing("copy-fail", 1)},
			// Silent: neither targeted nor counted as missing.
			"h3": {ID: "h3", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.80", Phase: wire.PhaseRebooting, Silent: true},
			// Unavailable is not in force.
			"h4": {ID: "h4", Datacenter: "ams", KernelLine: "6.12", Kernel: "6.12.85", Phase: wire.PhaseFailed, Unhealthy: true,
				Policies: []wire.PolicyStatus{{ID: "copy-fail", Version: 2, State: wire.PolicyUnavailable}}},
			// Auditing is in force; FleetLock-only hosts report no policies and are not targeted.
			"h5": {ID: "h5", Datacenter: "ams", Kernel: "", Policies: []wire.PolicyStatus{{ID: "copy-fail", Version: 2, State: wire.PolicyAuditing}}},
			"z1": {ID: "z1", Datacenter: "ams", FleetLock: true, LastHeartbeat: now},
			// A FleetLock-only host not heard from for long is not silent: Zincati calls only around reboots.
			"z2": {ID: "z2", Datacenter: "ams", FleetLock: true, LastHeartbeat: now.Add(-time.Hour)},
		},
		Policies: map[string]*Policy{
			"copy-fail": {ID: "copy-fail", Version: 2, Pushed: pushed},
			"fra-only":  {ID: "fra-only", Version: 1, Pushed: pushed, Datacenters: []string{"fra"}},
			"retired":   {ID: "retired", Version: 3, Pushed: pushed, Retired: true},
		},
		Rollouts: map[string]*Rollout{
			"r1": {ID: "r1", Line: "6.12", Release: "old", State: RolloutDone, Created: now.Add(-48 * time.Hour)},
			"r2": {ID: "r2", Line: "6.12", Release: "new", State: RolloutPaused, Created: now.Add(-time.Hour),
				Waves: []Wave{{Name: WaveStaging, Completed: now}, {Name: WaveCanary}}},
			"r3": {ID: "r3", Line: "6.1", Release: "lts", State: RolloutFailed, Created: now.Add(-2 * time.Hour)},
		},
	}
	s.reindex()
	fs := s.FleetStats(now, time.Minute)
	// Through a view, one datacenter's hosts per call: the same counts.
	views := 0
	if got := CountFleet(func(fn func(*State)) { views++; fn(s) }, now, time.Minute); !reflect.DeepEqual(got, fs) {
		t.Errorf("CountFleet = %+v, FleetStats = %+v", got, fs)
	}
	if want := 1 + 2; views != want { // the settings, then fra and ams (empty has no hosts)
		t.Errorf("CountFleet took %d views, want %d", views, want)
	}

	wantDC := map[string]DCStats{
		"fra":   {Hosts: 3, Phases: map[string]int{wire.PhaseIdle: 1, wire.PhaseRebooting: 2}, Silent: 1, SlotsHeld: 2, SlotsLost: 1},
		"ams":   {Hosts: 4, Phases: map[string]int{wire.PhaseFailed: 1, PhaseUnknown: 3}, Unhealthy: 1, Paused: true},
		"empty": {Phases: map[string]int{}},
	}
	if len(fs.Datacenters) != len(wantDC) {
		t.Fatalf("datacenters %v, want %v", fs.Datacenters, wantDC)
	}
	for name, want := range wantDC {
		if got := fs.Datacenters[name]; got == nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("datacenter %s: %+v, want %+v", name, got, want)
		}
	}
	wantKernels := map[KernelKey]int{
		{"fra", "6.12", "6.12.85"}: 2, {"fra", "6.12", "6.12.80"}: 1, {"ams", "6.12", "6.12.85"}: 1, {"ams", "", PhaseUnknown}: 3,
	}
	if !reflect.DeepEqual(fs.Kernels, wantKernels) {
		t.Errorf("kernels %v, want %v", fs.Kernels, wantKernels)
	}
	wantPolicies := []PolicyCoverage{
		{ID: "copy-fail", Version: 2, Pushed: pushed, Targeted: 4, InForce: 2},
		{ID: "fra-only", Version: 1, Pushed: pushed, Targeted: 2, InForce: 0},
	}
	if !reflect.DeepEqual(fs.Policies, wantPolicies) {
		t.Errorf("policies %+v, want %+v", fs.Policies, wantPolicies)
	}
	var rollouts []string
	for _, r := range fs.Rollouts {
		rollouts = append(rollouts, r.ID+"="+r.State)
	}
	if want := []string{"r3=failed", "r2=paused"}; !reflect.DeepEqual(rollouts, want) {
		t.Errorf("newest rollouts per line %v, want %v", rollouts, want)
	}
	if r := fs.Rollouts[1]; r.Waves != len(s.Rollouts["r2"].Waves) || r.WavesCompleted != 1 || r.Line != s.Rollouts["r2"].Line || r.Release != s.Rollouts["r2"].Release {
		t.Errorf("r2's stats %+v: want its line, release, %d waves, 1 completed", r, len(s.Rollouts["r2"].Waves))
	}
	if n := s.Rollouts["r2"].WavesCompleted(); n != 1 {
		t.Errorf("r2 waves completed %d, want 1", n)
	}
}

// BenchmarkFleetStats measures one scrape's pass (under the state's read
// lock) over 100,000 hosts in 330 datacenters with two policies.
func BenchmarkFleetStats(b *testing.B) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := &State{LivenessByFlag: true, Datacenters: map[string]*Datacenter{}, Hosts: map[string]*Host{},
		Policies: map[string]*Policy{"a": {ID: "a", Version: 1}, "b": {ID: "b", Version: 1, Datacenters: []string{"dc7"}}}}
	for i := range 330 {
		name := fmt.Sprintf("dc%d", i)
		s.Datacenters[name] = &Datacenter{Name: name}
	}
	phases := []string{wire.PhaseIdle, wire.PhaseStaged, wire.PhaseRebooting}
	for i := range 100_000 {
		id := fmt.Sprintf("h%d", i)
		s.Hosts[id] = &Host{ID: id, Datacenter: fmt.Sprintf("dc%d", i%330), KernelLine: "6.12", Kernel: fmt.Sprintf("6.12.%d", 80+i%3),
			Phase: phases[i%3], Policies: []wire.PolicyStatus{{ID: "a", Version: 1, State: wire.PolicyEnforcing}}}
	}
	s.reindex()
	b.ReportAllocs()
	for b.Loop() {
		s.FleetStats(now, time.Minute)
	}
}
