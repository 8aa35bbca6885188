package gossip

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// TestPushReachesDatacenter runs 3 datacenters of 100 members each (20
// with -short) on loopback, pushes a different policy at one member per
// DC and checks that every member of that DC, and no other, applies it.
func TestPushReachesDatacenter(t *testing.T) {
	perDC := 100
	if testing.Short() {
		perDC = 20
	}
	dcs := []string{"fra1", "ams1", "lon1"}
	clusters := make([]*cluster, len(dcs))
	setup := time.Now()
	for i, dc := range dcs {
		clusters[i] = newCluster(t, dc, perDC, nil)
	}
	t.Logf("%d members in %d DCs up and joined in %v", perDC*len(dcs), len(dcs), time.Since(setup).Round(time.Millisecond))

	tests := []struct {
		dc     int
		origin int
		id     string
	}{
		{dc: 0, origin: 7, id: "copy-fail"},
		{dc: 1, origin: perDC - 1, id: "dirty-pipe"},
		{dc: 2, origin: 0, id: "nft-uaf"},
	}
	starts := make([]time.Time, len(tests))
	for i, tt := range tests {
		m := signedMessage(t, trustedKey(), testPolicy(tt.id, 1, dcs[tt.dc]))
		starts[i] = clusters[tt.dc].push(tt.origin, m)
	}
	for i, tt := range tests {
		t.Run(dcs[tt.dc], func(t *testing.T) {
			c := clusters[tt.dc]
			last := c.waitApplied(tt.id, 1, 60*time.Second, nil)
			lat := c.latencies(tt.id, 1, starts[i])
			t.Logf("%s: %s reached all %d members in %v (p50 %v, p99 %v)", c.dc, tt.id, perDC,
				last.Sub(starts[i]).Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond))
			for j, other := range clusters {
				if j == tt.dc {
					continue
				}
				for k, l := range other.loaders {
					if v := l.version(tt.id); v != 0 {
						t.Errorf("%s member %d applied %s version %d of another DC", other.dc, k, tt.id, v)
					}
				}
			}
		})
	}
}

// TestBadMessagesDropped checks that forged, replayed, oversize,
// malformed, foreign-DC and unknown-kind messages are dropped by every
// member and none is delivered.
func TestBadMessagesDropped(t *testing.T) {
	const n = 10
	const origin = 0
	c := newCluster(t, "fra1", n, nil)

	// Every member applies replay v3 first.
	c.push(origin, signedMessage(t, trustedKey(), testPolicy("replay", 3)))
	c.waitApplied("replay", 3, 30*time.Second, nil)
	// The loaders (not the pools) already run stale-agent v5: a pool that
	// never saw it must still not deliver v4 (Accept rejects it).
	for _, l := range c.loaders {
		l.apply(Message{ID: "agent-newer", Version: 5})
	}

	random := make([]byte, 20<<10)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	unknown := signedMessage(t, trustedKey(), testPolicy("unknown-kind", 1))
	unknown.Kind = "exec"
	bigCompressible := signedMessage(t, trustedKey(), testPolicy("big-zeros", 1))
	bigCompressible.Document = make([]byte, MaxMessageSize+1)
	bigRandom := signedMessage(t, trustedKey(), testPolicy("big-random", 1))
	bigRandom.Document = random
	tampered := signedMessage(t, trustedKey(), testPolicy("tampered", 1))
	tampered.Document = bytes.Replace(tampered.Document, []byte(`"audit"`), []byte(`"enforce"`), 1)

	tests := []struct {
		name   string
		wire   []byte
		id     string
		reason string
	}{
		{"forged signature", encodeMessage(signedMessage(t, untrustedKey(), testPolicy("forged", 1))), "forged", "signature"},
		{"tampered document", encodeMessage(tampered), "tampered", "signature"},
		{"replayed older version", encodeMessage(signedMessage(t, trustedKey(), testPolicy("replay", 2))), "replay", ReasonStale},
		{"replayed same version", encodeMessage(signedMessage(t, trustedKey(), testPolicy("replay", 3))), "replay", ReasonDuplicate},
		{"older than applied", encodeMessage(signedMessage(t, trustedKey(), testPolicy("agent-newer", 4))), "agent-newer", "version"},
		{"oversize compressible", encodeMessage(bigCompressible), "big-zeros", ReasonOversize},
		{"oversize incompressible", encodeMessage(bigRandom), "big-random", ReasonOversize},
		{"other datacenter", encodeMessage(signedMessage(t, trustedKey(), testPolicy("elsewhere", 1, "ams1"))), "elsewhere", "datacenter"},
		{"unknown kind", encodeMessage(unknown), "unknown-kind", ReasonUnknownKind},
		{"malformed", []byte{wireVersion, 0xff, 0xff}, "", ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := make([]uint64, n)
			for i, p := range c.pools {
				before[i] = p.metrics.droppedCount(tt.reason)
			}
			// Gossip it from the origin (bypassing Broadcast's checks),
			// and send it straight to every member so each must judge it.
			c.pools[origin].queue(tt.id, 99, tt.wire)
			ml := c.pools[origin].ml.Load()
			for i := range c.pools {
				if i == origin {
					continue
				}
				to := &memberlist.Node{Name: c.names[i], Addr: net.IPv4(127, 0, 0, 1), Port: uint16(c.ports[i])}
				if err := ml.SendReliable(to, tt.wire); err != nil {
					t.Fatalf("send to %s: %v", c.names[i], err)
				}
			}
			waitFor(t, 30*time.Second, "every member dropped it as "+tt.reason, func() bool {
				for i, p := range c.pools {
					if i != origin && p.metrics.droppedCount(tt.reason) <= before[i] {
						return false
					}
				}
				return true
			})
		})
	}
	c.waitQuiet(60 * time.Second)
	for i, l := range c.loaders {
		l.mu.Lock()
		for _, d := range l.deliveries {
			if d.id != "replay" && d.id != "agent-newer" || d.id == "replay" && d.version != 3 || d.id == "agent-newer" && d.version != 5 {
				t.Errorf("member %d delivered %s version %d", i, d.id, d.version)
			}
		}
		l.mu.Unlock()
		if got := c.pools[i].metrics.deliveredCount(viaGossip) + c.pools[i].metrics.deliveredCount(viaPushPull); i != origin && got != 1 {
			t.Errorf("member %d: %d deliveries, want 1 (replay v3)", i, got)
		}
	}
}

// TestRejoinGetsPolicyByPushPull checks that a member that was down while
// a newer policy version was pushed gets it when it (re)joins, through
// push-pull, without a further broadcast.
func TestRejoinGetsPolicyByPushPull(t *testing.T) {
	tests := []struct {
		name    string
		restart bool // same name and port, loader state kept; else a new member
	}{
		{name: "restarted member", restart: true},
		{name: "new member", restart: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 8
			c := newCluster(t, "fra1", n, nil)
			c.push(0, signedMessage(t, trustedKey(), testPolicy("copy-fail", 1)))
			c.waitApplied("copy-fail", 1, 30*time.Second, nil)

			down := n - 1
			port := c.ports[down]
			if err := c.pools[down].Shutdown(); err != nil {
				t.Fatal(err)
			}
			c.pools[down] = nil
			c.push(1, signedMessage(t, trustedKey(), testPolicy("copy-fail", 2)))
			c.waitApplied("copy-fail", 2, 30*time.Second, []int{0, 1, 2, 3, 4, 5, 6})
			c.waitQuiet(60 * time.Second)
			if v := c.loaders[down].version("copy-fail"); v != 1 {
				t.Fatalf("member down during the push has version %d, want 1", v)
			}

			if tt.restart {
				c.start(down, port)
			} else {
				c.names[down] = "fra1-new-host"
				c.loaders[down] = newLoader("fra1")
				c.start(down, 0)
			}
			if _, err := c.pools[down].Join(c.seeds(3)); err != nil {
				t.Fatal(err)
			}
			c.waitApplied("copy-fail", 2, 30*time.Second, []int{down})
			m := c.pools[down].metrics
			if got := m.deliveredCount(viaPushPull); got < 1 {
				t.Errorf("deliveries via push-pull = %d, want ≥ 1", got)
			}
			if got := m.deliveredCount(viaGossip); got != 0 {
				t.Errorf("deliveries via gossip = %d, want 0", got)
			}
		})
	}
}

// TestKeyRotation rotates the pool key (add, use, remove) and checks
// that the pool keeps working and who can join afterwards.
func TestKeyRotation(t *testing.T) {
	const n = 5
	oldKey, newKey := poolKey(0xa), poolKey(0xb)
	c := newCluster(t, "fra1", n, nil)
	for step, f := range []func(p *Pool) error{
		func(p *Pool) error { return p.AddKey(newKey) },
		func(p *Pool) error { return p.UseKey(newKey) },
		func(p *Pool) error { return p.RemoveKey(oldKey) },
	} {
		for i, p := range c.pools {
			if err := f(p); err != nil {
				t.Fatalf("step %d member %d: %v", step, i, err)
			}
		}
	}
	if err := c.pools[0].RemoveKey(newKey); err == nil {
		t.Error("removing the primary key succeeded")
	}
	c.push(2, signedMessage(t, trustedKey(), testPolicy("after-rotation", 1)))
	c.waitApplied("after-rotation", 1, 30*time.Second, nil)
	// Membership still converges: no member was declared dead.
	for i, p := range c.pools {
		if v := p.View(); v.Alive != n {
			t.Errorf("member %d sees %d alive, want %d", i, v.Alive, n)
		}
	}

	tests := []struct {
		name     string
		keyring  [][]byte
		insecure bool
		wantJoin bool
	}{
		{name: "old key only", keyring: [][]byte{oldKey}},
		{name: "unencrypted", insecure: true},
		{name: "new key", keyring: [][]byte{newKey}, wantJoin: true},
		{name: "new primary and old key", keyring: [][]byte{newKey, oldKey}, wantJoin: true},
		{name: "old primary and new key", keyring: [][]byte{oldKey, newKey}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoader("fra1")
			p, err := New(Config{
				NodeName: fmt.Sprintf("joiner-%d", i), Datacenter: "fra1", BindAddr: "127.0.0.1",
				Keyring: tt.keyring, Insecure: tt.insecure, Accept: l.accept, Deliver: l.apply, Logger: testLogger(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = p.Shutdown() }()
			got, err := p.Join(c.seeds(1))
			if tt.wantJoin != (err == nil) || tt.wantJoin != (got == 1) {
				t.Fatalf("Join = %d, %v; want joined = %v", got, err, tt.wantJoin)
			}
			if tt.wantJoin {
				// It learned the current policy during the join.
				waitFor(t, 10*time.Second, "joiner applied after-rotation", func() bool { return l.version("after-rotation") == 1 })
				if err := p.Leave(5 * time.Second); err != nil {
					t.Error(err)
				}
			} else if v := l.version("after-rotation"); v != 0 {
				t.Errorf("rejected joiner applied version %d", v)
			}
		})
	}
}

// TestViewPhases checks the View's counts by state and phase, and that
// UpdateMeta re-announces a member's phase.
func TestViewPhases(t *testing.T) {
	const n = 5
	var mu sync.Mutex
	phases := map[string]string{}
	c := newCluster(t, "fra1", n, func(cfg *Config) {
		name := cfg.NodeName
		cfg.Meta = func() Meta {
			mu.Lock()
			defer mu.Unlock()
			ph := phases[name]
			if ph == "" {
				ph = "ready"
			}
			return Meta{Kernel: "6.12.80", Phase: ph, Policies: map[string]int64{"copy-fail": 3}}
		}
	})
	set := func(i int, phase string) {
		mu.Lock()
		phases[c.names[i]] = phase
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.pools[i].UpdateMeta(ctx); err != nil {
			t.Fatal(err)
		}
	}
	set(1, "draining")
	set(2, "rebooting")
	waitFor(t, 30*time.Second, "member 0 sees the phases", func() bool {
		v := c.pools[0].View()
		return v.Alive == n && v.ByPhase["ready"] == 3 && v.ByPhase["draining"] == 1 && v.ByPhase["rebooting"] == 1
	})
	v := c.pools[0].View()
	for _, m := range v.Members {
		if m.Meta.HostID != m.Name || m.Meta.Kernel != "6.12.80" || m.Meta.Policies["copy-fail"] != 3 {
			t.Errorf("member %s: meta %+v", m.Name, m.Meta)
		}
	}

	// One member leaves gracefully, one crashes.
	if err := c.pools[3].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.pools[3].Shutdown(); err != nil {
		t.Fatal(err)
	}
	c.pools[3] = nil
	if err := c.pools[4].Shutdown(); err != nil {
		t.Fatal(err)
	}
	c.pools[4] = nil
	waitFor(t, 60*time.Second, "member 0 sees one left and one dead member", func() bool {
		v := c.pools[0].View()
		return v.Alive == 3 && v.Left == 1 && v.Dead == 1 && v.ByPhase["ready"] == 1 && len(v.Members) == n
	})
}

// TestNewRefuses checks New's configuration checks.
func TestNewRefuses(t *testing.T) {
	ok := func(Message) error { return nil }
	deliver := func(Message) {}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no keyring", Config{NodeName: "a", Datacenter: "fra1", Accept: ok, Deliver: deliver}, "no keyring"},
		{"bad key", Config{NodeName: "a", Datacenter: "fra1", Keyring: [][]byte{[]byte("short")}, Accept: ok, Deliver: deliver}, "keyring"},
		{"no accept", Config{NodeName: "a", Datacenter: "fra1", Insecure: true, Deliver: deliver}, "Accept"},
		{"no name", Config{Datacenter: "fra1", Insecure: true, Accept: ok, Deliver: deliver}, "NodeName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.BindAddr = "127.0.0.1"
			p, err := New(tt.cfg)
			if err == nil {
				_ = p.Shutdown()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestInsecurePoolKeyOps checks the key methods of an unencrypted pool
// and the metrics registration.
func TestInsecurePoolKeyOps(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := New(Config{
		NodeName: "a", Datacenter: "fra1", BindAddr: "127.0.0.1", Insecure: true,
		Accept: func(Message) error { return nil }, Deliver: func(Message) {}, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown() }()
	for _, f := range []func([]byte) error{p.AddKey, p.UseKey, p.RemoveKey} {
		if err := f(poolKey(1)); !errors.Is(err, ErrNoKeyring) {
			t.Errorf("got %v, want ErrNoKeyring", err)
		}
	}
	if err := p.Broadcast(signedMessage(t, trustedKey(), testPolicy("copy-fail", 2))); err != nil {
		t.Fatal(err)
	}
	if err := p.Broadcast(signedMessage(t, trustedKey(), testPolicy("copy-fail", 1))); !errors.Is(err, ErrStale) {
		t.Errorf("broadcast of an older version: %v, want ErrStale", err)
	}
	if err := p.Broadcast(Message{Kind: "exec", ID: "x", Version: 1}); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("broadcast of an unknown kind: %v, want ErrUnknownKind", err)
	}
	if err := p.Broadcast(Message{Kind: KindPolicy, ID: "x", Version: 1, Document: make([]byte, MaxMessageSize)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("broadcast of an oversize message: %v, want ErrTooLarge", err)
	}
	if d := p.QueueDepth(); d != 1 {
		t.Errorf("QueueDepth = %d, want 1", d)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, name := range []string{"kroll_gossip_members", "kroll_gossip_broadcast_queue_depth", "kroll_gossip_sent_bytes_total"} {
		if !got[name] {
			t.Errorf("metric %s not gathered; got %v", name, got)
		}
	}
	if err := p.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if fs, _ := reg.Gather(); len(fs) != 0 {
		t.Errorf("metrics still registered after Shutdown: %d families", len(fs))
	}
}
