// Package mitigate applies signed bpf-lsm mitigation policies (DESIGN §6)
// on a host: it verifies a policy's signature and version, retires it when
// the running kernel contains the fix or it expired, proves that bpf-lsm
// works before claiming anything, and loads, configures, attaches and pins
// the policy kind's program under <bpffs>/<policy-id>/ so that enforcement
// survives the agent process. A later process adopts the pins instead of
// loading the program again.
//
// The Manager holds the policy logic; the kernel side is an Enforcer
// (NewBPFEnforcer in production, a fake in tests).
package mitigate

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Defaults for Config.
const (
	DefaultBPFFS    = "/sys/fs/bpf/kroll"
	DefaultStateDir = "/var/lib/kroll/mitigations"
)

// States a policy can be in (Status.State); unavailable states are
// "unavailable: <reason>".
const (
	StateEnforcing = "enforcing"
	StateAuditing  = "auditing"
	StateRetired   = "retired (kernel contains fix)"
	StateExpired   = "expired"
	StateNotLoaded = "not loaded"
	// StateUnavailablePrefix starts the state of a policy that cannot be
	// enforced because bpf-lsm does not work on this host.
	StateUnavailablePrefix = "unavailable: "
)

// ErrRejected is wrapped by Apply's errors for a policy that was refused
// (bad or missing signature, invalid, not newer). Nothing of it is written
// or loaded.
var ErrRejected = errors.New("policy rejected")

// ErrNotInstalled is returned (wrapped) by Enforcer.Read for a policy
// without pins.
var ErrNotInstalled = errors.New("policy not installed")

// SignedPolicy is a policy document (YAML or JSON) and its detached
// signature (the POLICY.sig file).
type SignedPolicy struct {
	// Source names the document in messages, e.g. its file name.
	Source    string
	Document  []byte
	Signature []byte
}

// Status is the state of one policy on this host.
type Status struct {
	Source  string `json:"source,omitempty"`
	ID      string `json:"id,omitempty"`
	Version int64  `json:"version,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Mode    string `json:"mode,omitempty"`
	// State is one of the State constants or "unavailable: <reason>".
	State    string        `json:"state"`
	Counters *bpf.Counters `json:"counters,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
}

// Enforcer is the kernel side: it installs policies as pinned bpf-lsm
// programs and reads them back.
type Enforcer interface {
	// Available returns nil if bpf-lsm works on this host, else an error
	// saying why and what to change.
	Available(ctx context.Context) error
	// Install loads, configures, attaches and pins p, or updates the
	// pinned maps in place when p.ID is already installed. Unresolvable
	// allow-list paths are warnings.
	Install(ctx context.Context, p policy.Policy) (warnings []string, err error)
	// Read returns the installed policy's mode and counters, or an error
	// wrapping ErrNotInstalled.
	Read(id string) (bpf.Mode, bpf.Counters, error)
	// Uninstall removes the policy's pins and detaches it; a policy that
	// is not installed is no error.
	Uninstall(id string) error
}

// Config configures a Manager.
type Config struct {
	// Trusted are the keys policies must be signed with.
	Trusted []ed25519.PublicKey
	// BPFFS is where pins live; DefaultBPFFS when empty. Only used for
	// the default Enforcer.
	BPFFS string
	// StateDir holds the accepted policies; DefaultStateDir when empty.
	StateDir string
	// Kernel is the running kernel; kversion.Running() when zero.
	Kernel *kversion.Version
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Enforcer is the kernel side; NewBPFEnforcer(BPFFS) when nil.
	Enforcer Enforcer
	// WatchInterval is how often Watch looks for installed and removed
	// policies; one second when zero.
	WatchInterval time.Duration
}

// Manager applies, lists and removes mitigation policies.
type Manager struct {
	trusted       []ed25519.PublicKey
	stateDir      string
	kernel        kversion.Version
	now           func() time.Time
	enf           Enforcer
	watchInterval time.Duration
}

// New returns a Manager for cfg.
func New(cfg Config) (*Manager, error) {
	m := &Manager{trusted: cfg.Trusted, stateDir: cfg.StateDir, now: cfg.Now, enf: cfg.Enforcer, watchInterval: cfg.WatchInterval}
	if m.watchInterval == 0 {
		m.watchInterval = time.Second
	}
	if m.stateDir == "" {
		m.stateDir = DefaultStateDir
	}
	if m.now == nil {
		m.now = time.Now
	}
	if cfg.Kernel != nil {
		m.kernel = *cfg.Kernel
	} else {
		k, err := kversion.Running()
		if err != nil {
			return nil, fmt.Errorf("mitigate: %w", err)
		}
		m.kernel = k
	}
	if m.enf == nil {
		root := cfg.BPFFS
		if root == "" {
			root = DefaultBPFFS
		}
		m.enf = NewBPFEnforcer(root)
	}
	return m, nil
}

// stored is a state file: the accepted document and its signature.
type stored struct {
	Document  string          `json:"document"`
	Signature json.RawMessage `json:"signature"`
}

func (m *Manager) statePath(id string) string {
	return filepath.Join(m.stateDir, id+".json")
}

// Apply verifies and applies docs in order and returns one Status per
// document. A rejected document gets State "rejected: ..." and nothing of
// it is written or loaded. If bpf-lsm is unavailable, verified policies
// are stored but nothing is loaded, their State says why, and the error is
// non-nil. The error joins every document's problem.
func (m *Manager) Apply(ctx context.Context, docs []SignedPolicy) ([]Status, error) {
	// The daemon keeps running after loading: give back the parsed kernel
	// BTF (several MiB) once the policies are in.
	defer bpf.ReleaseCaches()
	var (
		out       []Status
		errs      []error
		availErr  error
		availDone bool
	)
	for _, d := range docs {
		st, p, err := m.accept(d)
		if err != nil {
			st.State = "rejected: " + err.Error()
			out = append(out, st)
			errs = append(errs, fmt.Errorf("%s: %w", d.Source, err))
			continue
		}
		fixed, err := p.Fixed(m.kernel)
		if err != nil {
			st.State = "rejected: " + err.Error()
			out = append(out, st)
			errs = append(errs, fmt.Errorf("%s: %w: %w", d.Source, ErrRejected, err))
			continue
		}
		if err := m.store(p.ID, d); err != nil {
			st.State = "error: " + err.Error()
			out = append(out, st)
			errs = append(errs, fmt.Errorf("%s: %w", d.Source, err))
			continue
		}
		if fixed || !p.Expires.After(m.now()) {
			st.State = StateExpired
			if fixed {
				st.State = StateRetired
			}
			if err := m.enf.Uninstall(p.ID); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.Source, err))
			}
			out = append(out, st)
			continue
		}
		if !availDone {
			availErr, availDone = m.enf.Available(ctx), true
		}
		if availErr != nil {
			st.State = StateUnavailablePrefix + availErr.Error()
			out = append(out, st)
			errs = append(errs, fmt.Errorf("%s: %w", d.Source, availErr))
			continue
		}
		warns, err := m.enf.Install(ctx, p)
		st.Warnings = warns
		if err != nil {
			st.State = "error: " + err.Error()
			out = append(out, st)
			errs = append(errs, fmt.Errorf("%s: %w", d.Source, err))
			continue
		}
		m.readState(&st, p.ID)
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

// accept checks a document: signed by a trusted key, valid, newer than
// (or identical to) the stored version of the same ID.
func (m *Manager) accept(d SignedPolicy) (Status, policy.Policy, error) {
	st := Status{Source: d.Source}
	if len(d.Signature) == 0 {
		return st, policy.Policy{}, fmt.Errorf("%w: unsigned (no signature)", ErrRejected)
	}
	sig, err := signing.ParseSignature(d.Signature)
	if err != nil {
		return st, policy.Policy{}, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	// Expiry is a state (expired), not a rejection: validate everything
	// else here and compare Expires with the clock in Apply.
	p, err := policy.Decode(d.Document, time.Time{})
	if err != nil {
		return st, p, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	st.ID, st.Version, st.Kind, st.Mode = p.ID, p.Version, string(p.Kind), string(p.Mode)
	if _, err := policy.Verify(p, sig, m.trusted); err != nil {
		return st, p, fmt.Errorf("%w: signature: %w", ErrRejected, err)
	}
	old, _, err := m.load(p.ID)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return st, p, err
	default:
		a, err1 := p.Canonical()
		b, err2 := old.Canonical()
		if err1 == nil && err2 == nil && string(a) == string(b) {
			break
		}
		if err := p.Supersedes(old); err != nil {
			return st, p, fmt.Errorf("%w: installed version %d: %w", ErrRejected, old.Version, err)
		}
	}
	return st, p, nil
}

func (m *Manager) store(id string, d SignedPolicy) error {
	if err := os.MkdirAll(m.stateDir, 0o700); err != nil {
		return fmt.Errorf("mitigate: state dir: %w", err)
	}
	b, err := json.Marshal(stored{Document: string(d.Document), Signature: json.RawMessage(d.Signature)})
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(m.statePath(id), b, 0o600, false); err != nil {
		return fmt.Errorf("mitigate: store %s: %w", id, err)
	}
	return nil
}

// load reads and re-verifies a stored policy.
func (m *Manager) load(id string) (policy.Policy, stored, error) {
	var s stored
	b, err := os.ReadFile(m.statePath(id))
	if err != nil {
		return policy.Policy{}, s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return policy.Policy{}, s, fmt.Errorf("mitigate: state of %s: %w", id, err)
	}
	p, err := policy.Decode([]byte(s.Document), time.Time{})
	if err != nil {
		return p, s, fmt.Errorf("mitigate: state of %s: %w", id, err)
	}
	return p, s, nil
}

func (m *Manager) readState(st *Status, id string) {
	mode, c, err := m.enf.Read(id)
	switch {
	case errors.Is(err, ErrNotInstalled):
		st.State = StateNotLoaded
		if aerr := m.enf.Available(context.Background()); aerr != nil {
			st.State = StateUnavailablePrefix + aerr.Error()
		}
	case err != nil:
		st.State = "error: " + err.Error()
	case mode == bpf.Enforce:
		st.State, st.Counters = StateEnforcing, &c
	default:
		st.State, st.Counters = StateAuditing, &c
	}
}

// List returns the state of every stored policy, ordered by ID.
func (m *Manager) List(ctx context.Context) ([]Status, error) {
	ents, err := os.ReadDir(m.stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mitigate: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var out []Status
	var errs []error
	for _, id := range ids {
		p, _, err := m.load(id)
		if err != nil {
			out = append(out, Status{ID: id, State: "error: " + err.Error()})
			errs = append(errs, err)
			continue
		}
		st := Status{ID: p.ID, Version: p.Version, Kind: string(p.Kind), Mode: string(p.Mode)}
		fixed, ferr := p.Fixed(m.kernel)
		switch {
		case ferr == nil && fixed:
			st.State = StateRetired
		case !p.Expires.After(m.now()):
			st.State = StateExpired
		default:
			m.readState(&st, p.ID)
		}
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

// Remove detaches and unpins policy id and deletes its stored state.
func (m *Manager) Remove(ctx context.Context, id string) error {
	if strings.ContainsAny(id, "/\x00") || id == "" || id == "." || id == ".." {
		return fmt.Errorf("mitigate: invalid policy id %q", id)
	}
	_, statErr := os.Stat(m.statePath(id))
	if err := m.enf.Uninstall(id); err != nil {
		return err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		return fmt.Errorf("mitigate: policy %q: %w", id, ErrNotInstalled)
	}
	if err := os.Remove(m.statePath(id)); err != nil {
		return fmt.Errorf("mitigate: %w", err)
	}
	return fsutil.SyncDir(m.stateDir)
}

// Reconcile removes every policy that is not in wanted: its pins (all
// pinned policies if the Enforcer is an InstalledLister, else those with
// stored state) and its stored state. The daemon calls it at start with
// the ids of the policies it is told to enforce; policies in wanted are
// left as they are (Apply adopts their pins).
func (m *Manager) Reconcile(ctx context.Context, wanted []string) error {
	keep := make(map[string]bool, len(wanted))
	for _, id := range wanted {
		keep[id] = true
	}
	ids := make(map[string]bool)
	ents, err := os.ReadDir(m.stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("mitigate: %w", err)
	}
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
			ids[id] = true
		}
	}
	if l, ok := m.enf.(InstalledLister); ok {
		pinned, err := l.Installed()
		if err != nil {
			return err
		}
		for _, id := range pinned {
			ids[id] = true
		}
	}
	var errs []error
	removed := false
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if keep[id] {
			continue
		}
		if err := m.enf.Uninstall(id); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(m.statePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("mitigate: %w", err))
			continue
		}
		removed = true
	}
	if removed {
		errs = append(errs, fsutil.SyncDir(m.stateDir))
	}
	return errors.Join(errs...)
}

// Restore re-applies every stored policy: the daemon calls it at start,
// before routes are announced, so that policies accepted earlier are in
// force again after a reboot (pins do not survive one) and adopted when
// they do (an agent restart). Each stored document is verified again.
func (m *Manager) Restore(ctx context.Context) ([]Status, error) {
	docs, err := m.Documents()
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	return m.Apply(ctx, docs)
}

// Documents returns the stored (accepted) policy documents with their
// signatures, ordered by id.
func (m *Manager) Documents() ([]SignedPolicy, error) {
	ents, err := os.ReadDir(m.stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mitigate: %w", err)
	}
	var docs []SignedPolicy
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		_, s, err := m.load(id)
		if err != nil {
			return nil, err
		}
		docs = append(docs, SignedPolicy{Source: m.statePath(id), Document: []byte(s.Document), Signature: s.Signature})
	}
	return docs, nil
}

// WireStatus converts statuses to what heartbeats report: enforcing,
// auditing, unavailable or retired (expired counts as retired; a policy
// stored but not loaded, or in error, as unavailable).
func WireStatus(sts []Status) []wire.PolicyStatus {
	out := make([]wire.PolicyStatus, 0, len(sts))
	for _, s := range sts {
		if s.ID == "" {
			continue
		}
		ps := wire.PolicyStatus{ID: s.ID, Version: s.Version}
		switch {
		case s.State == StateEnforcing:
			ps.State = "enforcing"
		case s.State == StateAuditing:
			ps.State = "auditing"
		case s.State == StateRetired || s.State == StateExpired:
			ps.State = "retired"
		default:
			ps.State, ps.Detail = "unavailable", truncateDetail(s.State)
		}
		out = append(out, ps)
	}
	return out
}

func truncateDetail(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}
