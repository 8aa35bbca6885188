package api

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func signedPolicy(t *testing.T, seed byte, version int64, dcs string) wire.PolicyPushRequest {
	t.Helper()
	doc := fmt.Sprintf(`id: copy-fail
cve: CVE-2026-31431
version: %d
kind: socket-family
mode: enforce
params:
  family: AF_ALG
  operations: [create, bind]
applies_to:
  fixed_in: ["6.12.85"]
  datacenters: [%s]
expires: 2099-12-31T00:00:00Z
`, version, dcs)
	p, err := policy.Decode([]byte(doc), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	sig, err := policy.Sign(priv, p)
	if err != nil {
		t.Fatal(err)
	}
	return wire.PolicyPushRequest{Document: doc, Signature: sig.Marshal()}
}

func TestPolicyPushCoverageRetire(t *testing.T) {
	e := newEnv(t)
	good := signedPolicy(t, 1, 2, "fra1")
	checkError(t, e.do("POST", wire.PathPolicies, tokOperate, good), http.StatusForbidden, wire.KindForbidden)
	e.api.cfg.PolicyKeys = []ed25519.PublicKey{ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)).Public().(ed25519.PublicKey)}

	checkError(t, e.do("POST", wire.PathPolicies, tokRead, good), http.StatusForbidden, wire.KindForbidden)
	checkError(t, e.do("POST", wire.PathPolicies, tokOperate, signedPolicy(t, 2, 2, "fra1")), http.StatusBadRequest, wire.KindInvalidRequest)
	tampered := good
	tampered.Document = strings.Replace(good.Document, "mode: enforce", "mode: audit", 1)
	checkError(t, e.do("POST", wire.PathPolicies, tokOperate, tampered), http.StatusBadRequest, wire.KindInvalidRequest)
	checkError(t, e.do("POST", wire.PathPolicies, tokOperate, wire.PolicyPushRequest{Document: "id: x", Signature: good.Signature}), http.StatusBadRequest, wire.KindInvalidRequest)

	p := decodeOK[wire.Policy](t, e.do("POST", wire.PathPolicies, tokOperate, good))
	if p.ID != "copy-fail" || p.Version != 2 || p.Mode != "enforce" || p.KeyID == "" {
		t.Fatalf("pushed %+v", p)
	}
	mustOK(t, e.do("POST", wire.PathPolicies, tokOperate, good)) // same version again: no-op
	checkError(t, e.do("POST", wire.PathPolicies, tokOperate, signedPolicy(t, 1, 1, "fra1")), http.StatusConflict, wire.KindConflict)

	e.setDC("fra1", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	e.setDC("ams1", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	beat := func(host, dc string, ps ...wire.PolicyStatus) wire.DesiredState {
		return decodeOK[wire.DesiredState](t, e.do("POST", wire.PathHeartbeat, tokAgent,
			wire.Heartbeat{HostID: host, Datacenter: dc, Kernel: "6.12.80", Policies: ps, View: &wire.DCView{Alive: 3}}))
	}
	ds := beat("f1", "fra1")
	if len(ds.Policies) != 1 || ds.Policies[0].ID != "copy-fail" || ds.Policies[0].Document != good.Document || ds.Datacenter == nil || ds.Datacenter.Hosts != 1 {
		t.Fatalf("fra1 desired state: %+v", ds)
	}
	if ds := beat("a1", "ams1"); len(ds.Policies) != 0 {
		t.Fatalf("ams1 got a policy for fra1: %+v", ds.Policies)
	}
	beat("f2", "fra1", wire.PolicyStatus{ID: "copy-fail", Version: 2, State: "enforcing"})
	beat("f3", "fra1", wire.PolicyStatus{ID: "copy-fail", Version: 2, State: "unavailable", Detail: "bpf LSM not active"})
	list := decodeOK[[]wire.Policy](t, e.do("GET", wire.PathPolicies, tokRead, nil))
	want := map[string]int{"enforcing v2": 1, "unavailable v2": 1, "missing": 1}
	if len(list) != 1 || fmt.Sprint(list[0].Coverage["fra1"]) != fmt.Sprint(want) || list[0].Coverage["ams1"] != nil {
		t.Fatalf("coverage %+v, want fra1 %v", list[0].Coverage, want)
	}
	e.api.cfg.Metrics.fleet.setTTL(0) // every scrape counts afresh
	metrics := func() string { return string(e.do("GET", "/metrics", "", nil).body) }
	for _, want := range []string{`kroll_policy_hosts_targeted{policy="copy-fail"} 3`, `kroll_policy_hosts_in_force{policy="copy-fail"} 1`,
		`kroll_policy_pushed_timestamp_seconds{policy="copy-fail"} `} {
		if !strings.Contains(metrics(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	checkError(t, e.do("POST", wire.PathPolicyRetire, tokOperate, wire.PolicyRetireRequest{ID: "nope"}), http.StatusNotFound, wire.KindNotFound)
	r := decodeOK[wire.Policy](t, e.do("POST", wire.PathPolicyRetire, tokOperate, wire.PolicyRetireRequest{ID: "copy-fail", Reason: "fixed kernel everywhere"}))
	if !r.Retired {
		t.Fatalf("retire answered %+v", r)
	}
	if m := metrics(); strings.Contains(m, `kroll_policy_hosts_targeted{policy="copy-fail"}`) {
		t.Errorf("/metrics still counts the retired policy")
	}
	ds = beat("f1", "fra1")
	if len(ds.Policies) != 0 || len(ds.RetiredPolicies) != 1 || ds.RetiredPolicies[0] != "copy-fail" {
		t.Fatalf("after retire: %+v", ds)
	}
	// A newer version brings it back.
	mustOK(t, e.do("POST", wire.PathPolicies, tokOperate, signedPolicy(t, 1, 3, "")))
	if ds := beat("a1", "ams1"); len(ds.Policies) != 1 || ds.Policies[0].Version != 3 || len(ds.RetiredPolicies) != 0 {
		t.Fatalf("after v3 for all: %+v", ds)
	}
}
