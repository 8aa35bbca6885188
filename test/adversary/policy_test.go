package adversary

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/agent/policysync"
	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/gossip"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// policyPins is a fake bpffs: what would be pinned.
type policyPins struct {
	mu  sync.Mutex
	pin map[string]policy.Policy
}

func (f *policyPins) Available(context.Context) error { return nil }
func (f *policyPins) Install(_ context.Context, v policy.Verified) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pin[v.Policy().ID] = v.Policy()
	return nil, nil
}
func (f *policyPins) Read(id string) (bpf.Mode, bpf.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pin[id]; !ok {
		return 0, bpf.Counters{}, mitigate.ErrNotInstalled
	}
	return bpf.Enforce, bpf.Counters{}, nil
}
func (f *policyPins) Uninstall(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pin, id)
	return nil
}
func (f *policyPins) Installed() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.pin)), nil
}

// policySigned returns a policy document signed with priv.
func policySigned(t *testing.T, priv ed25519.PrivateKey, id string, version int64) wire.PolicyPushRequest {
	t.Helper()
	doc := fmt.Sprintf("id: %s\nversion: %d\nkind: userns-create\nmode: enforce\napplies_to:\n  fixed_in: [\"6.1.999\"]\nexpires: 2099-01-01T00:00:00Z\n", id, version)
	p, err := policy.Decode([]byte(doc), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := policy.Sign(priv, p)
	if err != nil {
		t.Fatal(err)
	}
	return wire.PolicyPushRequest{Document: doc, Signature: sig.Marshal()}
}

// TestPolicyRetirementBeatsStaleGossip: the operator retires policy v3
// at a real coordinator; a host that never held the policy hears of the
// retirement with its heartbeat, restarts, and a peer that missed the
// retirement gossips v3 while the coordinator is down. The host must not
// pin it, and reports it retired. A v4 pushed later is taken.
func TestPolicyRetirementBeatsStaleGossip(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	coord := testcoord.Start(t, testcoord.Options{PolicyKeys: []ed25519.PublicKey{pub}})
	ctx := t.Context()
	if _, err := coord.Client.SetDatacenter(ctx, "fra", wire.DatacenterUpdate{SlotLimit: new(1)}); err != nil {
		t.Fatal(err)
	}
	v3 := policySigned(t, priv, "cve-x", 3)
	if _, err := coord.Client.PushPolicy(ctx, v3); err != nil {
		t.Fatal(err)
	}
	if _, err := coord.Client.RetirePolicy(ctx, wire.PolicyRetireRequest{ID: "cve-x", Reason: "fixed kernel everywhere"}); err != nil {
		t.Fatal(err)
	}
	agentClient, err := client.New(coord.URL, client.Options{Token: testcoord.AgentToken})
	if err != nil {
		t.Fatal(err)
	}
	pins := &policyPins{pin: map[string]policy.Policy{}}
	dir := t.TempDir()
	k, err := kversion.Parse("6.1.100")
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func() (*mitigate.Manager, *policysync.Syncer) {
		m, err := mitigate.New(mitigate.Config{Trusted: []ed25519.PublicKey{pub}, StateDir: dir, Kernel: &k, Enforcer: pins})
		if err != nil {
			t.Fatal(err)
		}
		s, err := policysync.New(ctx, policysync.Config{Datacenter: "fra", Trusted: []ed25519.PublicKey{pub}, Manager: m, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return m, s
	}
	_, s := start()
	ds, err := agentClient.Heartbeat(ctx, wire.Heartbeat{HostID: "fra-01", Datacenter: "fra"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Retirements) != 1 || ds.Retirements[0] != (wire.PolicyRetirement{ID: "cve-x", Version: 3}) {
		t.Fatalf("desired state retirements %+v, want cve-x at version 3", ds.Retirements)
	}
	s.Desired(ctx, ds)
	coord.Stop()
	m, s := start() // agent restart, coordinator unreachable

	for _, tc := range []struct {
		name    string
		version int64
		pinned  bool
	}{
		{"stale v3 from a peer", 3, false},
		{"older v2 from a peer", 2, false},
		{"newer v4 pushed later", 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := policySigned(t, priv, "cve-x", tc.version)
			s.Deliver(gossip.Message{Kind: gossip.KindPolicy, ID: "cve-x", Version: tc.version, Document: []byte(d.Document), Signature: d.Signature})
			sts, err := m.Reconcile(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ws := mitigate.WireStatus(sts)
			pins.mu.Lock()
			got, pinned := pins.pin["cve-x"]
			pins.mu.Unlock()
			if pinned != tc.pinned || pinned && got.Version != tc.version {
				t.Fatalf("pinned %v (%+v), want %v; reported %+v", pinned, got, tc.pinned, ws)
			}
			want := wire.PolicyRetired
			if tc.pinned {
				want = wire.PolicyEnforcing
			}
			if len(ws) != 1 || ws[0].State != want {
				t.Fatalf("heartbeat would report %+v, want %s", ws, want)
			}
		})
	}
}
