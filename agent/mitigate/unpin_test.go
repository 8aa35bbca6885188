package mitigate_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)     { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

// managerAt returns a Manager over enf with state in dir, trusting keys,
// on a 6.1.100 kernel at clock c: a fresh one is an agent restart.
func managerAt(t *testing.T, dir string, enf mitigate.Enforcer, c *clock, keys ...ed25519.PrivateKey) *mitigate.Manager {
	t.Helper()
	k, err := kversion.Parse("6.1.100")
	if err != nil {
		t.Fatal(err)
	}
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public().(ed25519.PublicKey))
	}
	m, err := mitigate.New(mitigate.Config{Trusted: pubs, StateDir: dir, Kernel: &k, Now: c.now, Enforcer: enf})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReconcileUnpins: a policy pinned while it was valid is unpinned by
// the next reconcile once it expired, its signing key is no longer trusted
// or the operator retired it, and what is reported is the pins' state:
// in force only while pinned.
func TestReconcileUnpins(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change makes the pinned policy undesired; it returns the
		// manager to reconcile with (a new one is an agent restart).
		change     func(t *testing.T, m *mitigate.Manager, dir string, enf mitigate.Enforcer, c *clock) *mitigate.Manager
		wantState  wire.PolicyState
		wantDetail string
		// selfReconciling: change itself reconciles (no stale pins to see).
		selfReconciling bool
		// restartKey is the key trusted after a restart.
		restartKey byte
	}{
		{"expired", func(t *testing.T, m *mitigate.Manager, _ string, _ mitigate.Enforcer, c *clock) *mitigate.Manager {
			c.add(2 * time.Hour)
			return m
		}, wire.PolicyRetired, "expired", false, 1},
		{"key no longer trusted (restart with new keys)", func(t *testing.T, _ *mitigate.Manager, dir string, enf mitigate.Enforcer, c *clock) *mitigate.Manager {
			return managerAt(t, dir, enf, c, key(2))
		}, wire.PolicyRejected, "no longer verifies", false, 2},
		{"retired by the operator", func(t *testing.T, m *mitigate.Manager, _ string, _ mitigate.Enforcer, _ *clock) *mitigate.Manager {
			if err := m.Retire(t.Context(), "copy-fail", 3); err != nil {
				t.Fatal(err)
			}
			return m
		}, wire.PolicyRetired, "retired by the operator", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{installed: map[string]policy.Policy{}}
			enf := listingFake{f}
			c := &clock{t: now}
			dir := t.TempDir()
			m := managerAt(t, dir, enf, c, key(1))
			p := copyFail(3, policy.ModeEnforce)
			p.Expires = now.Add(time.Hour)
			sts, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), p)})
			if err != nil || len(sts) != 1 || sts[0].State != wire.PolicyEnforcing {
				t.Fatalf("Apply = %+v, %v; want enforcing", sts, err)
			}
			m = tc.change(t, m, dir, enf, c)
			// Before anything reconciles, the report is the truth: the
			// pins still enforce, and say they are due for removal.
			if !tc.selfReconciling {
				ls, err := m.List(t.Context())
				if err != nil || len(ls) != 1 || ls[0].State != wire.PolicyEnforcing || !strings.Contains(ls[0].Detail, tc.wantDetail) {
					t.Fatalf("List before reconcile = %+v, %v; want enforcing (still pinned) due for removal", ls, err)
				}
			}
			sts, err = m.Reconcile(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, pinned := f.installed["copy-fail"]; pinned {
				t.Fatalf("%s policy still pinned after reconcile", tc.name)
			}
			if len(sts) != 1 || sts[0].State != tc.wantState || !strings.Contains(sts[0].Detail, tc.wantDetail) {
				t.Fatalf("Reconcile = %+v; want %s (%s)", sts, tc.wantState, tc.wantDetail)
			}
			ws := mitigate.WireStatus(sts)
			if len(ws) != 1 || ws[0].State.InForce() {
				t.Fatalf("heartbeat reports %+v, want not in force", ws)
			}
			// An agent restart does not bring it back.
			m2 := managerAt(t, dir, enf, c, key(tc.restartKey))
			if _, err := m2.Restore(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, pinned := f.installed["copy-fail"]; pinned {
				t.Fatalf("%s policy pinned again after a restart", tc.name)
			}
		})
	}
}

// TestRunUnpinsAtExpiry: the timer fires at the nearest expiry and the
// reconcile it runs unpins the expired policy, with no heartbeat or
// gossip message coming by.
func TestRunUnpinsAtExpiry(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}}
	c := &clock{t: now}
	m := managerAt(t, t.TempDir(), listingFake{f}, c, key(1))
	soon, later := copyFail(1, policy.ModeEnforce), copyFail(1, policy.ModeAudit)
	soon.ID, soon.Expires = "soon", now.Add(10*time.Minute)
	later.ID, later.Expires = "later", now.Add(time.Hour)
	if _, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), soon), signed(t, key(1), later)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	waits := make(chan time.Duration)
	fire := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, quietLog(), time.Hour*24, func(d time.Duration) <-chan time.Time {
			select {
			case waits <- d:
			case <-ctx.Done():
			}
			return fire
		})
	}()
	if d := <-waits; d < 10*time.Minute || d > 10*time.Minute+time.Second {
		t.Fatalf("Run waits %v, want the 10 min until the nearest expiry", d)
	}
	c.add(10 * time.Minute) // the timer fires at the expiry
	fire <- c.now()
	if d := <-waits; d < 50*time.Minute || d > 50*time.Minute+time.Second {
		t.Fatalf("Run then waits %v, want the 50 min until the next expiry", d)
	}
	cancel()
	<-done
	if _, pinned := f.installed["soon"]; pinned {
		t.Fatal("expired policy still pinned after the timer fired")
	}
	if _, pinned := f.installed["later"]; !pinned {
		t.Fatal("unexpired policy unpinned")
	}
}
