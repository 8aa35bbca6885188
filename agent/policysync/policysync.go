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
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/gossip"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Manager owns the host's policy state (*mitigate.Manager): it applies
// verified policies, records retirements durably, and reconciles the pins
// with what is desired.
type Manager interface {
	// ApplyVerified stores, installs and reconciles; one Status each.
	ApplyVerified(ctx context.Context, vs []policy.Verified) ([]mitigate.Status, error)
	// Check returns nil if v is newer than what the host has and not
	// retired.
	Check(v policy.Verified) error
	// Retire records that id was retired at version and unpins it.
	Retire(ctx context.Context, id string, version int64) error
	// Documents returns the verified, not retired policies stored.
	Documents() ([]policy.Verified, error)
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
// concurrent use. The Manager is the one owner of the policy state; the
// Syncer only caches what it reported last, for the gossip pool.
type Syncer struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// pool is where policies from the coordinator are broadcast.
	pool Broadcaster
	// versions and docs are the Manager's Documents after the last
	// change, for gossip meta and push-pull.
	versions map[string]int64
	docs     []gossip.Message

	latency *prometheus.HistogramVec
	applied *prometheus.CounterVec
}

// New returns a Syncer over what the Manager has stored.
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
	s := &Syncer{cfg: cfg, log: cfg.Logger, pool: cfg.Pool, versions: map[string]int64{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kroll_policy_propagation_seconds",
			Help:    "Time from a policy version's issued timestamp to in force on this host, by source (coordinator, gossip).",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14)}, []string{"source"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kroll_policy_applied_total",
			Help: "Policy versions applied, by source (coordinator, gossip) and result (ok, error)."}, []string{"source", "result"}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.latency, s.applied)
	}
	if err := s.refresh(); err != nil {
		return nil, err
	}
	return s, nil
}

// refresh re-reads the Manager's documents into the gossip cache.
func (s *Syncer) refresh() error {
	vs, err := s.cfg.Manager.Documents()
	if err != nil {
		return fmt.Errorf("policysync: %w", err)
	}
	versions := make(map[string]int64, len(vs))
	docs := make([]gossip.Message, 0, len(vs))
	for _, v := range vs {
		p := v.Policy()
		versions[p.ID] = p.Version
		docs = append(docs, message(v))
	}
	s.mu.Lock()
	s.versions, s.docs = versions, docs
	s.mu.Unlock()
	return nil
}

// message is the gossip form of a verified policy.
func message(v policy.Verified) gossip.Message {
	p := v.Policy()
	return gossip.Message{Kind: gossip.KindPolicy, ID: p.ID, Version: p.Version, Document: v.Document(), Signature: v.Signature()}
}

// check opens m as a policy for this host: signature by a trusted key,
// the id and version it claims, meant for this datacenter, small enough,
// newer than what the host has and not retired (asked of the Manager).
func (s *Syncer) check(m gossip.Message) (policy.Verified, error) {
	if m.Kind != gossip.KindPolicy {
		return policy.Verified{}, fmt.Errorf("kind %q is not policy", m.Kind)
	}
	if len(m.Document)+len(m.Signature) > gossip.MaxMessageSize {
		return policy.Verified{}, fmt.Errorf("policy %s: %d bytes exceed %d", m.ID, len(m.Document)+len(m.Signature), gossip.MaxMessageSize)
	}
	v, err := policy.Open(m.Document, m.Signature, s.cfg.Trusted)
	if err != nil {
		return v, fmt.Errorf("policy %s: %w", m.ID, err)
	}
	p := v.Policy()
	if p.ID != m.ID || p.Version != m.Version {
		return v, fmt.Errorf("policy %s v%d travels as %s v%d", p.ID, p.Version, m.ID, m.Version)
	}
	if !p.AppliesToDC(s.cfg.Datacenter) {
		return v, fmt.Errorf("policy %s is not for datacenter %s", p.ID, s.cfg.Datacenter)
	}
	if err := s.cfg.Manager.Check(v); err != nil {
		return v, fmt.Errorf("policy %s v%d: %w", p.ID, p.Version, err)
	}
	return v, nil
}

// apply applies a checked policy; source labels metrics.
func (s *Syncer) apply(ctx context.Context, v policy.Verified, source string) error {
	p := v.Policy()
	sts, err := s.cfg.Manager.ApplyVerified(ctx, []policy.Verified{v})
	if rerr := s.refresh(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	var st mitigate.Status
	if len(sts) == 1 {
		st = sts[0]
	}
	switch st.State {
	case wire.PolicyEnforcing, wire.PolicyAuditing, wire.PolicyRetired, wire.PolicyUnavailable:
		// Stored (in force, or not here for a reason reported as such).
	default:
		s.applied.WithLabelValues(source, "error").Inc()
		if err == nil {
			err = fmt.Errorf("policy %s: %s", p.ID, st)
		}
		return err
	}
	s.applied.WithLabelValues(source, "ok").Inc()
	if !p.Issued.IsZero() && st.State.InForce() {
		s.latency.WithLabelValues(source).Observe(s.cfg.Now().Sub(p.Issued).Seconds())
	}
	s.log.Info("policy applied", "policy", p.ID, "version", p.Version, "mode", p.Mode, "source", source, "state", st.String())
	return err
}

// Desired applies the coordinator's retirements and desired policies;
// newly applied policies are broadcast into the pool.
func (s *Syncer) Desired(ctx context.Context, ds *wire.DesiredState) {
	if ds == nil {
		return
	}
	for _, r := range s.retirements(ds) {
		if err := s.cfg.Manager.Retire(ctx, r.ID, r.Version); err != nil {
			s.log.Warn("retiring policy", "policy", r.ID, "version", r.Version, "err", err)
		}
	}
	if len(ds.Retirements)+len(ds.RetiredPolicies) > 0 {
		if err := s.refresh(); err != nil {
			s.log.Warn("policies", "err", err)
		}
	}
	for _, sp := range ds.Policies {
		m := gossip.Message{Kind: gossip.KindPolicy, ID: sp.ID, Version: sp.Version, Document: []byte(sp.Document), Signature: sp.Signature}
		v, err := s.check(m)
		if err != nil {
			if !errors.Is(err, policy.ErrNotNewer) {
				s.log.Warn("policy from the coordinator refused", "policy", sp.ID, "version", sp.Version, "err", err)
			}
			continue
		}
		if err := s.apply(ctx, v, "coordinator"); err != nil {
			s.log.Warn("policy from the coordinator not in force", "policy", sp.ID, "err", err)
		}
		s.mu.Lock()
		pool := s.pool
		s.mu.Unlock()
		if pool != nil {
			if err := pool.Broadcast(message(v)); err != nil {
				s.log.Warn("gossip broadcast", "policy", sp.ID, "err", err)
			}
		}
	}
}

// retirements are the desired state's retirements with their versions. An
// id only in RetiredPolicies (a coordinator that does not send versions)
// is retired at the version the host holds; one the host does not hold
// has nothing to remove and is left out.
func (s *Syncer) retirements(ds *wire.DesiredState) []wire.PolicyRetirement {
	out := append([]wire.PolicyRetirement(nil), ds.Retirements...)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ds.RetiredPolicies {
		if slices.ContainsFunc(ds.Retirements, func(r wire.PolicyRetirement) bool { return r.ID == id }) {
			continue
		}
		if v, ok := s.versions[id]; ok {
			out = append(out, wire.PolicyRetirement{ID: id, Version: v})
		}
	}
	return out
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
	v, err := s.check(m)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.apply(ctx, v, "gossip"); err != nil {
		s.log.Warn("policy from gossip not in force", "policy", m.ID, "err", err)
	}
}

// State returns the verified policies the host holds, for the pool's
// push-pull (gossip.Config.State).
func (s *Syncer) State() []gossip.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.docs)
}

// Versions returns the version held per policy id (for gossip meta).
func (s *Syncer) Versions() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.versions)
}
