package mitigate_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// listingFake is a fake that also lists its installed (pinned) policies.
type listingFake struct{ *fake }

func (f listingFake) Installed() ([]string, error) {
	var ids []string
	for id := range f.installed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

func TestReconcile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lists    bool
		wantPins []string
	}{
		// With a lister, pins without state go too.
		{"lister", true, []string{"a", "b", "c"}},
		// Without, only policies with stored state are known.
		{"state only", false, []string{"a", "b", "c", "orphan"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{installed: map[string]policy.Policy{}}
			var enf mitigate.Enforcer = f
			if tc.lists {
				enf = listingFake{f}
			}
			m, dir := newManager(t, "6.1.100", enf)
			var docs []mitigate.SignedPolicy
			for _, id := range []string{"a", "b", "c"} {
				p := copyFail(1, policy.ModeEnforce)
				p.ID = id
				docs = append(docs, signed(t, key(1), p))
			}
			if _, err := m.Apply(context.Background(), docs); err != nil {
				t.Fatal(err)
			}
			f.installed["orphan"] = copyFail(1, policy.ModeAudit) // pinned, no state
			installs := f.installs

			for range 2 { // idempotent
				if _, err := m.Reconcile(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			var pins []string
			for id := range f.installed {
				pins = append(pins, id)
			}
			sort.Strings(pins)
			if !slices.Equal(pins, tc.wantPins) {
				t.Errorf("installed after reconcile = %v, want %v", pins, tc.wantPins)
			}
			if got := stateFiles(t, dir); !slices.Equal(got, []string{"a.json", "b.json", "c.json"}) {
				t.Errorf("state after reconcile = %v", got)
			}
			if f.installs != installs {
				t.Errorf("reconcile installed something")
			}
		})
	}
}

// TestRestoreAfterReboot: after a reboot no pins remain; Restore re-applies
// every stored policy and WireStatus reports them for heartbeats.
func TestRestoreAfterReboot(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}}
	m, _ := newManager(t, "6.1.100", f)
	enforce, audit := copyFail(1, policy.ModeEnforce), copyFail(2, policy.ModeAudit)
	audit.ID = "audited"
	if _, err := m.Apply(context.Background(), []mitigate.SignedPolicy{signed(t, key(1), enforce), signed(t, key(1), audit)}); err != nil {
		t.Fatal(err)
	}
	f.installed = map[string]policy.Policy{} // the reboot
	sts, err := m.Restore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.installed) != 2 {
		t.Fatalf("restored %d policies, want 2", len(f.installed))
	}
	got := mitigate.WireStatus(sts)
	slices.SortFunc(got, func(a, b wire.PolicyStatus) int { return strings.Compare(a.ID, b.ID) })
	want := []wire.PolicyStatus{{ID: "audited", Version: 2, State: "auditing"}, {ID: enforce.ID, Version: 1, State: "enforcing"}}
	if !slices.Equal(got, want) {
		t.Fatalf("wire status %+v, want %+v", got, want)
	}
	// Unavailable bpf-lsm: stored policies are reported unavailable.
	f.available = errors.New("bpf LSM not active")
	f.installed = map[string]policy.Policy{}
	sts, err = m.Restore(context.Background())
	if err == nil {
		t.Fatal("Restore without bpf-lsm succeeded")
	}
	for _, ps := range mitigate.WireStatus(sts) {
		if ps.State != "unavailable" || !strings.Contains(ps.Detail, "bpf LSM not active") {
			t.Errorf("status %+v, want unavailable with the reason", ps)
		}
	}
}
