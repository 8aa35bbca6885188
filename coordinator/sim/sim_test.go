package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// smallFleet is a fleet small enough to simulate many times in a test:
// 2 staging, 6 control and 12 edge datacenters, 1500 hosts.
func smallFleet(t testing.TB) Fleet {
	t.Helper()
	f, err := DefaultFleet(20, 1500)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func run(t testing.TB, f Fleet, opt Options) *Result {
	t.Helper()
	r, err := Run(context.Background(), f, opt)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func intp(n int) *int { return &n }

func TestDeterminism(t *testing.T) {
	f := smallFleet(t)
	tests := []struct {
		name string
		opt  Options
	}{
		{"normal", Options{Seed: 7}},
		{"expedite", Options{Seed: 7, Expedite: true}},
		{"cold", Options{Seed: 7, Expedite: true, Reboot: RebootCold}},
		{"failing", Options{Seed: 7, Expedite: true, FailPct: 5}},
		{"lost", Options{Seed: 7, Expedite: true, LostPct: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := run(t, f, tt.opt)
			b := run(t, f, tt.opt)
			if !reflect.DeepEqual(a, b) {
				ja, _ := json.Marshal(a)
				jb, _ := json.Marshal(b)
				t.Fatalf("same seed, different results:\n%s\n%s", ja, jb)
			}
			other := tt.opt
			other.Seed++
			c := run(t, f, other)
			if c.MakespanHours == a.MakespanHours && reflect.DeepEqual(c.Series, a.Series) {
				t.Errorf("seeds %d and %d gave identical runs", tt.opt.Seed, other.Seed)
			}
		})
	}
}

// TestInvariants checks, at every event, what the state machine itself
// reports: never more holders than the effective slot limit, and never
// fewer serving hosts than the floor after a grant. CheckFSM also makes
// the run fail when the simulator's own counts drift from the state
// machine's.
func TestInvariants(t *testing.T) {
	f := smallFleet(t)
	tests := []struct {
		name      string
		opt       Options
		completed bool
	}{
		{"normal", Options{Seed: 1}, true},
		{"expedite", Options{Seed: 2, Expedite: true}, true},
		{"cold", Options{Seed: 3, Reboot: RebootCold}, true},
		{"failing-1pct", Options{Seed: 4, Expedite: true, FailPct: 1}, true},
		{"lost-2pct", Options{Seed: 5, Expedite: true, LostPct: 2}, true},
		// (A seed whose staging and canary hosts all stay healthy: any
		// failure there stops the rollout, see TestBudgets.)
		{"failing-and-lost-normal", Options{Seed: 11, FailPct: 1, LostPct: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var samples, grants, bad int
			opt := tt.opt
			opt.CheckFSM = true
			opt.OnEvent = func(s InvariantSample) {
				samples++
				if s.AfterGrant {
					grants++
				}
				if s.Holders > s.EffectiveLimit || (s.AfterGrant && s.Serving < s.Floor) {
					bad++
					if bad <= 5 {
						t.Errorf("%s: %d holders (limit %d), %d serving (floor %d), after grant %v",
							s.Datacenter, s.Holders, s.EffectiveLimit, s.Serving, s.Floor, s.AfterGrant)
					}
				}
			}
			r := run(t, f, opt)
			if samples == 0 || grants < r.Hosts {
				t.Fatalf("checked %d events, %d grants; want every event and ≥ %d grants", samples, grants, r.Hosts)
			}
			if r.CapacityFloorViolations != 0 || r.SlotLimitViolations != 0 {
				t.Errorf("violations: floor %d, slots %d", r.CapacityFloorViolations, r.SlotLimitViolations)
			}
			if r.Completed != tt.completed {
				t.Errorf("completed = %v (rollout %s: %s), want %v", r.Completed, r.RolloutState, r.PauseReason, tt.completed)
			}
			if r.LowerBoundHours <= 0 || r.LowerBoundHours > r.MakespanHours || r.Efficiency > 1 {
				t.Errorf("lower bound %.2f h, makespan %.2f h, efficiency %.3f: the bound must not exceed the makespan",
					r.LowerBoundHours, r.MakespanHours, r.Efficiency)
			}
			// Out of service: at most what the floor allows, unless
			// failed hosts alone took more (they stay out for an
			// operator).
			allowed := 0.0
			for _, d := range f.Datacenters {
				p, _ := d.policy()
				allowed = max(allowed, float64(d.Hosts-p.Floor(d.Hosts))/float64(d.Hosts))
			}
			if r.MaxDCOutFraction <= 0 || (r.MaxDCOutFraction > allowed+1e-9 && tt.opt.FailPct == 0) {
				t.Errorf("max_dc_out_fraction = %.3f, want within (0, %.3f]", r.MaxDCOutFraction, allowed)
			}
			if r.HostsUpdated+r.HostsFailed < r.Hosts || (tt.opt.FailPct > 0) != (r.HostsFailed > 0) {
				t.Errorf("updated %d of %d hosts, %d failed", r.HostsUpdated, r.Hosts, r.HostsFailed)
			}
		})
	}
}

// TestBudgets checks that the failure budgets and gates act sensibly: a
// 1% background failure rate completes with the proportional wave budget
// (when staging and the canary stay healthy), and a bad kernel fails the
// rollout at its staging gate whatever the wave budget, before any host
// outside staging is touched; so does a single host lost in staging.
func TestBudgets(t *testing.T) {
	f := smallFleet(t)
	tests := []struct {
		name       string
		opt        Options
		completed  bool
		state      string
		reason     string
		leftPaused bool
	}{
		{"1pct-auto-budget", Options{Seed: 1, Expedite: true, FailPct: 1}, true, "done", "", false},
		{"1pct-normal-cycle", Options{Seed: 2, FailPct: 1}, true, "done", "", false},
		{"bad-kernel-default-budget", Options{Seed: 1, Expedite: true, FailPct: 30, Budget: intp(2)}, false, "failed", "wave staging: host stg-", false},
		{"bad-kernel-no-wave-budget", Options{Seed: 1, Expedite: true, FailPct: 30, Budget: intp(100000)}, false, "failed", "wave staging: host stg-", false},
		{"lost-in-staging", Options{Seed: 8, LostPct: 2}, false, "failed", "lost mid-reboot", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, f, tt.opt)
			if r.Completed != tt.completed || r.RolloutState != tt.state || !strings.Contains(r.PauseReason, tt.reason) {
				t.Errorf("completed %v, rollout %s (%q); want %v, %s (%q)", r.Completed, r.RolloutState, r.PauseReason, tt.completed, tt.state, tt.reason)
			}
			if got := len(r.DatacentersLeftPaused) > 0; got != tt.leftPaused {
				t.Errorf("datacenters left paused: %v, want some: %v", r.DatacentersLeftPaused, tt.leftPaused)
			}
			if r.CapacityFloorViolations != 0 || r.SlotLimitViolations != 0 {
				t.Errorf("violations: floor %d, slots %d", r.CapacityFloorViolations, r.SlotLimitViolations)
			}
			if !tt.completed && r.HostsFailed > r.Hosts/10 {
				t.Errorf("%d of %d hosts failed before the budgets stopped a bad kernel", r.HostsFailed, r.Hosts)
			}
			if staging := 2 * defaultStagingHosts; tt.state == "failed" && r.HostsFailed+r.HostsUpdated > staging {
				t.Errorf("%d hosts updated and %d failed: a failed staging gate touched hosts outside its %d", r.HostsUpdated, r.HostsFailed, staging)
			}
			if tt.opt.FailPct == 1 && (r.HostsFailed == 0 || r.HostsFailed > r.Hosts/20) {
				t.Errorf("%d of %d hosts failed at a 1%% failure rate", r.HostsFailed, r.Hosts)
			}
		})
	}
}

func TestLostHostsNeedAnOperator(t *testing.T) {
	r := run(t, smallFleet(t), Options{Seed: 3, Expedite: true, LostPct: 3})
	if r.HostsLost == 0 || r.OperatorActions < r.HostsLost || r.DatacenterResumes == 0 {
		t.Errorf("lost %d hosts, %d operator actions, %d resumes", r.HostsLost, r.OperatorActions, r.DatacenterResumes)
	}
	if !r.Completed || r.Denials["dc_paused"] == 0 {
		t.Errorf("completed %v, denials %v: want a paused datacenter and completion", r.Completed, r.Denials)
	}
}

func TestDefaultFleet(t *testing.T) {
	tests := []struct{ dcs, hosts int }{{330, 100000}, {20, 1500}, {50, 5000}}
	for _, tt := range tests {
		f, err := DefaultFleet(tt.dcs, tt.hosts)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		tiers := map[string]int{}
		zones := map[string]bool{}
		smallest, largest := math.MaxInt, 0
		for _, d := range f.Datacenters {
			tiers[d.Tier]++
			zones[strings.Fields(d.Window)[2]] = true
			if d.Tier != "staging" {
				smallest, largest = min(smallest, d.Hosts), max(largest, d.Hosts)
			}
		}
		if len(f.Datacenters) != tt.dcs || f.Hosts() != tt.hosts || tiers["staging"] != 2 {
			t.Errorf("%d/%d: got %d datacenters, %d hosts, tiers %v", tt.dcs, tt.hosts, len(f.Datacenters), f.Hosts(), tiers)
		}
		if ratio := float64(largest) / float64(smallest); ratio < 70 || ratio > 130 {
			t.Errorf("%d/%d: largest/smallest = %d/%d = %.0f, want ≈ 100", tt.dcs, tt.hosts, largest, smallest, ratio)
		}
		if tt.dcs == 330 && (tiers["control"] != 10 || len(zones) != 20) {
			t.Errorf("tiers %v, %d zones; want 10 control datacenters and 20 zones", tiers, len(zones))
		}
	}
}

func TestLoadFleet(t *testing.T) {
	dir := t.TempDir()
	good := Fleet{Line: "6.18", FromKernel: "6.18.1", ToKernel: "6.18.2", Datacenters: []Datacenter{
		{Name: "stg", Hosts: 3, Tier: "staging", SlotLimit: 1, MinHealthyPct: 50},
		{Name: "fra1", Hosts: 40, Window: "Mon-Sun 02:00-04:00 Europe/Berlin", SlotPct: 10, MinHealthyPct: 80},
		{Name: "nrt1", Hosts: 25, Window: "Mon-Sun 02:00-04:00 Asia/Tokyo", SlotLimit: 2, MinHealthyPct: 80, FailureBudget: 2},
	}}
	tests := []struct {
		name    string
		fleet   any
		wantErr string
	}{
		{"good", good, ""},
		{"unknown-field", map[string]any{"datacenters": []any{map[string]any{"name": "a", "hosts": 1, "slots": 1}}}, "unknown field"},
		{"bad-window", Fleet{Datacenters: []Datacenter{{Name: "a", Hosts: 3, SlotLimit: 1, Window: "Mon 02:00-04:00 Mars/Base"}}}, "window"},
		{"no-slots", Fleet{Datacenters: []Datacenter{{Name: "a", Hosts: 3}}}, "SlotLimit"},
		{"no-hosts", Fleet{Datacenters: []Datacenter{{Name: "a", SlotPct: 5}}}, "hosts > 0"},
		{"empty", Fleet{}, "no datacenters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name+".json")
			data, _ := json.Marshal(tt.fleet)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := LoadFleet(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Durations != DefaultDurations() {
				t.Errorf("durations = %+v, want the defaults", f.Durations)
			}
			r := run(t, f, Options{Seed: 1})
			if !r.Completed || r.Hosts != 68 || r.CapacityFloorViolations != 0 {
				t.Errorf("completed %v, %d hosts, %d floor violations", r.Completed, r.Hosts, r.CapacityFloorViolations)
			}
		})
	}
}

func TestRunOptionsAndCancel(t *testing.T) {
	f := smallFleet(t)
	tests := []struct {
		name    string
		opt     Options
		cancel  bool
		wantErr string
	}{
		{"bad-reboot", Options{Reboot: "pxe"}, false, "kexec or cold"},
		{"bad-fail", Options{FailPct: 101}, false, "0..100"},
		{"cancelled", Options{}, true, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			_, err := Run(ctx, f, tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.cancel && !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want it to wrap context.Canceled", err)
			}
		})
	}
}

func TestOutputs(t *testing.T) {
	r := run(t, smallFleet(t), Options{Seed: 1, Expedite: true, FailPct: 1})
	var svg bytes.Buffer
	if err := WriteSVG(&svg, r); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	lines := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if want := len(r.Series.Regions) + 1; lines != want {
		t.Errorf("%d polylines, want %d (one per region and the kernel chart)", lines, want)
	}
	var tbl bytes.Buffer
	if err := r.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"makespan_hours", "lower_bound_hours", "efficiency", "max_dc_out_fraction", "capacity_floor_violations", "edge-100%"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"makespan_hours", "lower_bound_hours", "efficiency", "max_dc_out_fraction", "capacity_floor_violations", "hosts", "datacenters"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
}

// TestStartIsLocalNight pins the window arithmetic: with the default
// start (Monday 00:00 UTC) a staging datacenter in a western zone cannot
// start before its local 02:00.
func TestStartIsLocalNight(t *testing.T) {
	f := Fleet{Line: "6.12", FromKernel: "a", ToKernel: "b", Durations: DefaultDurations(), Datacenters: []Datacenter{
		{Name: "stg", Hosts: 2, Tier: "staging", SlotLimit: 1, MinHealthyPct: 50, Window: "Mon-Sun 02:00-04:00 America/Los_Angeles"},
	}}
	r := run(t, f, Options{Seed: 1})
	// 00:00 UTC is 16:00 in Los Angeles (PST): the window opens 10 h later.
	if r.MakespanHours < 10 || r.MakespanHours > 12 || r.LowerBoundHours < 10 {
		t.Errorf("makespan %.2f h, bound %.2f h; want both after the window opens 10 h in", r.MakespanHours, r.LowerBoundHours)
	}
}

// FuzzLoadFleet: a fleet file is decoded strictly and validated; bad ones
// are refused with an error, never a panic.
func FuzzLoadFleet(f *testing.F) {
	f.Add([]byte(`{"datacenters":[{"name":"fra1","hosts":10,"tier":"edge","slot_pct":10,"min_healthy_pct":80,"window":"Mon-Sun 02:00-04:00 Europe/Berlin"}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"datacenters":[{"name":"","hosts":-1}]}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fleet.json")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		fl, err := LoadFleet(p)
		if err != nil {
			return
		}
		if err := fl.Validate(); err != nil {
			t.Fatalf("LoadFleet returned a fleet that does not validate: %v", err)
		}
	})
}
