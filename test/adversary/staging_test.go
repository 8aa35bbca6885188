package adversary

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/clock"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Item 2 of issue 12: the staging gate failed open. A bad kernel in
// staging (every staging host unhealthy, within the default wave budget),
// a host failing during the soak (even with budget 0) and a kernel that
// never boots (the staging hosts go silent mid-reboot) each let the
// canary start. These tests drive a real 3-node coordinator quorum over
// HTTP, with agents simulated through the agent API, and check that the
// canary never gets the release, that the rollout fails with the reason
// and that the release is rejected for its line.

const (
	stagingLine      = "6.1"
	stagingOldKernel = "6.1.0-47-amd64"
	stagingNewKernel = "6.1.0-56-amd64"
	stagingRelease   = "6.1.192-kroll.1"
)

// stagingSignedRelease returns a release manifest signed by a fresh key,
// and the key.
func stagingSignedRelease(t *testing.T) (ed25519.PublicKey, wire.ReleaseAddRequest) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
	m := release.Manifest{
		ID: stagingRelease, Line: stagingLine, KernelVersion: stagingNewKernel, UpstreamVersion: "6.1.192", Kind: release.KindDeb,
		Artifacts: []release.Artifact{{Name: "linux-image.deb", URL: "http://127.0.0.1:1/k.deb", Size: 10,
			SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	}
	canon, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := release.SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	return priv.Public().(ed25519.PublicKey), wire.ReleaseAddRequest{Manifest: canon, Signature: sig.Marshal()}
}

// stagingAgent is a simulated agent: it heartbeats its kernel and phase
// every 200 ms until it is made silent, and remembers whether a heartbeat
// answer ever named the release.
type stagingAgent struct {
	id, dc string
	c      *client.Client

	mu      sync.Mutex
	kernel  string
	phase   string
	silent  bool
	offered bool
}

func (a *stagingAgent) set(kernel, phase string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kernel, a.phase = kernel, phase
}

func (a *stagingAgent) hush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.silent = true
}

func (a *stagingAgent) wasOffered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.offered
}

// beat sends one heartbeat (unless silent).
func (a *stagingAgent) beat(ctx context.Context) error {
	a.mu.Lock()
	if a.silent {
		a.mu.Unlock()
		return nil
	}
	hb := wire.Heartbeat{HostID: a.id, Datacenter: a.dc, KernelLine: stagingLine, Kernel: a.kernel, Phase: a.phase}
	a.mu.Unlock()
	ds, err := a.c.Heartbeat(ctx, hb)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		return err
	}
	if ds.Release != nil && ds.Release.ID == stagingRelease {
		a.offered = true
	}
	return nil
}

func (a *stagingAgent) run(ctx context.Context) {
	for {
		_ = a.beat(ctx) // a failed beat is a missed one; the next may succeed
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stagingEnv is a 3-node quorum with the datacenters stg1 (staging, 2
// hosts), e1 (the canary, 2 hosts) and e2 (edge, 1 host), every host on
// the old kernel and heartbeating, and the release added.
type stagingEnv struct {
	nodes  []*testcoord.Coordinator
	agents map[string]*stagingAgent
}

func stagingStart(t *testing.T, ctx context.Context) *stagingEnv {
	t.Helper()
	pub, req := stagingSignedRelease(t)
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{
		ReleaseKeys: []ed25519.PublicKey{pub},
		Timing:      fsm.Timing{Lease: 2 * time.Second, RebootDeadline: 3 * time.Second, AliveWithin: 5 * time.Second},
	})
	op := nodes[0].Client
	staging, edge := fsm.TierStaging, fsm.TierEdge
	for _, dc := range []struct {
		name string
		tier *string
	}{{"stg1", &staging}, {"e1", &edge}, {"e2", &edge}} {
		if err := stagingCall(func() error {
			_, err := op.SetDatacenter(ctx, dc.name, wire.DatacenterUpdate{SlotLimit: stagingPtr(2), Tier: dc.tier})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stagingCall(func() error { _, err := op.AddRelease(ctx, req); return err }); err != nil {
		t.Fatal(err)
	}
	e := &stagingEnv{nodes: nodes, agents: map[string]*stagingAgent{}}
	i := 0
	for _, h := range []struct{ id, dc string }{{"stg1-a", "stg1"}, {"stg1-b", "stg1"}, {"e1-a", "e1"}, {"e1-b", "e1"}, {"e2-a", "e2"}} {
		// Agents talk to different nodes: followers forward.
		c, err := client.New(nodes[i%len(nodes)].URL, client.Options{Token: testcoord.AgentToken})
		if err != nil {
			t.Fatal(err)
		}
		i++
		a := &stagingAgent{id: h.id, dc: h.dc, c: c, kernel: stagingOldKernel, phase: wire.PhaseIdle}
		if err := stagingCall(func() error { return a.beat(ctx) }); err != nil {
			t.Fatal(err)
		}
		e.agents[h.id] = a
		go a.run(ctx)
	}
	return e
}

func stagingPtr[T any](v T) *T { return &v }

// stagingCall runs call, again while the quorum has no leader (an election
// under load answers 503 no_leader), for up to 20 s; it returns the last
// error. The calls retried are idempotent, or handle a retry themselves.
func stagingCall(call func() error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := call()
		var apiErr *client.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.Kind != wire.KindNoLeader || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rollout reads the rollout from a follower-or-leader node chosen by n.
func (e *stagingEnv) rollout(ctx context.Context, t *testing.T, n int) *wire.Rollout {
	t.Helper()
	r, err := e.nodes[n%len(e.nodes)].Client.Rollout(ctx, stagingRelease)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stagingWaitFor polls cond every 100 ms until it holds or the deadline passes.
func stagingWaitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stagingHealthy makes the staging agents report healthy on the new kernel.
func (e *stagingEnv) stagingHealthy(ctx context.Context, t *testing.T) {
	t.Helper()
	for _, id := range []string{"stg1-a", "stg1-b"} {
		a := e.agents[id]
		a.set(stagingNewKernel, wire.PhaseIdle)
		if err := stagingCall(func() error {
			return a.c.ReportHealth(ctx, wire.HealthReport{HostID: id, Datacenter: "stg1", Healthy: true, Kernel: stagingNewKernel})
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// unhealthy makes agent id report unhealthy on the new kernel and roll
// back (phase failed).
func (e *stagingEnv) unhealthy(ctx context.Context, t *testing.T, id string) {
	t.Helper()
	a := e.agents[id]
	a.set(stagingNewKernel, wire.PhaseUnhealthy)
	if err := stagingCall(func() error {
		return a.c.ReportHealth(ctx, wire.HealthReport{HostID: id, Datacenter: a.dc, Healthy: false, Kernel: stagingNewKernel, Detail: "nginx failed to start"})
	}); err != nil {
		t.Fatal(err)
	}
	a.set(stagingOldKernel, wire.PhaseFailed) // rolled back, out of service
}

func TestStagingGateFailsClosed(t *testing.T) {
	tests := []struct {
		name   string
		budget *int
		soak   time.Duration
		// act plays the staging hosts' part once the rollout started.
		act    func(ctx context.Context, t *testing.T, e *stagingEnv)
		reason string
	}{
		{
			name: "both staging hosts unhealthy, within the default budget of 2",
			soak: time.Second,
			act: func(ctx context.Context, t *testing.T, e *stagingEnv) {
				e.unhealthy(ctx, t, "stg1-a")
				e.unhealthy(ctx, t, "stg1-b")
			},
			reason: "unhealthy",
		},
		{
			name:   "a staging host turns unhealthy during the soak, budget 0",
			budget: stagingPtr(0),
			soak:   6 * time.Second,
			act: func(ctx context.Context, t *testing.T, e *stagingEnv) {
				e.stagingHealthy(ctx, t)
				stagingWaitFor(t, "the staging wave healthy (soaking)", 10*time.Second, func() bool {
					return !e.rollout(ctx, t, 1).Waves[0].Completed.IsZero()
				})
				e.unhealthy(ctx, t, "stg1-b")
			},
			reason: "stg1-b",
		},
		{
			name: "the kernel never boots: staging hosts go silent mid-reboot",
			soak: time.Second,
			act: func(ctx context.Context, t *testing.T, e *stagingEnv) {
				for _, id := range []string{"stg1-a", "stg1-b"} {
					a := e.agents[id]
					a.set(stagingOldKernel, wire.PhaseStaged)
					if err := stagingCall(func() error { return a.beat(ctx) }); err != nil {
						t.Fatal(err)
					}
					if err := stagingCall(func() error {
						_, err := a.c.AcquireSlot(ctx, wire.SlotRequest{HostID: id, Datacenter: "stg1"})
						return err
					}); err != nil {
						t.Fatalf("%s: acquire: %v", id, err)
					}
					a.set(stagingOldKernel, wire.PhaseRebooting)
					if err := stagingCall(func() error { return a.beat(ctx) }); err != nil {
						t.Fatal(err)
					}
					a.hush()
				}
			},
			reason: "lost mid-reboot",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			e := stagingStart(t, ctx)
			op := e.nodes[1].Client // through a follower or the leader
			var r *wire.Rollout
			tries := 0
			err := stagingCall(func() error {
				var err error
				r, err = op.StartRollout(ctx, wire.RolloutStartRequest{Release: stagingRelease, Canary: []string{"e1"},
					SoakSeconds: int64(tt.soak / time.Second), Budget: tt.budget})
				var apiErr *client.APIError
				if tries++; tries > 1 && errors.As(err, &apiErr) && apiErr.Kind == wire.KindConflict {
					r, err = op.Rollout(ctx, stagingRelease) // the first try committed after all
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Waves) < 2 || r.Waves[0].Name != fsm.WaveStaging || r.Waves[1].Name != fsm.WaveCanary {
				t.Fatalf("plan %+v", r.Waves)
			}
			stagingWaitFor(t, "the staging hosts offered the release", 5*time.Second, func() bool {
				return e.agents["stg1-a"].wasOffered() && e.agents["stg1-b"].wasOffered()
			})
			tt.act(ctx, t, e)
			stagingWaitFor(t, "the rollout to fail (or the canary to be offered the release)", 20*time.Second, func() bool {
				return e.rollout(ctx, t, 2).State == fsm.RolloutFailed || e.agents["e1-a"].wasOffered()
			})
			// Give a fail-open coordinator every chance: past the soak
			// and several ticks.
			time.Sleep(tt.soak + 3*time.Second)
			got := e.rollout(ctx, t, 0)
			if got.State != fsm.RolloutFailed || !strings.Contains(got.PauseReason, tt.reason) || !strings.Contains(got.PauseReason, "staging") {
				t.Errorf("rollout %s (%q), want failed in staging (%q)", got.State, got.PauseReason, tt.reason)
			}
			for _, w := range got.Waves[1:] {
				if !w.Started.IsZero() {
					t.Errorf("wave %s started after staging failed", w.Name)
				}
			}
			for _, id := range []string{"e1-a", "e1-b", "e2-a"} {
				if e.agents[id].wasOffered() {
					t.Errorf("%s was offered the release of a failed staging wave", id)
				}
			}
			// The release is rejected for its line, visible in the API.
			rels, err := e.nodes[0].Client.Releases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rels) != 1 || !strings.Contains(rels[0].Rejected[stagingLine], tt.reason) {
				t.Fatalf("releases %+v: want %s rejected for line %s", rels, stagingRelease, stagingLine)
			}
			// A new rollout of it needs force and a reason.
			err = stagingCall(func() error {
				_, err := op.StartRollout(ctx, wire.RolloutStartRequest{ID: "again", Release: stagingRelease})
				return err
			})
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
				t.Fatalf("restarting a rejected release: %v, want 409", err)
			}
			err = stagingCall(func() error {
				_, err := op.StartRollout(ctx, wire.RolloutStartRequest{ID: "again", Release: stagingRelease, Force: true})
				return err
			})
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
				t.Fatalf("forcing without a reason: %v, want 400", err)
			}
			if err := stagingCall(func() error {
				_, err := op.StartRollout(ctx, wire.RolloutStartRequest{ID: "again", Release: stagingRelease, Force: true, Reason: "staging hosts replaced"})
				return err
			}); err != nil {
				t.Fatalf("forced with a reason: %v", err)
			}
		})
	}
}

// gatesSpeak lets a hushed agent heartbeat again.
func gatesSpeak(a *stagingAgent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.silent = false
}

// TestStagingGateSurvivesCoordinatorOutage (review item 3 of issue 12): a
// coordinator outage longer than alive_within must not fail a soaking
// staging wave. The leader of a 3-node quorum dies while the staging
// hosts cannot reach any coordinator; the survivors' clocks are 20 minutes
// ahead (a long outage: the new leader's stamps jump 20 minutes), so at
// the new leader's first tick every staging host looks silent for 20
// minutes.
// Within the grace after the term change that fails nothing; once the
// hosts heartbeat again the wave soaks on. Silence after the grace still
// fails it.
func TestStagingGateSurvivesCoordinatorOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const aliveWithin = 8 * time.Second
	pub, req := stagingSignedRelease(t)
	clocks := map[string]clock.Clock{}
	stepped := map[string]*clock.Stepped{}
	for _, id := range []string{"c1", "c2", "c3"} {
		stepped[id] = clock.NewStepped()
		clocks[id] = stepped[id]
	}
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{
		ReleaseKeys: []ed25519.PublicKey{pub}, Clocks: clocks,
		Timing: fsm.Timing{Lease: 2 * time.Second, RebootDeadline: 30 * time.Second, AliveWithin: aliveWithin},
	})
	var old, survivor *testcoord.Coordinator
	stagingWaitFor(t, "a leader", 20*time.Second, func() bool {
		for _, n := range nodes {
			if n.Store.IsLeader() {
				old = n
			}
		}
		return old != nil
	})
	for _, n := range nodes {
		if n != old {
			survivor = n
			break
		}
	}
	op := survivor.Client
	staging, edge := fsm.TierStaging, fsm.TierEdge
	for _, dc := range []struct {
		name string
		tier *string
	}{{"stg1", &staging}, {"e1", &edge}} {
		if err := stagingCall(func() error {
			_, err := op.SetDatacenter(ctx, dc.name, wire.DatacenterUpdate{SlotLimit: stagingPtr(2), Tier: dc.tier})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stagingCall(func() error { _, err := op.AddRelease(ctx, req); return err }); err != nil {
		t.Fatal(err)
	}
	agents := map[string]*stagingAgent{}
	for _, h := range []struct{ id, dc string }{{"stg1-a", "stg1"}, {"stg1-b", "stg1"}, {"e1-a", "e1"}} {
		c, err := client.New(survivor.URL, client.Options{Token: testcoord.AgentToken})
		if err != nil {
			t.Fatal(err)
		}
		a := &stagingAgent{id: h.id, dc: h.dc, c: c, kernel: stagingOldKernel, phase: wire.PhaseIdle}
		if err := stagingCall(func() error { return a.beat(ctx) }); err != nil {
			t.Fatal(err)
		}
		agents[h.id] = a
		go a.run(ctx)
	}
	if err := stagingCall(func() error {
		_, err := op.StartRollout(ctx, wire.RolloutStartRequest{Release: stagingRelease, SoakSeconds: 3600})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rollout := func() *wire.Rollout {
		r, err := survivor.Client.Rollout(ctx, stagingRelease)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, id := range []string{"stg1-a", "stg1-b"} {
		agents[id].set(stagingNewKernel, wire.PhaseIdle)
	}
	stagingWaitFor(t, "the staging wave healthy (soaking)", 15*time.Second, func() bool {
		return !rollout().Waves[0].Completed.IsZero()
	})

	// The outage: no host gets through, the leader dies, and the
	// survivors' clocks say 20 minutes went by (of the hour's soak).
	for _, a := range agents {
		a.hush()
	}
	for id, c := range stepped {
		if id != old.Store.NodeID() {
			c.Step(20 * time.Minute)
		}
	}
	old.Stop()
	var leader *testcoord.Coordinator
	stagingWaitFor(t, "a new leader", 20*time.Second, func() bool {
		for _, n := range nodes {
			if n != old && n.Store.IsLeader() {
				leader = n
			}
		}
		return leader != nil
	})
	// The new leader's first ticks find every staging host silent for 20
	// minutes.
	time.Sleep(2 * time.Second)
	for _, a := range agents {
		gatesSpeak(a)
	}
	deadline := time.Now().Add(2 * aliveWithin)
	for time.Now().Before(deadline) {
		if r := rollout(); r.State != "running" || !r.Waves[0].Passed.IsZero() {
			t.Fatalf("after the outage: rollout %s (%q), staging passed %v; want running, soaking", r.State, r.PauseReason, r.Waves[0].Passed)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Past the grace, silence fails the wave again.
	agents["stg1-b"].hush()
	stagingWaitFor(t, "the rollout failed by the silent stg1-b", 4*aliveWithin, func() bool {
		r := rollout()
		return r.State == "failed" && strings.Contains(r.PauseReason, "stg1-b")
	})
	if agents["e1-a"].wasOffered() {
		t.Fatal("the canary was offered the release")
	}
}
