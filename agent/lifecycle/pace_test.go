package lifecycle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// pacedAgent is an agent of a rig with coord as its coordinator and the
// given pacing hooks.
func pacedAgent(t *testing.T, coord Coordinator, change func(*Config)) *Agent {
	t.Helper()
	r := newRig(t)
	st, err := journal.NewStore(r.state)
	if err != nil {
		t.Fatal(err)
	}
	checker, err := health.New(health.Config{ProcDir: r.host.proc})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		HostID: "h1", Datacenter: "fra1", KernelLine: "6.1",
		Coordinator: coord, Stager: r.stager, Booter: r.booter, Verifier: checker, Journal: st,
		Kernel: running.ProcFS{Dir: r.host.proc}, BootDir: r.host.boot, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if change != nil {
		change(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// scripted answers heartbeats and renewals from a script of errors (nil:
// success) and records nothing else.
type scripted struct {
	mu     sync.Mutex
	script []error
	calls  int
}

func (s *scripted) next() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.script) == 0 {
		return nil
	}
	err := s.script[0]
	s.script = s.script[1:]
	return err
}

func (s *scripted) Heartbeat(context.Context, wire.Heartbeat) (*wire.DesiredState, error) {
	if err := s.next(); err != nil {
		return nil, err
	}
	return &wire.DesiredState{HeartbeatIntervalSeconds: 10}, nil
}

func (s *scripted) RenewSlot(_ context.Context, req wire.SlotRequest) (*wire.Slot, error) {
	if err := s.next(); err != nil {
		return nil, err
	}
	return &wire.Slot{Datacenter: req.Datacenter, HostID: req.HostID, Token: req.Token}, nil
}

func (s *scripted) AcquireSlot(context.Context, wire.SlotRequest) (*wire.Slot, error) {
	return nil, errors.New("not scripted")
}
func (s *scripted) AgentRelease(context.Context, wire.SlotRequest) error  { return nil }
func (s *scripted) ReportHealth(context.Context, wire.HealthReport) error { return nil }

// sleeps records the waits of a loop and ends it after n of them.
type sleeps struct {
	n      int
	waits  []time.Duration
	cancel context.CancelFunc
	// at, when set, runs at every wait (a clock moving on).
	at func(d time.Duration)
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.waits = append(s.waits, d)
	if s.at != nil {
		s.at(d)
	}
	if len(s.waits) >= s.n {
		s.cancel()
		return context.Canceled
	}
	return ctx.Err()
}

var (
	errDown    = errors.New("dial tcp 127.0.0.1:8001: connection refused")
	overloaded = &client.APIError{Status: 429, Kind: wire.KindOverloaded, Value: "busy", RetryAfter: 20 * time.Second}
)

func TestJitterBounds(t *testing.T) {
	for _, tc := range []struct {
		rand float64
		want time.Duration
	}{
		{0, 9 * time.Second},
		{0.25, 9500 * time.Millisecond},
		{0.5, 10 * time.Second},
		{0.999999, 10999998 * time.Microsecond},
	} {
		a := pacedAgent(t, &scripted{}, func(c *Config) { c.Rand = func() float64 { return tc.rand } })
		got := a.jitter(10 * time.Second)
		if got != tc.want || got < 9*time.Second || got >= 11*time.Second {
			t.Errorf("rand %v: jitter(10s) = %s, want %s within [9s, 11s)", tc.rand, got, tc.want)
		}
	}
}

// TestHeartbeatPacing: heartbeats are jittered ±10 % around the
// coordinator's interval; failures back off exponentially with full
// jitter up to the cap, never sooner than a Retry-After, and a success
// resets the backoff.
func TestHeartbeatPacing(t *testing.T) {
	const r = 0.75 // full jitter takes 75 % of the current backoff; ±10 % jitter ×1.05
	tests := []struct {
		name   string
		script []error
		want   []time.Duration
	}{
		{"successes are jittered", []error{nil, nil}, []time.Duration{10500 * time.Millisecond, 10500 * time.Millisecond}},
		{"failures grow and a success resets", []error{errDown, errDown, errDown, nil, errDown},
			[]time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 10500 * time.Millisecond, 750 * time.Millisecond}},
		{"growth stops at the cap", []error{errDown, errDown, errDown, errDown, errDown, errDown, errDown},
			[]time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 12 * time.Second, 22500 * time.Millisecond, 22500 * time.Millisecond}},
		{"Retry-After is a floor", []error{overloaded, errDown, overloaded, nil},
			[]time.Duration{20 * time.Second, 1500 * time.Millisecond, 20 * time.Second, 10500 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sl := &sleeps{n: len(tc.want), cancel: cancel}
			coord := &scripted{script: tc.script}
			a := pacedAgent(t, coord, func(c *Config) {
				c.Rand = func() float64 { return r }
				c.Sleep = sl.sleep
			})
			a.heartbeatLoop(ctx)
			if fmt.Sprint(sl.waits) != fmt.Sprint(tc.want) {
				t.Fatalf("waits %v, want %v", sl.waits, tc.want)
			}
			if coord.calls != len(tc.want) {
				t.Fatalf("%d heartbeats for %d waits", coord.calls, len(tc.want))
			}
		})
	}
}

// TestFullJitterBounds: with the random source at its extremes every
// failure's wait lies in [0, current backoff].
func TestFullJitterBounds(t *testing.T) {
	for _, r := range []float64{0, 0.999999} {
		b := newErrorBackoff(time.Second, 30*time.Second, func() float64 { return r })
		cur := time.Second
		for i := range 8 {
			got := b.next()
			if got < 0 || got > cur || (r == 0 && got != 0) || (r > 0.99 && got < cur*99/100) {
				t.Fatalf("rand %v, failure %d: wait %s, want within [0, %s] at the edge", r, i+1, got, cur)
			}
			cur = min(2*cur, 30*time.Second)
		}
	}
}

// TestRenewPacing: renewals are jittered, failures back off with full
// jitter, and no wait ever reaches past half the time left on the lease:
// the renewal deadline wins over the backoff.
func TestRenewPacing(t *testing.T) {
	start := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		lease  time.Duration // left at the start; 0: no slot
		script []error
		want   []time.Duration
	}{
		{"no slot: jittered ticks", 0, nil, []time.Duration{15750 * time.Millisecond, 15750 * time.Millisecond}},
		{"held, renewals succeed", time.Hour, nil, []time.Duration{15750 * time.Millisecond, 15750 * time.Millisecond, 15750 * time.Millisecond}},
		// Lease 60 s: the first tick (15.75 s) leaves 44.25 s; the backoff
		// (0.75 s, 1.5 s, 3 s, ...) stays below half of what is left.
		{"failures back off", time.Minute, []error{errDown, errDown, errDown},
			[]time.Duration{15750 * time.Millisecond, 750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second}},
		// Lease 20 s: the first tick is cut to 10 s; each Retry-After of
		// 20 s would pass the lease's end and is cut to half of what is
		// left (5 s, 2.5 s, 1.25 s): the lease wins.
		{"lease caps Retry-After", 20 * time.Second, []error{overloaded, overloaded, overloaded},
			[]time.Duration{10 * time.Second, 5 * time.Second, 2500 * time.Millisecond, 1250 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			now := start
			sl := &sleeps{n: len(tc.want), cancel: cancel, at: func(d time.Duration) { now = now.Add(d) }}
			coord := &scripted{script: tc.script}
			a := pacedAgent(t, coord, func(c *Config) {
				c.Rand = func() float64 { return 0.75 }
				c.Sleep = sl.sleep
				c.Now = func() time.Time { return now }
			})
			if tc.lease > 0 {
				a.j.Slot = &journal.Slot{Datacenter: "fra1", Token: 7, LeaseExpires: start.Add(tc.lease)}
			}
			a.renewLoop(ctx)
			if fmt.Sprint(sl.waits) != fmt.Sprint(tc.want) {
				t.Fatalf("waits %v, want %v", sl.waits, tc.want)
			}
			for i, w := range sl.waits {
				if tc.lease > 0 && w > tc.lease {
					t.Fatalf("wait %d (%s) is longer than the lease (%s)", i, w, tc.lease)
				}
			}
		})
	}
}

func lifecyclePolicyKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{41}, ed25519.SeedSize))
}

func signedLifecyclePolicy(t *testing.T, version int64) wire.PolicyPushRequest {
	t.Helper()
	doc := fmt.Sprintf("id: cve-userns\nversion: %d\nkind: userns-create\nmode: enforce\napplies_to:\n  fixed_in: [\"6.1.999\"]\n  datacenters: [fra1]\nexpires: 2099-01-01T00:00:00Z\n", version)
	p, err := policy.Decode([]byte(doc), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := policy.Sign(lifecyclePolicyKey(), p)
	if err != nil {
		t.Fatal(err)
	}
	return wire.PolicyPushRequest{Document: doc, Signature: sig.Marshal()}
}

// switching sends to one of several coordinator nodes and records the
// raw answers, before the agent merges them.
type switching struct {
	Coordinator
	nodes []*client.Client
	cur   int
	raw   []wire.DesiredState
}

func (s *switching) Heartbeat(ctx context.Context, hb wire.Heartbeat) (*wire.DesiredState, error) {
	ds, err := s.nodes[s.cur].Heartbeat(ctx, hb)
	if err == nil {
		s.raw = append(s.raw, *ds)
	}
	return ds, err
}

// TestDesiredStateOmission: against a real three-node coordinator over
// HTTP, the agent gets the policy documents once, keeps them while the
// answers omit them (on any node), and gets them again after a push.
func TestDesiredStateOmission(t *testing.T) {
	ctx := context.Background()
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{PolicyKeys: []ed25519.PublicKey{lifecyclePolicyKey().Public().(ed25519.PublicKey)}})
	op := nodes[0].Client
	one := 1
	retrying(t, "set fra1", func() error {
		_, err := op.SetDatacenter(ctx, "fra1", wire.DatacenterUpdate{SlotLimit: &one})
		return err
	})
	retrying(t, "push v1", func() error { _, err := op.PushPolicy(ctx, signedLifecyclePolicy(t, 1)); return err })
	sw := &switching{}
	for _, n := range nodes {
		c, err := client.New(n.URL, client.Options{Token: testcoord.AgentToken})
		if err != nil {
			t.Fatal(err)
		}
		sw.nodes = append(sw.nodes, c)
	}
	var delivered []int64 // policy version OnDesired saw, per heartbeat
	a := pacedAgent(t, sw, func(c *Config) {
		c.OnDesired = func(_ context.Context, ds *wire.DesiredState) {
			v := int64(0)
			if len(ds.Policies) == 1 {
				v = ds.Policies[0].Version
			}
			delivered = append(delivered, v)
		}
	})
	steps := []struct {
		name          string
		node          int
		push          int64 // push this version first; 0: none
		wantUnchanged bool
		wantVersion   int64
	}{
		{"first heartbeat: documents", 0, 0, false, 1},
		{"same node: omitted, kept", 0, 0, true, 1},
		{"node switch: omitted, kept", 1, 0, true, 1},
		{"third node: omitted, kept", 2, 0, true, 1},
		{"policy push: resent", 1, 2, false, 2},
		{"after the push: omitted, kept", 0, 0, true, 2},
	}
	for i, st := range steps {
		if st.push != 0 {
			retrying(t, st.name, func() error { _, err := op.PushPolicy(ctx, signedLifecyclePolicy(t, st.push)); return err })
		}
		// A heartbeat without a durable change is answered from the
		// receiving node's own state: a follower shows a push once it
		// has applied it (a commit round after the leader).
		lifecycleCaughtUp(t, nodes, st.node)
		sw.cur = st.node
		var ds *wire.DesiredState
		retrying(t, st.name, func() (err error) { ds, err = a.Heartbeat(ctx); return err })
		raw := sw.raw[len(sw.raw)-1]
		if raw.Unchanged != st.wantUnchanged || (st.wantUnchanged && len(raw.Policies) != 0) {
			t.Fatalf("%s: answer unchanged=%v with %d policies, want unchanged=%v", st.name, raw.Unchanged, len(raw.Policies), st.wantUnchanged)
		}
		if len(ds.Policies) != 1 || ds.Policies[0].Version != st.wantVersion || delivered[i] != st.wantVersion {
			t.Fatalf("%s: agent holds %+v (delivered v%d), want v%d", st.name, ds.Policies, delivered[i], st.wantVersion)
		}
		if got := a.desiredState(); got.DesiredVersion != raw.DesiredVersion || len(got.Policies) != 1 {
			t.Fatalf("%s: stored desired state %+v", st.name, got)
		}
	}
}

// lifecycleCaughtUp waits (at most 10 s) until nodes[n] has applied the
// log as far as any node of the cluster has.
func lifecycleCaughtUp(t *testing.T, nodes []*testcoord.Coordinator, n int) {
	t.Helper()
	var want uint64
	for _, c := range nodes {
		want = max(want, c.Store.FSM().Index())
	}
	for deadline := time.Now().Add(10 * time.Second); nodes[n].Store.FSM().Index() < want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node %d applied index %d, not %d, after 10 s", n, nodes[n].Store.FSM().Index(), want)
		}
	}
}

// retrying runs call until it succeeds, for at most 10 s: a cluster that
// just started (or a busy machine) may answer no_leader for a moment.
func retrying(t *testing.T, what string, call func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := call()
		if err == nil {
			return
		}
		if client.ErrorKind(err) != wire.KindNoLeader || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// forgetful answers every heartbeat "unchanged", as a coordinator would
// for an agent whose documents went missing; the agent asks again in full
// and refuses to act on an omission it cannot fill.
type forgetful struct {
	scripted
	sent []string
}

func (f *forgetful) Heartbeat(_ context.Context, hb wire.Heartbeat) (*wire.DesiredState, error) {
	f.sent = append(f.sent, hb.DesiredVersion)
	return &wire.DesiredState{HeartbeatIntervalSeconds: 10, DesiredVersion: "ab", Unchanged: true}, nil
}

func TestUnchangedWithoutDocuments(t *testing.T) {
	f := &forgetful{}
	a := pacedAgent(t, f, nil)
	if _, err := a.Heartbeat(context.Background()); err == nil {
		t.Fatal("an omission the agent cannot fill was accepted")
	}
	if fmt.Sprint(f.sent) != "[ ]" || a.desiredState() != nil {
		t.Fatalf("versions sent %q, desired %+v: want one retry without a version and nothing recorded", f.sent, a.desiredState())
	}
}
