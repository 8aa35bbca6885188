package fsm

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const copyFailCVE = "CVE-2026-31431"

// cveRelease is a release of line whose manifest lists fixes.
func cveRelease(id, line, kernel, state string, added int, fixes ...string) *Release {
	m, _ := json.Marshal(map[string]any{"id": id, "line": line, "kernel_version": kernel, "fixes": fixes})
	return &Release{ID: id, Line: line, KernelVersion: kernel, Kind: "deb", Manifest: m, State: state,
		Added: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(added) * time.Hour)}
}

// cvePolicyState is a policy for cve fixed in fixedIn.
func cvePolicyState(t testing.TB, id, cve string, fixedIn ...string) *Policy {
	t.Helper()
	p := policy.Policy{ID: id, CVE: cve, Version: 1, Kind: policy.KindSocketFamily, Mode: policy.ModeEnforce,
		Params:    policy.Params{Family: "AF_ALG", Operations: []policy.Operation{policy.OpBind}},
		AppliesTo: policy.AppliesTo{FixedIn: fixedIn}, Expires: time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)}
	doc, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return &Policy{ID: id, Version: 1, CVE: cve, Kind: string(p.Kind), Mode: string(p.Mode), Document: string(doc)}
}

func cveHost(id, dc, line, kernel string, pols ...wire.PolicyStatus) *Host {
	return &Host{ID: id, Datacenter: dc, KernelLine: line, Kernel: kernel, Policies: pols}
}

func enforcing(id string) wire.PolicyStatus {
	return wire.PolicyStatus{ID: id, Version: 1, State: wire.PolicyEnforcing}
}

func auditing(id string) wire.PolicyStatus {
	return wire.PolicyStatus{ID: id, Version: 1, State: wire.PolicyAuditing}
}

// cveFleet is the fleet of the CVE tests: line 6.12 with internal builds
// (the fix is in 6.12.80-cf1), line 6.18 with no fixing release but a
// policy fixed in 6.18.30, a host that reported no kernel.
func cveFleet(t testing.TB, fixState string) *State {
	s := newState()
	for _, r := range []*Release{
		cveRelease("r79", "6.12", "6.12.79-cf1-amd64", ReleaseDone, 0),
		cveRelease("r80", "6.12", "6.12.80-cf1-amd64", fixState, 1, "CVE-2026-1111", copyFailCVE),
		cveRelease("r81", "6.12", "6.12.81-cf1-amd64", ReleaseCandidate, 2),
		cveRelease("r18", "6.18", "6.18.2", ReleaseDone, 0),
	} {
		s.Releases[r.ID] = r
	}
	s.Policies["copy-fail"] = cvePolicyState(t, "copy-fail", copyFailCVE, "6.18.30")
	s.Policies["other"] = cvePolicyState(t, "other", "CVE-2026-1111", "6.18.1")
	for _, h := range []*Host{
		cveHost("a1", "fra1", "6.12", "6.12.79-cf1-amd64", enforcing("copy-fail")),
		cveHost("a2", "fra1", "6.12", "6.12.79-cf1-amd64", auditing("copy-fail"), enforcing("other")),
		cveHost("a3", "fra1", "6.12", "6.12.80-cf1-amd64"),
		cveHost("a4", "ams1", "6.12", "6.12.81-cf1-amd64"),
		cveHost("a5", "ams1", "6.18", "6.18.2", enforcing("copy-fail")),
		cveHost("a6", "ams1", "6.18", "6.18.2", wire.PolicyStatus{ID: "copy-fail", State: wire.PolicyRetired}),
		cveHost("a7", "ams1", "6.18", "6.18.30"),
		cveHost("a8", "lhr1", "", ""),
	} {
		s.Hosts[h.ID] = h
	}
	return s
}

func TestCVEExposureCounts(t *testing.T) {
	rep := cveFleet(t, ReleaseValidated).CVEExposure(copyFailCVE)
	want := wire.CVECounts{Patched: 3, Mitigated: 2, Auditing: 1, Exposed: 2}
	if rep.CVE != copyFailCVE || rep.CVECounts != want {
		t.Errorf("total = %s %+v, want %+v", rep.CVE, rep.CVECounts, want)
	}
	lines := map[string]wire.CVECounts{}
	for _, l := range rep.Lines {
		lines[l.Line] = l.CVECounts
	}
	for line, w := range map[string]wire.CVECounts{
		"6.12":      {Patched: 2, Mitigated: 1, Auditing: 1},
		"6.18":      {Patched: 1, Mitigated: 1, Exposed: 1},
		LineUnknown: {Exposed: 1},
	} {
		if lines[line] != w {
			t.Errorf("line %s = %+v, want %+v", line, lines[line], w)
		}
	}
	if len(rep.Lines) != 3 || rep.Lines[0].Line != "6.12" || rep.Lines[1].Line != "6.18" || rep.Lines[2].Line != LineUnknown {
		t.Errorf("lines %+v not in version order", rep.Lines)
	}
	dcs := map[string]wire.CVECounts{}
	var names []string
	for _, d := range rep.Datacenters {
		dcs[d.Datacenter] = d.CVECounts
		names = append(names, d.Datacenter)
	}
	if strings.Join(names, ",") != "ams1,fra1,lhr1" {
		t.Errorf("datacenters %v, want ams1,fra1,lhr1", names)
	}
	for dc, w := range map[string]wire.CVECounts{
		"fra1": {Patched: 1, Mitigated: 1, Auditing: 1},
		"ams1": {Patched: 2, Mitigated: 1, Exposed: 1},
		"lhr1": {Exposed: 1},
	} {
		if dcs[dc] != w {
			t.Errorf("datacenter %s = %+v, want %+v", dc, dcs[dc], w)
		}
	}
	// Another CVE: its own policy and release, nothing else counts.
	other := cveFleet(t, ReleaseValidated).CVEExposure("CVE-2026-1111")
	if w := (wire.CVECounts{Patched: 5, Mitigated: 1, Exposed: 2}); other.CVECounts != w {
		t.Errorf("CVE-2026-1111 = %+v, want %+v", other.CVECounts, w)
	}
	// An unknown CVE: no fix, no policy, everyone exposed.
	none := cveFleet(t, ReleaseValidated).CVEExposure("CVE-2030-0001")
	if w := (wire.CVECounts{Exposed: 8}); none.CVECounts != w {
		t.Errorf("unknown CVE = %+v, want %+v", none.CVECounts, w)
	}
}

func TestCVEExposureAdvice(t *testing.T) {
	for _, tc := range []struct {
		fixState string
		fix      string // the 6.12 fix release
		advice   string // the 6.12 advice
	}{
		{ReleaseValidated, "r80", "expedite the train (release r80 validated); 1 hosts only auditing: push the policy in enforce mode"},
		{ReleaseRolling, "r80", "rolling: 2 of 4 hosts patched (release r80); 1 hosts only auditing: push the policy in enforce mode"},
		{ReleaseStaging, "r80", "fix in staging (release r80): keep the mitigation (2 hosts) until it is validated; 1 hosts only auditing: push the policy in enforce mode"},
		// r80 rejected: r81, later on the line, is the fix (a candidate).
		{ReleaseRejected, "r81", "fix in candidate (release r81): keep the mitigation (2 hosts) until it is validated; 1 hosts only auditing: push the policy in enforce mode"},
		{ReleaseDone, "r80", "release r80 rolled out but 2 of 4 hosts are not patched: find them (host list) and keep the mitigation; 1 hosts only auditing: push the policy in enforce mode"},
	} {
		t.Run(tc.fixState, func(t *testing.T) {
			rep := cveFleet(t, tc.fixState).CVEExposure(copyFailCVE)
			advice := map[string]wire.CVELine{}
			for _, l := range rep.Lines {
				advice[l.Line] = l
			}
			if l := advice["6.12"]; l.FixRelease != tc.fix || l.Advice != tc.advice {
				t.Errorf("6.12: fix %q advice %q; want %q %q", l.FixRelease, l.Advice, tc.fix, tc.advice)
			}
			if l := advice["6.18"]; l.FixRelease != "" || l.Advice != "no fix on line 6.18: keep the mitigation (2 hosts); 1 hosts exposed: the policy is not in force there" {
				t.Errorf("6.18: fix %q advice %q", l.FixRelease, l.Advice)
			}
		})
	}
	// Everything patched; no policy at all.
	s := cveFleet(t, ReleaseRolling)
	for _, h := range s.Hosts {
		h.Kernel, h.KernelLine = "6.12.80-cf1-amd64", "6.12"
	}
	rep := s.CVEExposure(copyFailCVE)
	if len(rep.Lines) != 1 || rep.Lines[0].Advice != "all 8 hosts patched" {
		t.Errorf("all patched: %+v", rep.Lines)
	}
	delete(s.Policies, "copy-fail")
	for _, h := range s.Hosts {
		h.Kernel = "6.12.79-cf1-amd64"
	}
	rep = s.CVEExposure(copyFailCVE)
	if want := "rolling: 0 of 8 hosts patched (release r80); 8 hosts exposed: no policy for CVE-2026-31431, push one"; len(rep.Lines) != 1 || rep.Lines[0].Advice != want {
		t.Errorf("no policy: %+v, want %q", rep.Lines, want)
	}
}

// TestCVEKernelAmbiguous: a kernel named by a fixing release and by one
// that does not contain the fix is not counted as patched.
func TestCVEKernelAmbiguous(t *testing.T) {
	s := cveFleet(t, ReleaseRolling)
	s.Releases["r80-old"] = cveRelease("r80-old", "6.12", "6.12.80-cf1-amd64", ReleaseDone, 0)
	rep := s.CVEExposure(copyFailCVE)
	if rep.Lines[0].Patched != 1 { // only a4 on r81 (later than the fix)
		t.Errorf("6.12 patched = %d, want 1 (a3's kernel is also an unfixed release's)", rep.Lines[0].Patched)
	}
}

func TestReleaseStateFallback(t *testing.T) {
	passed := []Wave{{Name: WaveStaging, Passed: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)}}
	for _, tc := range []struct {
		name     string
		state    string
		rejected bool
		rollouts []*Rollout
		want     string
	}{
		{"explicit state wins", ReleaseValidated, false, []*Rollout{{State: RolloutRunning}}, ReleaseValidated},
		{"no rollout", "", false, nil, ReleaseCandidate},
		{"running", "", false, []*Rollout{{State: RolloutDone}, {State: RolloutRunning}}, ReleaseRolling},
		{"paused", "", false, []*Rollout{{State: RolloutPaused}}, ReleaseRolling},
		{"done", "", false, []*Rollout{{State: RolloutDone}}, ReleaseDone},
		{"staging passed", "", false, []*Rollout{{State: RolloutAborted, Waves: passed}}, ReleaseValidated},
		{"staging not yet passed", "", false, []*Rollout{{State: RolloutAborted, Waves: []Wave{{Name: WaveStaging}}}}, ReleaseCandidate},
		{"failed", "", false, []*Rollout{{State: RolloutFailed}}, ReleaseRejected},
		{"rejected for a line", "", true, nil, ReleaseRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newState()
			r := &Release{ID: "r", State: tc.state}
			if tc.rejected {
				r.Rejected = map[string]Rejection{"6.12": {}}
			}
			s.Releases["r"] = r
			for i, ro := range tc.rollouts {
				ro.ID, ro.Release = fmt.Sprint("ro", i), "r"
				s.Rollouts[ro.ID] = ro
			}
			s.Rollouts["unrelated"] = &Rollout{ID: "unrelated", Release: "x", State: RolloutRunning}
			if got := s.releaseState(r); got != tc.want {
				t.Errorf("releaseState = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCVEReportJSONKeys is the golden list of the report's JSON keys.
func TestCVEReportJSONKeys(t *testing.T) {
	b, err := json.Marshal(cveFleet(t, ReleaseValidated).CVEExposure(copyFailCVE))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(jsonKeys(top), ","); got != "auditing,cve,datacenters,exposed,lines,mitigated,patched" {
		t.Errorf("top-level keys %s", got)
	}
	var lines []map[string]json.RawMessage
	if err := json.Unmarshal(top["lines"], &lines); err != nil || len(lines) == 0 {
		t.Fatal(err)
	}
	if got := strings.Join(jsonKeys(lines[0]), ","); got != "advice,auditing,exposed,fix_release,fix_state,line,mitigated,patched" {
		t.Errorf("line keys %s", got)
	}
	var dcs []map[string]json.RawMessage
	if err := json.Unmarshal(top["datacenters"], &dcs); err != nil || len(dcs) == 0 {
		t.Fatal(err)
	}
	if got := strings.Join(jsonKeys(dcs[0]), ","); got != "auditing,datacenter,exposed,mitigated,patched" {
		t.Errorf("datacenter keys %s", got)
	}
}

func jsonKeys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// BenchmarkCVEExposure100k: the report over 100k hosts in 50 datacenters
// on two lines with a handful of kernels and policy states.
func BenchmarkCVEExposure100k(b *testing.B) {
	s := cveFleet(b, ReleaseRolling)
	s.Hosts = make(map[string]*Host, 100_000)
	kernels := []string{"6.12.79-cf1-amd64", "6.12.80-cf1-amd64", "6.12.81-cf1-amd64", "6.18.2", "6.18.30"}
	for i := range 100_000 {
		k := kernels[i%len(kernels)]
		line := k[:4]
		var pols []wire.PolicyStatus
		switch i % 3 {
		case 0:
			pols = []wire.PolicyStatus{enforcing("copy-fail"), enforcing("other")}
		case 1:
			pols = []wire.PolicyStatus{auditing("copy-fail")}
		}
		id := fmt.Sprintf("h%06d", i)
		s.Hosts[id] = cveHost(id, fmt.Sprintf("dc%02d", i%50), line, k, pols...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep := s.CVEExposure(copyFailCVE)
		if rep.Hosts() != 100_000 {
			b.Fatalf("%d hosts counted", rep.Hosts())
		}
	}
}

// TestCVELaterReleaseSameSeries: a release counts as containing the fix by
// being later than the fixing one only within the fixing release's build
// series; a host on any other release of the line is not patched.
func TestCVELaterReleaseSameSeries(t *testing.T) {
	for _, tc := range []struct {
		kernel  string
		patched bool
	}{
		{"6.12.82-cf1-amd64", true},
		{"6.12.82-cf2-cloud-amd64", true},
		{"6.12.82", false},
		{"6.12.82-xy1-amd64", false},
		{"6.12.82-cf1-debug", false},
		{"6.12.117+deb12-amd64", false},
	} {
		t.Run(tc.kernel, func(t *testing.T) {
			s := cveFleet(t, ReleaseValidated)
			s.Releases["later"] = cveRelease("later", "6.12", tc.kernel, ReleaseDone, 3)
			for _, h := range s.Hosts {
				h.Kernel, h.KernelLine = tc.kernel, "6.12"
			}
			rep := s.CVEExposure(copyFailCVE)
			if len(rep.Lines) != 1 {
				t.Fatalf("lines %+v, want 6.12 only", rep.Lines)
			}
			if got := rep.Lines[0].Patched == 8; got != tc.patched {
				t.Errorf("hosts on %s patched: %+v, want all patched %v", tc.kernel, rep.Lines[0].CVECounts, tc.patched)
			}
			if !tc.patched && strings.Contains(rep.Lines[0].Advice, "all 8 hosts patched") {
				t.Errorf("advice %q on an unpatched line", rep.Lines[0].Advice)
			}
		})
	}
}
