// Package policysync keeps a host's bpf-lsm mitigations in line with what
// the fleet wants, from two sources: the coordinator's desired state (each
// heartbeat) and the datacenter's gossip pool (pushes spread by the other
// agents, also when the coordinator is out of reach). Whatever the source,
// a policy is applied only when it is validly signed by a trusted key,
// newer than what the host has, and meant for the host's datacenter; a
// policy newly applied from the coordinator is broadcast into the pool.
package policysync

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/gossip"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Manager applies and removes policies (*mitigate.Manager).
type Manager interface {
	Apply(ctx context.Context, docs []mitigate.SignedPolicy) ([]mitigate.Status, error)
	Remove(ctx context.Context, id string) error
	Documents() ([]mitigate.SignedPolicy, error)
}

// Broadcaster spreads a message through the datacenter's pool
// (*gossip.Pool).
type Broadcaster interface {
	Broadcast(m gossip.Message) error
}

// Config configures a Syncer.
type Config struct {
	Datacenter string
	Trusted    []ed25519.PublicKey
	Manager    Manager
	// Pool may be nil (no gossip).
	Pool   Broadcaster
	Logger *slog.Logger
	// Registerer receives the metrics; nil = none.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Syncer reconciles the host's policies. Its methods are safe for
// concurrent use; applying is serialized.
type Syncer struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// pool is where policies from the coordinator are broadcast.
	pool Broadcaster
	// have is the newest version applied (or refused as retired) per id.
	have map[string]int64
	// docs are the signed documents in force, for gossip push-pull.
	docs map[string]gossip.Message
	// retired are ids the operator retired, with the version retired.
	retired map[string]int64

	latency *prometheus.HistogramVec
	applied *prometheus.CounterVec
}

// New returns a Syncer; it loads what the Manager has stored.
func New(ctx context.Context, cfg Config) (*Syncer, error) {
	if cfg.Manager == nil || len(cfg.Trusted) == 0 || cfg.Datacenter == "" {
		return nil, errors.New("policysync: Manager, Trusted and Datacenter are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Syncer{cfg: cfg, log: cfg.Logger, pool: cfg.Pool, have: map[string]int64{}, docs: map[string]gossip.Message{}, retired: map[string]int64{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kroll_policy_propagation_seconds",
			Help:    "Time from a policy version's issued timestamp to in force on this host, by source (coordinator, gossip).",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14)}, []string{"source"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kroll_policy_applied_total",
			Help: "Policy versions applied, by source (coordinator, gossip) and result (ok, error)."}, []string{"source", "result"}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.latency, s.applied)
	}
	docs, err := cfg.Manager.Documents()
	if err != nil {
		return nil, fmt.Errorf("policysync: %w", err)
	}
	for _, d := range docs {
		p, err := policy.Decode(d.Document, time.Time{})
		if err != nil {
			continue
		}
		s.have[p.ID] = p.Version
		s.docs[p.ID] = message(p.ID, p.Version, string(d.Document), d.Signature)
	}
	return s, nil
}

// message is the gossip form of a signed policy.
func message(id string, version int64, doc string, sig []byte) gossip.Message {
	return gossip.Message{Kind: "policy", ID: id, Version: version, Document: []byte(doc), Signature: sig}
}

// check verifies m as a policy for this host: signature by a trusted key,
// the id and version it claims, newer than what the host has, not retired,
// meant for this datacenter, small enough.
func (s *Syncer) check(m gossip.Message) (policy.Policy, error) {
	if m.Kind != "policy" {
		return policy.Policy{}, fmt.Errorf("kind %q is not policy", m.Kind)
	}
	if len(m.Document)+len(m.Signature) > gossip.MaxMessageSize {
		return policy.Policy{}, fmt.Errorf("policy %s: %d bytes exceed %d", m.ID, len(m.Document)+len(m.Signature), gossip.MaxMessageSize)
	}
	p, err := policy.Decode(m.Document, time.Time{})
	if err != nil {
		return p, err
	}
	sig, err := signing.ParseSignature(m.Signature)
	if err != nil {
		return p, fmt.Errorf("policy %s: %w", p.ID, err)
	}
	if _, err := policy.Verify(p, sig, s.cfg.Trusted); err != nil {
		return p, fmt.Errorf("policy %s: %w", p.ID, err)
	}
	if p.ID != m.ID || p.Version != m.Version {
		return p, fmt.Errorf("policy %s v%d travels as %s v%d", p.ID, p.Version, m.ID, m.Version)
	}
	if !p.AppliesToDC(s.cfg.Datacenter) {
		return p, fmt.Errorf("policy %s is not for datacenter %s", p.ID, s.cfg.Datacenter)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.retired[p.ID]; ok && p.Version <= v {
		return p, fmt.Errorf("policy %s v%d was retired", p.ID, p.Version)
	}
	if v, ok := s.have[p.ID]; ok && p.Version <= v {
		return p, fmt.Errorf("policy %s v%d: %w (host has v%d)", p.ID, p.Version, policy.ErrNotNewer, v)
	}
	return p, nil
}

// apply applies a checked policy and records it; source labels metrics.
func (s *Syncer) apply(ctx context.Context, m gossip.Message, p policy.Policy, source string) error {
	sts, err := s.cfg.Manager.Apply(ctx, []mitigate.SignedPolicy{{Source: source + ":" + p.ID, Document: m.Document, Signature: m.Signature}})
	state := ""
	if len(sts) == 1 {
		state = sts[0].State
	}
	if state == "" || strings.HasPrefix(state, "rejected") || strings.HasPrefix(state, "error") {
		s.applied.WithLabelValues(source, "error").Inc()
		if err == nil {
			err = fmt.Errorf("policy %s: %s", p.ID, state)
		}
		return err
	}
	// Stored (and in force, or unavailable on this kernel — reported as
	// such): the host has this version now.
	s.mu.Lock()
	s.have[p.ID] = p.Version
	s.docs[p.ID] = m
	s.mu.Unlock()
	s.applied.WithLabelValues(source, "ok").Inc()
	if !p.Issued.IsZero() && (state == mitigate.StateEnforcing || state == mitigate.StateAuditing) {
		s.latency.WithLabelValues(source).Observe(s.cfg.Now().Sub(p.Issued).Seconds())
	}
	s.log.Info("policy applied", "policy", p.ID, "version", p.Version, "mode", p.Mode, "source", source, "state", state)
	return err
}

// Desired applies the coordinator's desired policies and removals; newly
// applied policies are broadcast into the pool.
func (s *Syncer) Desired(ctx context.Context, ds *wire.DesiredState) {
	if ds == nil {
		return
	}
	for _, id := range ds.RetiredPolicies {
		s.retire(ctx, id)
	}
	for _, sp := range ds.Policies {
		m := message(sp.ID, sp.Version, sp.Document, sp.Signature)
		p, err := s.check(m)
		if err != nil {
			if !errors.Is(err, policy.ErrNotNewer) {
				s.log.Warn("policy from the coordinator refused", "policy", sp.ID, "version", sp.Version, "err", err)
			}
			continue
		}
		if err := s.apply(ctx, m, p, "coordinator"); err != nil {
			s.log.Warn("policy from the coordinator not in force", "policy", sp.ID, "err", err)
		}
		s.mu.Lock()
		pool := s.pool
		s.mu.Unlock()
		if pool != nil {
			if err := pool.Broadcast(m); err != nil {
				s.log.Warn("gossip broadcast", "policy", sp.ID, "err", err)
			}
		}
	}
}

// retire removes a policy the operator retired.
func (s *Syncer) retire(ctx context.Context, id string) {
	s.mu.Lock()
	v, known := s.have[id]
	_, already := s.retired[id]
	s.retired[id] = v
	delete(s.docs, id)
	s.mu.Unlock()
	if already || !known {
		return
	}
	if err := s.cfg.Manager.Remove(ctx, id); err != nil && !errors.Is(err, mitigate.ErrNotInstalled) {
		s.log.Warn("retiring policy", "policy", id, "err", err)
		return
	}
	s.log.Info("policy retired by the operator", "policy", id, "version", v)
}

// SetPool sets the pool policies from the coordinator are broadcast into
// (the pool is created after the Syncer, whose methods it calls).
func (s *Syncer) SetPool(p Broadcaster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pool = p
}

// Accept is the pool's gate (gossip.Config.Accept).
func (s *Syncer) Accept(m gossip.Message) error {
	_, err := s.check(m)
	return err
}

// Deliver applies a policy learned through gossip (gossip.Config.Deliver).
func (s *Syncer) Deliver(m gossip.Message) {
	p, err := s.check(m)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.apply(ctx, m, p, "gossip"); err != nil {
		s.log.Warn("policy from gossip not in force", "policy", m.ID, "err", err)
	}
}

// State returns the policies in force, for the pool's push-pull
// (gossip.Config.State).
func (s *Syncer) State() []gossip.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]gossip.Message, 0, len(s.docs))
	for _, m := range s.docs {
		out = append(out, m)
	}
	return out
}

// Versions returns the version in force per policy id (for gossip meta).
func (s *Syncer) Versions() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.have))
	for id, v := range s.have {
		if _, r := s.retired[id]; !r {
			out[id] = v
		}
	}
	return out
}
