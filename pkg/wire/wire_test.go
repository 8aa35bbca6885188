package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPolicyState(t *testing.T) {
	for _, tc := range []struct {
		s       PolicyState
		valid   bool
		inForce bool
	}{
		{PolicyEnforcing, true, true},
		{PolicyAuditing, true, true},
		{PolicyRetired, true, false},
		{PolicyUnavailable, true, false},
		{PolicyRejected, true, false},
		{"expired", false, false},
		{"unavailable: no bpf", false, false},
		{"", false, false},
	} {
		if got := tc.s.Valid(); got != tc.valid {
			t.Errorf("%q.Valid() = %v, want %v", tc.s, got, tc.valid)
		}
		if got := tc.s.InForce(); got != tc.inForce {
			t.Errorf("%q.InForce() = %v, want %v", tc.s, got, tc.inForce)
		}
	}
	// The JSON form is the plain string agents always sent.
	b, err := json.Marshal(PolicyStatus{ID: "p", Version: 3, State: PolicyRetired})
	if err != nil || string(b) != `{"id":"p","version":3,"state":"retired"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
}

func TestDesiredVersion(t *testing.T) {
	rel := &SignedRelease{ID: "r1", Manifest: json.RawMessage(`{"id":"r1"}`), Signature: json.RawMessage(`"sig"`)}
	p1 := SignedPolicy{ID: "a", Version: 1, Document: "doc a", Signature: json.RawMessage(`"sa"`)}
	p2 := SignedPolicy{ID: "b", Version: 2, Document: "doc b", Signature: json.RawMessage(`"sb"`)}
	p1v2 := p1
	p1v2.Version = 2
	base := DesiredVersion(rel, []SignedPolicy{p1, p2})
	if !ValidDesiredVersion(base) || base == "" {
		t.Fatalf("version %q is not valid", base)
	}
	for _, tc := range []struct {
		name string
		rel  *SignedRelease
		ps   []SignedPolicy
		same bool
	}{
		{"identical", &SignedRelease{ID: "r1", Manifest: json.RawMessage(`{"id":"r1"}`), Signature: json.RawMessage(`"sig"`)}, []SignedPolicy{p1, p2}, true},
		{"policy order does not matter", rel, []SignedPolicy{p2, p1}, true},
		{"no release", nil, []SignedPolicy{p1, p2}, false},
		{"other release", &SignedRelease{ID: "r2", Manifest: rel.Manifest, Signature: rel.Signature}, []SignedPolicy{p1, p2}, false},
		{"other manifest", &SignedRelease{ID: "r1", Manifest: json.RawMessage(`{"id":"r2"}`), Signature: rel.Signature}, []SignedPolicy{p1, p2}, false},
		{"policy removed", rel, []SignedPolicy{p1}, false},
		{"policy version", rel, []SignedPolicy{p1v2, p2}, false},
		{"policy document", rel, []SignedPolicy{{ID: "a", Version: 1, Document: "doc A", Signature: p1.Signature}, p2}, false},
		// Length prefixes: moving bytes between fields changes the version.
		{"field boundary", &SignedRelease{ID: "r1{", Manifest: json.RawMessage(`"id":"r1"}`), Signature: rel.Signature}, []SignedPolicy{p1, p2}, false},
	} {
		if got := DesiredVersion(tc.rel, tc.ps); (got == base) != tc.same {
			t.Errorf("%s: version equal = %v, want %v", tc.name, got == base, tc.same)
		}
	}
	if DesiredVersion(nil, nil) == DesiredVersion(&SignedRelease{}, nil) {
		t.Error("an absent release and an empty one have the same version")
	}
	for v, ok := range map[string]bool{"": true, base: true, base[:63]: false, base + "0": false, strings.ToUpper(base): base == strings.ToUpper(base), strings.Repeat("g", 64): false} {
		if ValidDesiredVersion(v) != ok {
			t.Errorf("ValidDesiredVersion(%q) = %v, want %v", v, !ok, ok)
		}
	}
}

// BenchmarkDesiredVersion: the per-heartbeat cost of the version (a
// 2 KiB manifest and two 1 KiB policies), and the answer sizes with and
// without the documents.
func BenchmarkDesiredVersion(b *testing.B) {
	rel := &SignedRelease{ID: "6.12.117-kroll.1", Manifest: json.RawMessage(`"` + strings.Repeat("m", 2048) + `"`), Signature: json.RawMessage(`"` + strings.Repeat("s", 120) + `"`)}
	ps := []SignedPolicy{
		{ID: "copy-fail", Version: 3, Document: strings.Repeat("d", 1024), Signature: json.RawMessage(`"` + strings.Repeat("s", 120) + `"`)},
		{ID: "userns", Version: 1, Document: strings.Repeat("d", 1024), Signature: json.RawMessage(`"` + strings.Repeat("s", 120) + `"`)},
	}
	full, _ := json.Marshal(DesiredState{HeartbeatIntervalSeconds: 10, Release: rel, Policies: ps, DesiredVersion: DesiredVersion(rel, ps), Datacenter: &DatacenterLimits{EffectiveLimit: 2, MinHealthyPct: 90, Hosts: 300}})
	omitted, _ := json.Marshal(DesiredState{HeartbeatIntervalSeconds: 10, DesiredVersion: DesiredVersion(rel, ps), Unchanged: true, Datacenter: &DatacenterLimits{EffectiveLimit: 2, MinHealthyPct: 90, Hosts: 300}})
	b.ReportAllocs()
	for b.Loop() {
		DesiredVersion(rel, ps)
	}
	b.ReportMetric(float64(len(full)), "full-bytes")
	b.ReportMetric(float64(len(omitted)), "unchanged-bytes")
}

func TestHeartbeatDigest(t *testing.T) {
	base := Heartbeat{HostID: "h1", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85", Phase: PhaseIdle, BootID: "b1",
		Policies: []PolicyStatus{{ID: "p", Version: 2, State: PolicyEnforcing}}, View: &DCView{Alive: 10, Dead: 1}, GossipAddr: "10.0.0.1:7946"}
	d := HeartbeatDigest(base)
	same := []func(*Heartbeat){
		func(hb *Heartbeat) { hb.HostID = "other" },
		func(hb *Heartbeat) { hb.DesiredVersion = "abc" },
		func(hb *Heartbeat) { hb.View = &DCView{Alive: 3, Draining: 1} }, // same out-of-service count
	}
	for i, f := range same {
		hb := base
		f(&hb)
		if got := HeartbeatDigest(hb); got != d {
			t.Errorf("same-digest case %d: %s, want %s", i, got, d)
		}
	}
	differ := map[string]func(*Heartbeat){
		"datacenter": func(hb *Heartbeat) { hb.Datacenter = "ams" },
		"line":       func(hb *Heartbeat) { hb.KernelLine = "6.18" },
		"kernel":     func(hb *Heartbeat) { hb.Kernel = "6.12.86" },
		"phase":      func(hb *Heartbeat) { hb.Phase = PhaseDraining },
		"boot id":    func(hb *Heartbeat) { hb.BootID = "b2" },
		"gossip":     func(hb *Heartbeat) { hb.GossipAddr = "" },
		"policy":     func(hb *Heartbeat) { hb.Policies = []PolicyStatus{{ID: "p", Version: 2, State: PolicyAuditing}} },
		"no policy":  func(hb *Heartbeat) { hb.Policies = nil },
		"view oos":   func(hb *Heartbeat) { hb.View = &DCView{Alive: 10, Dead: 2} },
		"no view":    func(hb *Heartbeat) { hb.View = nil },
		"shifted":    func(hb *Heartbeat) { hb.Kernel, hb.Phase = hb.Kernel+hb.Phase, "" },
	}
	for name, f := range differ {
		hb := base
		f(&hb)
		if HeartbeatDigest(hb) == d {
			t.Errorf("%s changed, digest did not", name)
		}
	}
}

func TestValidLine(t *testing.T) {
	for s, want := range map[string]bool{
		"6.12": true, "6.0": true, "10.123": true, "5.4": true,
		"": false, "6": false, "6.": false, ".12": false, "6.12.1": false, "06.12": false, "6.012": false,
		"0.1": false, "6.1234": false, "lts": false, "6.1a": false, " 6.12": false, "-6.12": false,
	} {
		if got := ValidLine(s); got != want {
			t.Errorf("ValidLine(%q) = %v, want %v", s, got, want)
		}
	}
}
