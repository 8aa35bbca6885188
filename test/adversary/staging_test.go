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
	// beats and failed count the heartbeats sent and those that failed.
	beats, failed int
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
	a.beats++
	if err != nil {
		a.failed++
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

// stagingBeats returns how many heartbeats a sent and how many failed.
func (a *stagingAgent) stagingBeats() (beats, failed int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.beats, a.failed
}

// stagingEvents returns the events of type typ the coordinator behind c
// keeps.
func stagingEvents(ctx context.Context, t *testing.T, c *client.Client, typ string) []wire.Event {
	t.Helper()
	var out []wire.Event
	var since uint64
	for {
		evs, err := c.Events(ctx, since, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Type == typ {
				out = append(out, e)
			}
			since = e.ID
		}
		if len(evs) < 1000 {
			return out
		}
	}
}

// TestStagingGateSurvivesCoordinatorOutage (review item 3 of issue 12): a
// coordinator outage longer than alive_within must not fail a soaking
// staging wave, nor let it pass on liveness nobody checked. Two of the
// three nodes stop (no quorum) for longer than alive_within while the
// agents keep heartbeating the survivor, which answers 503 (no leader);
// the soak ends during the outage. Then one node comes back: a new leader,
// and the agents return a few seconds later (their retry backoff). Within
// the new leader's liveness grace no host is marked silent and the wave
// neither fails nor passes (every host is unheard this term); after the
// grace, with every host heard, it passes. A host that then really stays
// silent is marked silent and fails the rollout.
func TestStagingGateSurvivesCoordinatorOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const (
		aliveWithin = 8 * time.Second
		// grace is the leader's liveness grace: max(alive_within, three
		// heartbeat intervals of 2 s).
		grace = aliveWithin
		soak  = 6 * time.Second
		// outage is how long no quorum runs: longer than alive_within
		// and than the soak.
		outage = aliveWithin + 4*time.Second
		// backoff is how long the agents take to get through once the
		// quorum is back: well within the grace.
		backoff = 3 * time.Second
	)
	pub, req := stagingSignedRelease(t)
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{
		ReleaseKeys: []ed25519.PublicKey{pub},
		Timing:      fsm.Timing{Lease: 2 * time.Second, RebootDeadline: 30 * time.Second, AliveWithin: aliveWithin},
	})
	var old *testcoord.Coordinator
	stagingWaitFor(t, "a leader", 20*time.Second, func() bool {
		for _, n := range nodes {
			if n.Store.IsLeader() {
				old = n
			}
		}
		return old != nil
	})
	// survivor is a follower that keeps running; the leader and the
	// other follower stop.
	var survivor, other *testcoord.Coordinator
	for _, n := range nodes {
		switch {
		case n == old:
		case survivor == nil:
			survivor = n
		default:
			other = n
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
		c, err := client.New(survivor.URL, client.Options{Token: testcoord.AgentToken, Timeout: time.Second})
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
		_, err := op.StartRollout(ctx, wire.RolloutStartRequest{Release: stagingRelease, SoakSeconds: int64(soak / time.Second)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rollout := func() *wire.Rollout {
		var r *wire.Rollout
		if err := stagingCall(func() error {
			var err error
			r, err = survivor.Client.Rollout(ctx, stagingRelease)
			return err
		}); err != nil {
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

	// The outage: no quorum for longer than alive_within (and the soak).
	// The agents keep heartbeating the survivor, which has no leader: it
	// must not answer them from its state.
	old.Stop()
	other.Stop()
	stagingWaitFor(t, "the survivor to lose its leader", 10*time.Second, func() bool {
		id, _ := survivor.Store.Leader()
		return id == ""
	})
	before := map[string][2]int{}
	for id, a := range agents {
		b, f := a.stagingBeats()
		before[id] = [2]int{b, f}
	}
	time.Sleep(outage)
	for id, a := range agents {
		b, f := a.stagingBeats()
		sent, failed := b-before[id][0], f-before[id][1]
		if sent < 5 || failed != sent {
			t.Fatalf("%s during the outage: %d of %d heartbeats answered, want all %d refused (no leader)", id, sent-failed, sent, sent)
		}
	}
	if r := rollout(); r.State != fsm.RolloutRunning || !r.Waves[0].Passed.IsZero() {
		t.Fatalf("during the outage: rollout %s (%q), staging passed %v", r.State, r.PauseReason, r.Waves[0].Passed)
	}

	// The quorum comes back (the other follower restarts on its data);
	// the agents take a few seconds to get through.
	for _, a := range agents {
		a.hush()
	}
	other.Restart(t)
	var leader *testcoord.Coordinator
	stagingWaitFor(t, "a new leader", 20*time.Second, func() bool {
		for _, n := range []*testcoord.Coordinator{survivor, other} {
			if n.Store.IsLeader() {
				leader = n
			}
		}
		return leader != nil
	})
	back := time.Now()
	time.Sleep(backoff)
	for _, a := range agents {
		gatesSpeak(a)
	}
	// Within the grace (a margin short of it): no host marked silent, the
	// wave neither fails nor passes, though its soak is over.
	for time.Since(back) < grace-time.Second {
		if r := rollout(); r.State != fsm.RolloutRunning || !r.Waves[0].Passed.IsZero() {
			t.Fatalf("%s after the new leader: rollout %s (%q), staging passed %v; want running, held (every host unheard this term)",
				time.Since(back).Round(time.Millisecond), r.State, r.PauseReason, r.Waves[0].Passed)
		}
		if evs := stagingEvents(ctx, t, survivor.Client, "host_silent"); len(evs) != 0 {
			t.Fatalf("%s after the new leader: hosts marked silent within its grace: %+v", time.Since(back).Round(time.Millisecond), evs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// After the grace, with every host heard, the wave passes: after its
	// soak and after the grace began.
	stagingWaitFor(t, "the staging wave passed", 4*grace, func() bool { return !rollout().Waves[0].Passed.IsZero() })
	r := rollout()
	if r.State != fsm.RolloutRunning {
		t.Fatalf("rollout %s (%q) after the staging wave passed", r.State, r.PauseReason)
	}
	w := r.Waves[0]
	if w.Passed.Sub(w.Completed) < soak {
		t.Fatalf("staging passed %s after it completed, within its %s soak", w.Passed.Sub(w.Completed), soak)
	}
	graces := stagingEvents(ctx, t, survivor.Client, "leader_grace")
	if len(graces) == 0 {
		t.Fatal("no leader_grace event for the new leader's term")
	}
	if since := graces[len(graces)-1].Time; w.Passed.Before(since.Add(grace)) {
		t.Fatalf("staging passed %s, within the grace that began %s: the hosts were not heard this term", w.Passed, since)
	}
	if evs := stagingEvents(ctx, t, survivor.Client, "host_silent"); len(evs) != 0 {
		t.Fatalf("hosts marked silent though every host heartbeats: %+v", evs)
	}
	// A host that really stays silent is marked silent after alive_within
	// and fails the rollout.
	agents["stg1-b"].hush()
	stagingWaitFor(t, "the rollout failed by the silent stg1-b", 4*aliveWithin, func() bool {
		r := rollout()
		return r.State == fsm.RolloutFailed && strings.Contains(r.PauseReason, "stg1-b")
	})
	if evs := stagingEvents(ctx, t, survivor.Client, "host_silent"); len(evs) != 1 || evs[0].Host != "stg1-b" {
		t.Fatalf("host_silent events %+v, want stg1-b only", evs)
	}
}
