package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func cveKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// TestCVEShowRealCoordinator: a real coordinator with releases whose
// manifests list fixes, the Copy Fail policy (fixed in an internal build of
// 6.12 and in 6.18.30) and hosts reporting kernels and policy states;
// the API answers the exposure and the playbook, krollctl cve show prints
// it as a table and as JSON.
func TestCVEShowRealCoordinator(t *testing.T) {
	relKey, polKey := cveKey(7), cveKey(8)
	c := testcoord.Start(t, testcoord.Options{
		ReleaseKeys: []ed25519.PublicKey{relKey.Public().(ed25519.PublicKey)},
		PolicyKeys:  []ed25519.PublicKey{polKey.Public().(ed25519.PublicKey)},
	})
	ctx := t.Context()
	for _, r := range []struct {
		id, line, kernel string
		fixes            []string
	}{
		{"6.12.79-cf1", "6.12", "6.12.79-cf1-amd64", nil},
		{"6.12.80-cf1", "6.12", "6.12.80-cf1-amd64", []string{"CVE-2026-31431"}},
		{"6.18.2", "6.18", "6.18.2", nil},
	} {
		m := release.Manifest{ID: r.id, Line: r.line, KernelVersion: r.kernel, Kind: release.KindDeb,
			Artifacts: []release.Artifact{{Name: "linux-image.deb", URL: "http://127.0.0.1:1/linux-image.deb", Size: 1, SHA256: strings.Repeat("a", 64)}},
			Created:   time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Fixes: r.fixes}
		doc, err := m.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		sig, err := release.SignManifest(relKey, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client.AddRelease(ctx, wire.ReleaseAddRequest{Manifest: doc, Signature: sig.Marshal()}); err != nil {
			t.Fatalf("release add %s: %v", r.id, err)
		}
	}
	p := policy.Policy{ID: "copy-fail", CVE: "CVE-2026-31431", Version: 1, Kind: policy.KindSocketFamily, Mode: policy.ModeEnforce,
		Params:    policy.Params{Family: "AF_ALG", Operations: []policy.Operation{policy.OpCreate, policy.OpBind}},
		AppliesTo: policy.AppliesTo{FixedIn: []string{"6.12.80-cf1", "6.18.30"}},
		Expires:   time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)}
	doc, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := policy.Sign(polKey, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.PushPolicy(ctx, wire.PolicyPushRequest{Document: string(doc), Signature: sig.Marshal()}); err != nil {
		t.Fatalf("policy push: %v", err)
	}

	for _, dc := range []string{"fra1", "ams1"} {
		limit := 1
		if _, err := c.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{SlotLimit: &limit}); err != nil {
			t.Fatalf("dc set %s: %v", dc, err)
		}
	}
	agent, err := client.New(c.URL, client.Options{Token: testcoord.AgentToken})
	if err != nil {
		t.Fatal(err)
	}
	st := func(s wire.PolicyState) []wire.PolicyStatus {
		return []wire.PolicyStatus{{ID: "copy-fail", Version: 1, State: s}}
	}
	for _, h := range []wire.Heartbeat{
		{HostID: "f1", Datacenter: "fra1", KernelLine: "6.12", Kernel: "6.12.79-cf1-amd64", Policies: st(wire.PolicyEnforcing)},
		{HostID: "f2", Datacenter: "fra1", KernelLine: "6.12", Kernel: "6.12.79-cf1-amd64", Policies: st(wire.PolicyAuditing)},
		{HostID: "f3", Datacenter: "fra1", KernelLine: "6.12", Kernel: "6.12.80-cf1-amd64", Policies: st(wire.PolicyRetired)},
		{HostID: "a1", Datacenter: "ams1", KernelLine: "6.18", Kernel: "6.18.2", Policies: st(wire.PolicyEnforcing)},
		{HostID: "a2", Datacenter: "ams1", KernelLine: "6.18", Kernel: "6.18.2"},
	} {
		h.Phase = wire.PhaseIdle
		if _, err := agent.Heartbeat(ctx, h); err != nil {
			t.Fatalf("heartbeat %s: %v", h.HostID, err)
		}
	}

	rep, err := c.Client.CVE(ctx, "CVE-2026-31431")
	if err != nil {
		t.Fatal(err)
	}
	if w := (wire.CVECounts{Patched: 1, Mitigated: 2, Auditing: 1, Exposed: 1}); rep.CVECounts != w {
		t.Errorf("total %+v, want %+v", rep.CVECounts, w)
	}
	wantLines := []wire.CVELine{
		{Line: "6.12", FixRelease: "6.12.80-cf1", FixState: "candidate", CVECounts: wire.CVECounts{Patched: 1, Mitigated: 1, Auditing: 1},
			Advice: "fix in candidate (release 6.12.80-cf1): keep the mitigation (2 hosts) until it is validated; 1 hosts only auditing: push the policy in enforce mode"},
		{Line: "6.18", CVECounts: wire.CVECounts{Mitigated: 1, Exposed: 1},
			Advice: "no fix on line 6.18: keep the mitigation (2 hosts); 1 hosts exposed: the policy is not in force there"},
	}
	if !slices.Equal(rep.Lines, wantLines) {
		t.Errorf("lines\n%+v\nwant\n%+v", rep.Lines, wantLines)
	}
	wantDCs := []wire.CVEDatacenter{
		{Datacenter: "ams1", CVECounts: wire.CVECounts{Mitigated: 1, Exposed: 1}},
		{Datacenter: "fra1", CVECounts: wire.CVECounts{Patched: 1, Mitigated: 1, Auditing: 1}},
	}
	if !slices.Equal(rep.Datacenters, wantDCs) {
		t.Errorf("datacenters %+v, want %+v", rep.Datacenters, wantDCs)
	}
	// An unknown CVE is all exposed; a malformed id is one clear error.
	if other, err := c.Client.CVE(ctx, "CVE-2030-0001"); err != nil || other.Exposed != 5 {
		t.Errorf("unknown CVE: %+v, %v", other, err)
	}
	if _, err := c.Client.CVE(ctx, "CVE-26-1"); client.ErrorKind(err) != wire.KindInvalidRequest {
		t.Errorf("malformed CVE id: %v, want %s", err, wire.KindInvalidRequest)
	}
	// Agents may not read it.
	if _, err := agent.CVE(ctx, "CVE-2026-31431"); client.ErrorKind(err) != wire.KindForbidden {
		t.Errorf("agent token: %v, want %s", err, wire.KindForbidden)
	}

	env := map[string]string{"KROLL_COORDINATOR": c.URL, "KROLL_TOKEN": testcoord.OperatorToken}
	code, out, stderr := krollctlEnv(t, env, "cve", "show", "CVE-2026-31431")
	if code != 0 {
		t.Fatalf("cve show: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"CVE-2026-31431  5", "6.12  3", "6.12.80-cf1", "no fix on line 6.18: keep the mitigation (2 hosts)", "fra1  3"} {
		if !strings.Contains(out, want) {
			t.Errorf("cve show table lacks %q:\n%s", want, out)
		}
	}
	code, out, stderr = krollctlEnv(t, env, "cve", "show", "CVE-2026-31431", "-o", "json")
	if code != 0 {
		t.Fatalf("cve show -o json: exit %d: %s", code, stderr)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &top); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got := strings.Join(keys, ","); got != "auditing,cve,datacenters,exposed,lines,mitigated,patched" {
		t.Errorf("JSON keys %s", got)
	}
	if code, _, stderr := krollctlEnv(t, env, "cve", "show", "copy-fail"); code != 2 || !strings.Contains(stderr, "not a CVE id") {
		t.Errorf("cve show copy-fail: exit %d %q, want a usage error", code, stderr)
	}
}

// TestSignFixedInForms: krollctl sign takes a policy whose fixed_in names
// an internal build and a Debian package version, and still refuses
// garbage and kernel image names.
func TestSignFixedInForms(t *testing.T) {
	dir := t.TempDir()
	ops := filepath.Join(dir, "ops")
	if code, _, stderr := krollctl(t, "keygen", "--out", ops); code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	for _, tc := range []struct {
		fixedIn string
		code    int
		stderr  string
	}{
		{`["6.12.80-cf1"]`, 0, ""},
		{`["6.12.80-1~deb12u1"]`, 0, ""},
		{`["6.12.85", "6.12.80-cf1", "6.12.80-1~deb12u1", "6.18.22"]`, 0, ""},
		{`["soon"]`, 1, "applies_to.fixed_in[0]"},
		{`["6.12.80-cf1-amd64"]`, 1, "kernel flavour"},
		{`["6.12.117+deb12-amd64"]`, 1, "Debian kernel release name"},
		{`["6.12.80-cf1", "6.12.81-cf2"]`, 1, "second build entry for line 6.12"},
	} {
		t.Run(tc.fixedIn, func(t *testing.T) {
			pol := filepath.Join(dir, "p.yaml")
			doc := "id: copy-fail\ncve: CVE-2026-31431\nversion: 1\nkind: socket-family\nmode: audit\n" +
				"params:\n  family: AF_ALG\n  operations: [create, bind]\n" +
				"applies_to:\n  fixed_in: " + tc.fixedIn + "\nexpires: 2099-12-31T00:00:00Z\n"
			if err := os.WriteFile(pol, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := krollctl(t, "sign", "--key", ops+".key", pol)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("sign: exit %d stdout %q stderr %q; want exit %d, stderr ∋ %q", code, stdout, stderr, tc.code, tc.stderr)
			}
			if tc.code == 0 {
				if code, _, stderr := krollctl(t, "verify", "--key", ops+".pub", pol); code != 0 {
					t.Fatalf("verify: exit %d %s", code, stderr)
				}
			}
		})
	}
}
