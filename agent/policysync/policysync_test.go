package policysync

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
	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/gossip"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// fakeEnforcer stands in for the bpf-lsm side (proven in qemu by
// agent/mitigate): its installed map is what would be pinned in bpffs.
type fakeEnforcer struct {
	mu        sync.Mutex
	installed map[string]policy.Policy
}

func (f *fakeEnforcer) Available(context.Context) error { return nil }
func (f *fakeEnforcer) Install(_ context.Context, v policy.Verified) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.installed[v.Policy().ID] = v.Policy()
	return nil, nil
}
func (f *fakeEnforcer) Read(id string) (bpf.Mode, bpf.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.installed[id]
	if !ok {
		return 0, bpf.Counters{}, mitigate.ErrNotInstalled
	}
	if p.Mode == policy.ModeEnforce {
		return bpf.Enforce, bpf.Counters{}, nil
	}
	return bpf.Audit, bpf.Counters{}, nil
}
func (f *fakeEnforcer) Uninstall(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.installed, id)
	return nil
}

// Installed lists the pins (mitigate.InstalledLister).
func (f *fakeEnforcer) Installed() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.installed)), nil
}

// version returns the pinned version of id, 0 when not pinned.
func (f *fakeEnforcer) version(id string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.installed[id].Version
}

// newManager returns a real mitigate.Manager over enf with its state in
// dir, trusting keys, at the clock now.
func newManager(t testing.TB, dir string, enf *fakeEnforcer, now func() time.Time, keys ...ed25519.PublicKey) *mitigate.Manager {
	t.Helper()
	k, err := kversion.Parse("6.1.100")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		keys = []ed25519.PublicKey{policyKey().Public().(ed25519.PublicKey)}
	}
	m, err := mitigate.New(mitigate.Config{Trusted: keys, StateDir: dir, Kernel: &k, Enforcer: enf, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func policyKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{77}, ed25519.SeedSize))
}

// signed returns a signed policy document.
func signed(t testing.TB, id string, version int64, dcs string) wire.PolicyPushRequest {
	t.Helper()
	doc := fmt.Sprintf("id: %s\nversion: %d\nkind: userns-create\nmode: enforce\napplies_to:\n  fixed_in: [\"6.1.999\"]\n  datacenters: [%s]\nexpires: 2099-01-01T00:00:00Z\nissued: %s\n",
		id, version, dcs, time.Now().UTC().Format(time.RFC3339))
	p, err := policy.Decode([]byte(doc), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := policy.Sign(policyKey(), p)
	if err != nil {
		t.Fatal(err)
	}
	return wire.PolicyPushRequest{Document: doc, Signature: sig.Marshal()}
}

// host is one agent's policy side: pins, manager, syncer, pool.
type host struct {
	name, dc string
	mgr      *fakeEnforcer
	syncer   *Syncer
	pool     *gossip.Pool
}

func newHost(t testing.TB, name, dc string, key []byte) *host {
	t.Helper()
	enf := &fakeEnforcer{installed: map[string]policy.Policy{}}
	h := &host{name: name, dc: dc, mgr: enf}
	var err error
	h.syncer, err = New(context.Background(), Config{Datacenter: dc, Trusted: []ed25519.PublicKey{policyKey().Public().(ed25519.PublicKey)},
		Manager: newManager(t, t.TempDir(), enf, nil), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h.pool, err = gossip.New(gossip.Config{NodeName: name, Datacenter: dc, BindAddr: "127.0.0.1", Keyring: [][]byte{key},
		Accept: h.syncer.Accept, Deliver: h.syncer.Deliver, State: h.syncer.State, Logger: quiet,
		Meta: func() gossip.Meta {
			return gossip.Meta{HostID: name, Phase: wire.PhaseIdle, Policies: h.syncer.Versions()}
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.syncer.SetPool(h.pool)
	t.Cleanup(func() { h.pool.Shutdown() })
	return h
}

// TestPushReachesDatacentersWithoutCoordinator: a policy pushed to the
// coordinator reaches one agent per datacenter with its heartbeat; the
// coordinator then stops; gossip carries the policy to every agent of the
// targeted datacenters and to none of the others.
func TestPushReachesDatacentersWithoutCoordinator(t *testing.T) {
	const perDC = 10
	coord := testcoord.Start(t, testcoord.Options{PolicyKeys: []ed25519.PublicKey{policyKey().Public().(ed25519.PublicKey)}})
	ctx := t.Context()
	key := bytes.Repeat([]byte{5}, 32)
	dcs := []string{"fra", "ams", "sin"}
	hosts := map[string][]*host{}
	for _, dc := range dcs {
		one := 1
		if _, err := coord.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{SlotLimit: &one}); err != nil {
			t.Fatal(err)
		}
		for i := range perDC {
			h := newHost(t, fmt.Sprintf("%s-%02d", dc, i), dc, key)
			if i > 0 {
				if _, err := h.pool.Join([]string{hosts[dc][0].pool.LocalAddr()}); err != nil {
					t.Fatal(err)
				}
			}
			hosts[dc] = append(hosts[dc], h)
		}
	}
	if _, err := coord.Client.PushPolicy(ctx, signed(t, "cve-userns", 1, "fra, ams")); err != nil {
		t.Fatal(err)
	}
	agentClient, err := client.New(coord.URL, client.Options{Token: testcoord.AgentToken})
	if err != nil {
		t.Fatal(err)
	}
	// One agent per datacenter hears from the coordinator.
	for _, dc := range dcs {
		h := hosts[dc][perDC-1]
		ds, err := agentClient.Heartbeat(ctx, wire.Heartbeat{HostID: h.name, Datacenter: dc})
		if err != nil {
			t.Fatal(err)
		}
		h.syncer.Desired(ctx, ds)
	}
	coord.Stop()
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for {
		missing := 0
		for _, dc := range []string{"fra", "ams"} {
			for _, h := range hosts[dc] {
				if h.mgr.version("cve-userns") != 1 {
					missing++
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d agents of fra/ams lack the policy 60 s after the push", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("policy in force on all %d agents of fra and ams %s after the coordinator stopped", 2*perDC, time.Since(start).Round(10*time.Millisecond))
	// sin was not targeted: its agents refuse it even when a member
	// broadcasts it into their pool.
	rogue := signed(t, "cve-userns", 1, "fra, ams")
	_ = hosts["sin"][0].pool.Broadcast(gossip.Message{Kind: gossip.KindPolicy, ID: "cve-userns", Version: 1, Document: []byte(rogue.Document), Signature: rogue.Signature})
	time.Sleep(2 * time.Second)
	for _, h := range hosts["sin"] {
		if v := h.mgr.version("cve-userns"); v != 0 {
			t.Fatalf("%s (sin) applied a policy for fra/ams", h.name)
		}
	}
	// The gossip view carries the policy versions in the members' meta.
	for _, h := range hosts["fra"] {
		h.pool.UpdateMeta(ctx)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		seen := 0
		for _, m := range hosts["fra"][0].pool.View().Members {
			if m.Meta.Policies["cve-userns"] == 1 {
				seen++
			}
		}
		if seen == perDC {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fra-00 sees the policy in the meta of %d of %d members", seen, perDC)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCheckRefusals(t *testing.T) {
	h := newHost(t, "fra-x", "fra", bytes.Repeat([]byte{6}, 32))
	ctx := context.Background()
	v2 := signed(t, "p", 2, "")
	ds := &wire.DesiredState{Policies: []wire.SignedPolicy{{ID: "p", Version: 2, Document: v2.Document, Signature: v2.Signature}}}
	h.syncer.Desired(ctx, ds)
	if h.mgr.version("p") != 2 {
		t.Fatal("v2 from the coordinator not applied")
	}
	msg := func(r wire.PolicyPushRequest, id string, v int64) gossip.Message {
		return gossip.Message{Kind: gossip.KindPolicy, ID: id, Version: v, Document: []byte(r.Document), Signature: r.Signature}
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	v3 := signed(t, "p", 3, "")
	p3, _ := policy.Decode([]byte(v3.Document), time.Now())
	forgedSig, _ := policy.Sign(other, p3)
	for name, m := range map[string]gossip.Message{
		"older":       msg(signed(t, "p", 1, ""), "p", 1),
		"same":        msg(v2, "p", 2),
		"forged":      {Kind: gossip.KindPolicy, ID: "p", Version: 3, Document: []byte(v3.Document), Signature: forgedSig.Marshal()},
		"other dc":    msg(signed(t, "q", 1, "ams"), "q", 1),
		"mislabelled": msg(v3, "p", 4),
		"unknown":     {Kind: "release", ID: "p", Version: 9},
		"oversize":    {Kind: gossip.KindPolicy, ID: "p", Version: 5, Document: bytes.Repeat([]byte("x"), gossip.MaxMessageSize+1)},
	} {
		if err := h.syncer.Accept(m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := h.syncer.Accept(msg(v3, "p", 3)); err != nil {
		t.Fatalf("v3: %v", err)
	}
	// Retired by the operator: removed, and its version not taken back.
	h.syncer.Desired(ctx, &wire.DesiredState{RetiredPolicies: []string{"p"}, Retirements: []wire.PolicyRetirement{{ID: "p", Version: 2}}})
	if h.mgr.version("p") != 0 {
		t.Fatal("retired policy still in force")
	}
	if err := h.syncer.Accept(msg(v2, "p", 2)); err == nil {
		t.Fatal("a retired version came back through gossip")
	}
}

// TestRetirementsHold: a retirement notice carries the retired version;
// gossip (or the coordinator) offering that version or an older one is
// refused and nothing is pinned — also when the host never held the
// policy and after an agent restart while the coordinator is unreachable.
// A newer version, pushed after the retirement, is taken.
func TestRetirementsHold(t *testing.T) {
	for _, tc := range []struct {
		name string
		// held: the host applied this version from the coordinator
		// before the retirement (0: never held it).
		held    int64
		restart bool
		offer   int64
		want    int64 // pinned version after the offer (0: none)
	}{
		{"never held, same version", 0, false, 3, 0},
		{"never held, older version", 0, false, 2, 0},
		{"never held, restart, same version", 0, true, 3, 0},
		{"held, restart, same version", 3, true, 3, 0},
		{"held, no restart, same version", 3, false, 3, 0},
		{"never held, newer version", 0, false, 4, 4},
		{"held, restart, newer version", 3, true, 4, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			enf := &fakeEnforcer{installed: map[string]policy.Policy{}}
			dir := t.TempDir()
			start := func() *Syncer {
				s, err := New(ctx, Config{Datacenter: "fra", Trusted: []ed25519.PublicKey{policyKey().Public().(ed25519.PublicKey)},
					Manager: newManager(t, dir, enf, nil), Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			s := start()
			if tc.held > 0 {
				d := signed(t, "p", tc.held, "")
				s.Desired(ctx, &wire.DesiredState{Policies: []wire.SignedPolicy{{ID: "p", Version: tc.held, Document: d.Document, Signature: d.Signature}}})
				if enf.version("p") != tc.held {
					t.Fatalf("v%d from the coordinator not pinned", tc.held)
				}
			}
			s.Desired(ctx, &wire.DesiredState{RetiredPolicies: []string{"p"}, Retirements: []wire.PolicyRetirement{{ID: "p", Version: 3}}})
			if v := enf.version("p"); v != 0 {
				t.Fatalf("v%d still pinned after the retirement", v)
			}
			if tc.restart {
				s = start() // the coordinator is out of reach from now on
			}
			d := signed(t, "p", tc.offer, "")
			m := gossip.Message{Kind: gossip.KindPolicy, ID: "p", Version: tc.offer, Document: []byte(d.Document), Signature: d.Signature}
			acceptErr := s.Accept(m)
			s.Deliver(m)
			if got := enf.version("p"); got != tc.want {
				t.Fatalf("after gossip offered v%d: pinned v%d, want v%d (Accept: %v)", tc.offer, got, tc.want, acceptErr)
			}
			if (acceptErr == nil) != (tc.want != 0) {
				t.Fatalf("Accept(v%d) = %v", tc.offer, acceptErr)
			}
			if tc.want == 0 {
				if _, ok := s.Versions()["p"]; ok {
					t.Fatalf("gossip meta advertises a retired policy: %v", s.Versions())
				}
			}
		})
	}
}
