package gossip

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/signing"
)

// trustedKey is the operator key members trust.
func trustedKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
}

// untrustedKey is a key members do not trust.
func untrustedKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
}

// poolKey returns a 32-byte pool encryption key.
func poolKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// testPolicy returns a valid policy.
func testPolicy(id string, version int64, dcs ...string) policy.Policy {
	return policy.Policy{
		ID:      id,
		Version: version,
		Kind:    policy.KindSocketFamily,
		Mode:    policy.ModeAudit,
		Params: policy.Params{
			Family:     "AF_ALG",
			Operations: []policy.Operation{policy.OpCreate, policy.OpBind},
			AllowExe:   []string{"/usr/sbin/charon"},
		},
		AppliesTo: policy.AppliesTo{
			FixedIn:     []string{"6.12.85", "6.18.22", "6.1.170"},
			Datacenters: dcs,
		},
		Expires: time.Date(2036, 6, 30, 0, 0, 0, 0, time.UTC),
	}
}

// signedMessage returns p as a Message signed with priv.
func signedMessage(tb testing.TB, priv ed25519.PrivateKey, p policy.Policy) Message {
	tb.Helper()
	doc, err := p.Canonical()
	if err != nil {
		tb.Fatal(err)
	}
	sig, err := policy.Sign(priv, p)
	if err != nil {
		tb.Fatal(err)
	}
	return Message{Kind: KindPolicy, ID: p.ID, Version: p.Version, Document: doc, Signature: sig.Marshal()}
}

// delivery records one Deliver call.
type delivery struct {
	id      string
	version int64
	at      time.Time
}

// loader is a test agent: it verifies messages like the real agent
// (signature by a trusted key, newer version, this DC) and records what
// it applied. It survives restarts of its member's pool.
type loader struct {
	dc      string
	trusted []ed25519.PublicKey

	mu         sync.Mutex
	applied    map[string]int64
	deliveries []delivery
	notify     func()
}

func newLoader(dc string) *loader {
	return &loader{
		dc:      dc,
		trusted: []ed25519.PublicKey{trustedKey().Public().(ed25519.PublicKey)},
		applied: map[string]int64{},
	}
}

func (l *loader) accept(m Message) error {
	p, err := policy.Decode(m.Document, time.Now())
	if err != nil {
		return &RejectError{Reason: "document", Err: err}
	}
	if p.ID != m.ID || p.Version != m.Version {
		return &RejectError{Reason: "document", Err: fmt.Errorf("policy %q version %d in message %q version %d", p.ID, p.Version, m.ID, m.Version)}
	}
	sig, err := signing.ParseSignature(m.Signature)
	if err != nil {
		return &RejectError{Reason: "signature", Err: err}
	}
	if _, err := policy.Verify(p, sig, l.trusted); err != nil {
		return &RejectError{Reason: "signature", Err: err}
	}
	if !p.AppliesToDC(l.dc) {
		return &RejectError{Reason: "datacenter", Err: fmt.Errorf("policy %q does not apply to %s", p.ID, l.dc)}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v := l.applied[p.ID]; p.Version <= v {
		return &RejectError{Reason: "version", Err: fmt.Errorf("policy %q version %d is not newer than %d", p.ID, p.Version, v)}
	}
	return nil
}

// apply records m as applied (Deliver, or the origin applying locally).
func (l *loader) apply(m Message) {
	l.mu.Lock()
	l.applied[m.ID] = m.Version
	l.deliveries = append(l.deliveries, delivery{id: m.ID, version: m.Version, at: time.Now()})
	notify := l.notify
	l.mu.Unlock()
	if notify != nil {
		notify()
	}
}

func (l *loader) version(id string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied[id]
}

// deliveredAt returns when (id, version) was applied, if it was.
func (l *loader) deliveredAt(id string, version int64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.deliveries {
		if d.id == id && d.version == version {
			return d.at, true
		}
	}
	return time.Time{}, false
}

// cluster is one datacenter's pool of test members on 127.0.0.1.
type cluster struct {
	tb      testing.TB
	dc      string
	tune    func(*Config)
	names   []string
	ports   []int
	pools   []*Pool
	loaders []*loader
}

// testLogger logs memberlist warnings and errors when KROLL_GOSSIP_LOG
// is set; otherwise nothing.
func testLogger() *slog.Logger {
	if os.Getenv("KROLL_GOSSIP_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newCluster starts n members of datacenter dc and joins them; tune
// adjusts each member's Config (nil: defaults with poolKey(0xa)).
func newCluster(tb testing.TB, dc string, n int, tune func(*Config)) *cluster {
	tb.Helper()
	return buildCluster(tb, tb, dc, n, tune)
}

// buildCluster is newCluster with the shutdown registered on cleanupTB.
func buildCluster(tb, cleanupTB testing.TB, dc string, n int, tune func(*Config)) *cluster {
	tb.Helper()
	c := &cluster{tb: tb, dc: dc, tune: tune}
	cleanupTB.Cleanup(c.shutdown)
	for i := range n {
		c.names = append(c.names, fmt.Sprintf("%s-host-%03d", dc, i))
		c.ports = append(c.ports, 0)
		c.loaders = append(c.loaders, newLoader(dc))
		c.pools = append(c.pools, nil)
		c.start(i, 0)
		if i > 0 {
			if _, err := c.pools[i].Join(c.seeds(min(i, 3))); err != nil {
				tb.Fatalf("member %d: %v", i, err)
			}
		}
		// Pace the joins (real hosts do not all start in the same
		// millisecond; 300 members on 2 cores cannot process the
		// membership burst of all joining at once): every 25 joins, let
		// every member learn them.
		if i%25 == 24 {
			c.waitMembers(i+1, 180*time.Second)
		}
	}
	c.waitMembers(n, 180*time.Second)
	return c
}

// config returns member i's Config.
func (c *cluster) config(i, port int) Config {
	l := c.loaders[i]
	cfg := Config{
		NodeName:   c.names[i],
		Datacenter: c.dc,
		BindAddr:   "127.0.0.1",
		BindPort:   port,
		Keyring:    [][]byte{poolKey(0xa)},
		Accept:     l.accept,
		Deliver:    l.apply,
		Logger:     testLogger(),
		Meta:       func() Meta { return Meta{Kernel: "6.12.80", Phase: "ready"} },
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

// start (re)starts member i on port (0: any).
func (c *cluster) start(i, port int) {
	c.tb.Helper()
	p, err := New(c.config(i, port))
	if err != nil {
		c.tb.Fatalf("member %d: %v", i, err)
	}
	c.pools[i] = p
	_, portStr, err := net.SplitHostPort(p.LocalAddr())
	if err != nil {
		c.tb.Fatal(err)
	}
	c.ports[i], err = strconv.Atoi(portStr)
	if err != nil {
		c.tb.Fatal(err)
	}
}

// seeds returns the addresses of the first n members.
func (c *cluster) seeds(n int) []string {
	var s []string
	for _, p := range c.pools[:n] {
		if p != nil {
			s = append(s, p.LocalAddr())
		}
	}
	return s
}

func (c *cluster) shutdown() {
	var wg sync.WaitGroup
	for _, p := range c.pools {
		if p != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = p.Shutdown()
			}()
		}
	}
	wg.Wait()
}

// waitMembers waits until every running member sees n alive members.
func (c *cluster) waitMembers(n int, timeout time.Duration) {
	c.tb.Helper()
	waitFor(c.tb, timeout, fmt.Sprintf("%s: all members see %d alive members", c.dc, n), func() bool {
		for _, p := range c.pools {
			if p != nil && p.ml.Load().NumMembers() != n {
				return false
			}
		}
		return true
	})
}

// waitQuiet waits until no running member has anything queued.
func (c *cluster) waitQuiet(timeout time.Duration) {
	c.tb.Helper()
	waitFor(c.tb, timeout, c.dc+": broadcast queues drained", func() bool {
		for _, p := range c.pools {
			if p != nil && p.QueueDepth() != 0 {
				return false
			}
		}
		return true
	})
}

// push broadcasts m at member i, which applies it itself.
func (c *cluster) push(i int, m Message) time.Time {
	c.tb.Helper()
	start := time.Now()
	c.loaders[i].apply(m)
	if err := c.pools[i].Broadcast(m); err != nil {
		c.tb.Fatalf("broadcast at member %d: %v", i, err)
	}
	return start
}

// waitApplied waits until every member in idx (nil: all) applied id at
// version and returns the latest delivery time.
func (c *cluster) waitApplied(id string, version int64, timeout time.Duration, idx []int) time.Time {
	c.tb.Helper()
	if idx == nil {
		for i := range c.pools {
			idx = append(idx, i)
		}
	}
	waitFor(c.tb, timeout, fmt.Sprintf("%s: %d members applied %s v%d", c.dc, len(idx), id, version), func() bool {
		for _, i := range idx {
			if c.loaders[i].version(id) < version {
				return false
			}
		}
		return true
	})
	var last time.Time
	for _, i := range idx {
		if at, ok := c.loaders[i].deliveredAt(id, version); ok && at.After(last) {
			last = at
		}
	}
	return last
}

// latencies returns the delivery latencies of (id, version) since start,
// sorted.
func (c *cluster) latencies(id string, version int64, start time.Time) []time.Duration {
	var d []time.Duration
	for _, l := range c.loaders {
		if at, ok := l.deliveredAt(id, version); ok {
			d = append(d, at.Sub(start))
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
