// Package mitigate applies signed bpf-lsm mitigation policies (DESIGN §6)
// on a host. The Manager is the one owner of the host's policy state: the
// accepted documents and the operator's retirements (each with the
// version retired) in its state directory, written durably, and the pins
// under <bpffs>/<policy-id>/ that keep enforcement alive across agent
// restarts. A document becomes a policy only through policy.Open (a
// policy.Verified); Reconcile — at start, on every heartbeat, after every
// gossip delivery and when the nearest expiry passes — unpins whatever is
// retired, expired, fixed by the running kernel, no longer signed by a
// trusted key or pinned without a stored document, and pins what is
// desired, after proving that bpf-lsm works. What it reports is what is
// pinned (wire.PolicyState), never what it believes.
//
// The kernel side is an Enforcer (NewBPFEnforcer in production, a fake in
// tests).
package mitigate

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/strictjson"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Defaults for Config.
const (
	DefaultBPFFS = "/sys/fs/bpf/kroll"
	// DefaultStateDir is the agent daemon's (state_dir
	// /var/lib/kroll-agent, plus "mitigations"): one-shot commands and
	// the daemon share the state and the pins.
	DefaultStateDir = "/var/lib/kroll-agent/mitigations"
)

// ErrRejected is wrapped by Apply's errors for a policy that was refused
// (bad or missing signature, untrusted key, invalid, not newer, retired).
// Nothing of it is written or loaded.
var ErrRejected = errors.New("policy rejected")

// ErrRetired is wrapped (with ErrRejected) by the errors for a policy
// version that the operator retired.
var ErrRetired = errors.New("policy version retired")

// ErrNotInstalled is returned (wrapped) by Enforcer.Read for a policy
// without pins.
var ErrNotInstalled = errors.New("policy not installed")

// ErrPins is wrapped by the errors of Reconcile and List when the pins
// cannot be listed or read: what is in force is then not known. Every
// other error of theirs leaves the statuses they return accurate.
var ErrPins = errors.New("cannot read the pinned policies")

// ErrDamagedRetirement is wrapped by the errors about a retirement record
// that does not decode: the policy counts as retired at every version
// until the coordinator's next retirement of it rewrites the record.
var ErrDamagedRetirement = errors.New("retirement record damaged")

// SignedPolicy is a policy document (YAML or JSON) and its detached
// signature (the POLICY.sig file).
type SignedPolicy struct {
	// Source names the document in messages, e.g. its file name.
	Source    string
	Document  []byte
	Signature []byte
}

// Status is the state of one policy on this host: what is pinned and
// verified, never what the manager believes.
type Status struct {
	Source  string `json:"source,omitempty"`
	ID      string `json:"id,omitempty"`
	Version int64  `json:"version,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Mode    string `json:"mode,omitempty"`
	// State is the policy's state (enforcing and auditing only when it is
	// pinned).
	State wire.PolicyState `json:"state"`
	// Detail says why a policy is retired, unavailable or rejected, or
	// that a pinned policy is about to be removed.
	Detail   string        `json:"detail,omitempty"`
	Counters *bpf.Counters `json:"counters,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
}

// String is the state and its detail, for humans.
func (s Status) String() string {
	if s.Detail == "" {
		return string(s.State)
	}
	return string(s.State) + ": " + s.Detail
}

// Enforcer is the kernel side: it installs policies as pinned bpf-lsm
// programs and reads them back.
type Enforcer interface {
	// Available returns nil if bpf-lsm works on this host, else an error
	// saying why and what to change.
	Available(ctx context.Context) error
	// Install loads, configures, attaches and pins the verified policy,
	// or updates the pinned maps in place when its ID is already
	// installed. Unresolvable allow-list paths are warnings.
	Install(ctx context.Context, v policy.Verified) (warnings []string, err error)
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
	// Kernel is the version of the running kernel; when nil it is read
	// from Running.
	Kernel *kversion.Version
	// Running is the running kernel, read once by New when Kernel is
	// nil; running.ProcFS{} (/proc) when nil.
	Running running.Kernel
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Enforcer is the kernel side; NewBPFEnforcer(BPFFS) when nil.
	Enforcer Enforcer
	// WatchInterval is how often Watch looks for installed and removed
	// policies; one second when zero.
	WatchInterval time.Duration
}

// Manager is the one owner of the host's policy state: the accepted
// documents and retirements in its state directory and the pins in bpffs.
// Its methods are safe for concurrent use; they are serialized.
type Manager struct {
	trusted       []ed25519.PublicKey
	stateDir      string
	kernel        kversion.Version
	now           func() time.Time
	enf           Enforcer
	watchInterval time.Duration

	mu sync.Mutex
	// pinned is the version this process installed per id: a stored
	// version that differs (or any after a restart) is installed again,
	// which adopts existing pins and updates their maps.
	pinned map[string]int64
}

// New returns a Manager for cfg.
func New(cfg Config) (*Manager, error) {
	m := &Manager{trusted: cfg.Trusted, stateDir: cfg.StateDir, now: cfg.Now, enf: cfg.Enforcer, watchInterval: cfg.WatchInterval,
		pinned: map[string]int64{}}
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
		rk := cfg.Running
		if rk == nil {
			rk = running.ProcFS{}
		}
		k, err := rk.Version()
		if err != nil {
			return nil, fmt.Errorf("mitigate: running kernel version: %w", err)
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

// retirement is a retirement file: the operator retired ID at Version.
type retirement struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

// maxRetirementSize bounds a retirement record.
const maxRetirementSize = 4096

// decodeRetirement decodes the retirement record of id strictly: one JSON
// object with exactly the known fields, the id it is stored under and a
// version of at least 1.
func decodeRetirement(b []byte, id string) (retirement, error) {
	var r retirement
	if err := strictjson.Decode(b, maxRetirementSize, &r); err != nil {
		return retirement{}, err
	}
	if r.ID != id {
		return retirement{}, fmt.Errorf("record of %q stored as %q", r.ID, id)
	}
	if r.Version < 1 {
		return retirement{}, fmt.Errorf("version %d, want at least 1", r.Version)
	}
	return r, nil
}

// retiredAt is what the host holds of a retirement of one policy.
type retiredAt struct {
	// exists: there is a record.
	exists bool
	// version is the retired version (valid unless damaged).
	version int64
	// damaged, if not nil, says why the record does not decode; the
	// policy then counts as retired at every version.
	damaged error
}

// refuses reports whether version v of the policy is retired.
func (r retiredAt) refuses(v int64) bool { return r.exists && (r.damaged != nil || v <= r.version) }

// String describes the retirement for errors and statuses.
func (r retiredAt) String() string {
	if r.damaged != nil {
		return fmt.Sprintf("%v (%v): every version is refused until the coordinator retires it again", ErrDamagedRetirement, r.damaged)
	}
	return fmt.Sprintf("retired version %d", r.version)
}

func (m *Manager) statePath(id string) string {
	return filepath.Join(m.stateDir, id+".json")
}

// retiredDir holds one file per retired policy (a directory, so that no
// policy id can collide with it).
func (m *Manager) retiredDir() string { return filepath.Join(m.stateDir, "retired") }

func (m *Manager) retiredPath(id string) string { return filepath.Join(m.retiredDir(), id+".json") }

func validID(id string) error {
	if strings.ContainsAny(id, "/\x00") || id == "" || id == "." || id == ".." {
		return fmt.Errorf("mitigate: invalid policy id %q", id)
	}
	return nil
}

// Open verifies a signed document against the trusted keys: the one way a
// document becomes a policy here. Errors wrap ErrRejected.
func (m *Manager) Open(d SignedPolicy) (policy.Verified, error) {
	v, err := policy.Open(d.Document, d.Signature, m.trusted)
	if err != nil {
		return v, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return v, nil
}

// Apply opens (verifies) docs and applies them as ApplyVerified does; a
// document that does not open gets State rejected. The error joins every
// document's problem.
func (m *Manager) Apply(ctx context.Context, docs []SignedPolicy) ([]Status, error) {
	return m.apply(ctx, docs, false)
}

// ApplyOnly is Apply for a one-shot command: it reconciles only the
// policies in docs and leaves every other policy and its pins alone (a
// command given only some of the trusted keys must not unpin what the
// others signed; the daemon owns the rest).
func (m *Manager) ApplyOnly(ctx context.Context, docs []SignedPolicy) ([]Status, error) {
	return m.apply(ctx, docs, true)
}

func (m *Manager) apply(ctx context.Context, docs []SignedPolicy, only bool) ([]Status, error) {
	var (
		vs   []policy.Verified
		errs []error
	)
	out := make([]Status, len(docs))
	idx := make([]int, 0, len(docs))
	for i, d := range docs {
		v, err := m.Open(d)
		if err != nil {
			out[i] = Status{Source: d.Source, State: wire.PolicyRejected, Detail: err.Error()}
			if p, derr := policy.Decode(d.Document, time.Time{}); derr == nil {
				out[i].ID, out[i].Version, out[i].Kind, out[i].Mode = p.ID, p.Version, string(p.Kind), string(p.Mode)
			}
			errs = append(errs, fmt.Errorf("%s: %w", d.Source, err))
			continue
		}
		vs = append(vs, v)
		idx = append(idx, i)
	}
	sts, err := m.applyVerified(ctx, vs, only)
	for j, i := range idx {
		out[i] = sts[j]
		out[i].Source = docs[i].Source
	}
	if err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// ApplyVerified accepts verified policies that are signed by a key the
// manager still trusts, newer than (or identical to) the stored version
// and not retired, stores them, installs them, then reconciles everything
// (see Reconcile). It returns one Status per policy: what is pinned after
// the reconcile. A rejected policy gets State rejected and nothing of it
// is written or loaded. If bpf-lsm is unavailable the accepted policies
// are stored, their State is unavailable and the error is non-nil.
func (m *Manager) ApplyVerified(ctx context.Context, vs []policy.Verified) ([]Status, error) {
	return m.applyVerified(ctx, vs, false)
}

// applyVerified is ApplyVerified; with only it reconciles only the
// policies of vs.
func (m *Manager) applyVerified(ctx context.Context, vs []policy.Verified, only bool) ([]Status, error) {
	// The daemon keeps running after loading: give back the parsed kernel
	// BTF (several MiB) once the policies are in.
	defer bpf.ReleaseCaches()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, len(vs))
	unlock, err := m.lockState(ctx)
	if err != nil {
		for i, v := range vs {
			p := v.Policy()
			out[i] = Status{ID: p.ID, Version: p.Version, Kind: string(p.Kind), Mode: string(p.Mode), State: wire.PolicyUnavailable, Detail: err.Error()}
		}
		return out, err
	}
	defer unlock()
	var errs []error
	var accepted []int
	var scope map[string]bool
	if only {
		scope = map[string]bool{}
		for _, v := range vs {
			scope[v.Policy().ID] = true
		}
	}
	for i, v := range vs {
		p := v.Policy()
		out[i] = Status{ID: p.ID, Version: p.Version, Kind: string(p.Kind), Mode: string(p.Mode)}
		if err := m.accept(v); err != nil {
			out[i].State, out[i].Detail = wire.PolicyRejected, err.Error()
			errs = append(errs, fmt.Errorf("policy %s v%d: %w", p.ID, p.Version, err))
			continue
		}
		if err := m.store(p.ID, v); err != nil {
			out[i].State, out[i].Detail = wire.PolicyUnavailable, err.Error()
			errs = append(errs, err)
			continue
		}
		// Installed again even if this process pinned the same version
		// (an explicit apply re-resolves allow-lists).
		delete(m.pinned, p.ID)
		accepted = append(accepted, i)
	}
	sts, err := m.reconcileLocked(ctx, scope)
	byID := make(map[string]Status, len(sts))
	for _, st := range sts {
		byID[st.ID] = st
	}
	for _, i := range accepted {
		st, ok := byID[out[i].ID]
		if !ok {
			st = out[i]
			st.State, st.Detail = wire.PolicyUnavailable, "not pinned"
		}
		out[i] = st
		if err == nil && !st.State.InForce() && st.State != wire.PolicyRetired {
			errs = append(errs, fmt.Errorf("policy %s: %s", st.ID, st))
		}
	}
	if err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// accept checks a verified policy against the host's state: signed by a
// key trusted now, not retired, newer than (or identical to) the stored
// version of the same ID.
func (m *Manager) accept(v policy.Verified) error {
	p := v.Policy()
	if v.IsZero() {
		return fmt.Errorf("%w: not a verified policy", ErrRejected)
	}
	if err := validID(p.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if !v.TrustedBy(m.trusted) {
		return fmt.Errorf("%w: signing key %s is not trusted", ErrRejected, v.KeyID())
	}
	if r, err := m.retired(p.ID); err != nil {
		return err
	} else if r.refuses(p.Version) {
		return fmt.Errorf("%w: %w: version %d: %s", ErrRejected, ErrRetired, p.Version, r)
	}
	old, _, err := m.load(p.ID)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		a, err1 := p.Canonical()
		b, err2 := old.Canonical()
		if err1 == nil && err2 == nil && string(a) == string(b) {
			break
		}
		if err := p.Supersedes(old); err != nil {
			return fmt.Errorf("%w: installed version %d: %w", ErrRejected, old.Version, err)
		}
	}
	return nil
}

// Check reports whether v would be news to this host: nil if it is newer
// than the stored version and not retired, else an error wrapping
// policy.ErrNotNewer or ErrRetired (both with ErrRejected).
func (m *Manager) Check(v policy.Verified) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := v.Policy()
	if err := validID(p.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if r, err := m.retired(p.ID); err != nil {
		return err
	} else if r.refuses(p.Version) {
		return fmt.Errorf("%w: %w: policy %s version %d: %s", ErrRejected, ErrRetired, p.ID, p.Version, r)
	}
	old, _, err := m.load(p.ID)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	if err := p.Supersedes(old); err != nil {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return nil
}

func (m *Manager) store(id string, v policy.Verified) error {
	return m.storeRaw(id, v.Document(), v.Signature())
}

// storeRaw writes a state file durably (fsync + atomic rename).
func (m *Manager) storeRaw(id string, doc, sig []byte) error {
	if err := os.MkdirAll(m.stateDir, 0o700); err != nil {
		return fmt.Errorf("mitigate: state dir: %w", err)
	}
	b, err := json.Marshal(stored{Document: string(doc), Signature: json.RawMessage(sig)})
	if err != nil {
		return fmt.Errorf("mitigate: store %s: %w", id, err)
	}
	if err := fsutil.WriteFileAtomic(m.statePath(id), b, 0o600, false); err != nil {
		return fmt.Errorf("mitigate: store %s: %w", id, err)
	}
	return nil
}

// errDamagedState is wrapped by load's errors for a state file that was
// read but does not decode.
var errDamagedState = errors.New("stored policy damaged")

// load reads and decodes a stored policy (not verified: see open).
func (m *Manager) load(id string) (policy.Policy, stored, error) {
	var s stored
	b, err := os.ReadFile(m.statePath(id))
	if err != nil {
		return policy.Policy{}, s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return policy.Policy{}, s, fmt.Errorf("mitigate: state of %s: %w: %w", id, errDamagedState, err)
	}
	p, err := policy.Decode([]byte(s.Document), time.Time{})
	if err != nil {
		return p, s, fmt.Errorf("mitigate: state of %s: %w: %w", id, errDamagedState, err)
	}
	return p, s, nil
}

// retired returns what the host holds of a retirement of id; an error
// means the record could not be read (nothing is known).
func (m *Manager) retired(id string) (retiredAt, error) {
	b, err := os.ReadFile(m.retiredPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return retiredAt{}, nil
	}
	if err != nil {
		return retiredAt{}, fmt.Errorf("mitigate: retirement of %s: %w", id, err)
	}
	r, err := decodeRetirement(b, id)
	if err != nil {
		// A damaged record must not un-retire: every version is refused
		// until a retirement rewrites it.
		return retiredAt{exists: true, damaged: err}, nil
	}
	return retiredAt{exists: true, version: r.Version}, nil
}

// Retired returns the version at which the operator retired id, if any.
// A damaged record is retired (true) at an unknown version: the error
// wraps ErrDamagedRetirement.
func (m *Manager) Retired(id string) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.retired(id)
	if err != nil {
		return 0, false, err
	}
	if r.damaged != nil {
		return 0, true, fmt.Errorf("mitigate: policy %s: %w: %w", id, ErrDamagedRetirement, r.damaged)
	}
	return r.version, r.exists, nil
}

// Retire records durably that the operator retired policy id at version
// (a later, lower version does not lower the record; a damaged record is
// rewritten), deletes a stored document of that version or older, and
// reconciles: the policy's pins are removed and any document of id with a
// version <= version is refused from then on, also after a restart.
func (m *Manager) Retire(ctx context.Context, id string, version int64) error {
	if err := validID(id); err != nil {
		return err
	}
	if version < 1 {
		return fmt.Errorf("mitigate: retire %s: version %d, want at least 1", id, version)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	unlock, err := m.lockState(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	ra, err := m.retired(id)
	if err != nil {
		return err
	}
	ok, r := ra.exists, ra.version
	if !ok || ra.damaged != nil || version > r {
		if err := os.MkdirAll(m.retiredDir(), 0o700); err != nil {
			return fmt.Errorf("mitigate: %w", err)
		}
		b, err := json.Marshal(retirement{ID: id, Version: version})
		if err != nil {
			return fmt.Errorf("mitigate: retire %s: %w", id, err)
		}
		if err := fsutil.WriteFileAtomic(m.retiredPath(id), b, 0o600, false); err != nil {
			return fmt.Errorf("mitigate: retire %s: %w", id, err)
		}
		if !ok {
			if err := fsutil.SyncDir(m.stateDir); err != nil {
				return fmt.Errorf("mitigate: retire %s: %w", id, err)
			}
		}
		r = version
	}
	if p, _, err := m.load(id); err == nil && p.Version <= r || err != nil && !errors.Is(err, os.ErrNotExist) {
		if err := os.Remove(m.statePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mitigate: %w", err)
		}
		if err := fsutil.SyncDir(m.stateDir); err != nil {
			return fmt.Errorf("mitigate: %w", err)
		}
	}
	_, err = m.reconcileLocked(ctx, nil)
	return err
}

// verdict is what a policy should be on this host.
type verdict struct {
	st   Status
	v    policy.Verified
	want bool // to be pinned
	// unchecked: the manager has no trusted keys, so the signature was
	// not checked and nothing is to be changed.
	unchecked bool
	// undecided: the stored state could not be read or decoded; the pins
	// are left as they are and st says why.
	undecided bool
}

// judge decides from the stored state alone what policy id should be:
// pinned if its document still verifies with the trusted keys, is not
// retired, not expired and not fixed by the running kernel; known is false
// when the host holds neither a document nor a retirement of id. An error
// means the stored state could not be read or decoded (vd.undecided): no
// decision, the pins stay as they are. A damaged retirement record is a
// decision (retired) and an error too, to be reported.
func (m *Manager) judge(id string) (vd verdict, known bool, err error) {
	vd.st.ID = id
	r, err := m.retired(id)
	if err != nil {
		vd.undecided = true
		vd.st.State, vd.st.Detail = wire.PolicyUnavailable, err.Error()
		return vd, true, err
	}
	var damaged error
	if r.damaged != nil {
		damaged = fmt.Errorf("mitigate: policy %s: %w: %w", id, ErrDamagedRetirement, r.damaged)
	}
	p, s, err := m.load(id)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !r.exists {
			return vd, false, nil
		}
		vd.st.Version, vd.st.State, vd.st.Detail = r.version, wire.PolicyRetired, "retired by the operator"
		if damaged != nil {
			vd.st.Detail = "retired by the operator: " + r.String()
		}
		return vd, true, damaged
	case err != nil:
		vd.undecided = true
		vd.st.State, vd.st.Detail = wire.PolicyRejected, err.Error()
		if !errors.Is(err, errDamagedState) {
			vd.st.State = wire.PolicyUnavailable
		}
		return vd, true, err
	}
	vd.st.Version, vd.st.Kind, vd.st.Mode = p.Version, string(p.Kind), string(p.Mode)
	var v policy.Verified
	if len(m.trusted) == 0 {
		vd.unchecked = true
	} else if v, err = policy.Open([]byte(s.Document), s.Signature, m.trusted); err != nil {
		vd.st.State, vd.st.Detail = wire.PolicyRejected, "no longer verifies with the trusted keys: "+err.Error()
		return vd, true, damaged
	}
	if r.refuses(p.Version) {
		vd.st.State, vd.st.Detail = wire.PolicyRetired, fmt.Sprintf("retired by the operator at version %d", r.version)
		if damaged != nil {
			vd.st.Detail = "retired by the operator: " + r.String()
		}
		return vd, true, damaged
	}
	// Verified and not retired by the operator: news to other hosts
	// (Documents) even when expired or fixed here.
	vd.v = v
	fixed, err := p.Fixed(m.kernel)
	switch {
	case err != nil:
		vd.st.State, vd.st.Detail = wire.PolicyRejected, err.Error()
	case fixed:
		vd.st.State, vd.st.Detail = wire.PolicyRetired, "kernel contains the fix"
	case !p.Expires.After(m.now()):
		vd.st.State, vd.st.Detail = wire.PolicyRetired, "expired at "+p.Expires.UTC().Format(time.RFC3339)
	default:
		vd.want = !vd.unchecked
	}
	return vd, true, nil
}

// ids returns every id the host knows: stored documents, retirements and
// pins (when the Enforcer lists them). stateErr says the state directory
// could not be read (the ids are then those of the pins and what could be
// read): nothing may be unpinned on that basis. err, wrapping ErrPins,
// says the pins could not be listed.
func (m *Manager) ids() (ids []string, stateErr, err error) {
	set := map[string]bool{}
	var stateErrs []error
	for _, dir := range []string{m.stateDir, m.retiredDir()} {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			stateErrs = append(stateErrs, fmt.Errorf("mitigate: %w", err))
		}
		for _, e := range ents {
			if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() && !strings.HasPrefix(id, ".") {
				set[id] = true
			}
		}
	}
	if l, ok := m.enf.(InstalledLister); ok {
		pinned, err := l.Installed()
		if err != nil {
			return nil, nil, fmt.Errorf("mitigate: %w: %w", ErrPins, err)
		}
		for _, id := range pinned {
			set[id] = true
		}
	}
	return slices.Sorted(maps.Keys(set)), errors.Join(stateErrs...), nil
}

// observe completes vd.st with what is pinned: a policy is enforcing or
// auditing only when its pins are there. An error (wrapping ErrPins) says
// the pins of a policy could not be read.
func (m *Manager) observe(ctx context.Context, vd verdict, known bool, availErr func() error) (Status, bool, error) {
	st := vd.st
	mode, c, err := m.enf.Read(st.ID)
	switch {
	case err == nil:
		st.State, st.Counters = wire.PolicyAuditing, &c
		if mode == bpf.Enforce {
			st.State = wire.PolicyEnforcing
		}
		switch {
		case !known:
			st.Detail = "pinned without a stored policy"
		case vd.undecided:
			st.Detail = "left pinned: the stored state cannot be judged: " + vd.st.Detail
		case vd.unchecked && vd.st.State == "":
			st.Detail = "signature not checked (no trusted keys given)"
		case !vd.want:
			st.Detail = "pinned but " + vd.st.String() + "; not yet removed"
		default:
			st.Detail = ""
		}
		return st, true, nil
	case !errors.Is(err, ErrNotInstalled):
		st.State, st.Detail = wire.PolicyUnavailable, err.Error()
		return st, true, fmt.Errorf("mitigate: policy %s: %w: %w", st.ID, ErrPins, err)
	case !known:
		return st, false, nil
	case vd.want || vd.unchecked && vd.st.State == "":
		st.State, st.Detail = wire.PolicyUnavailable, "not loaded"
		if aerr := availErr(); aerr != nil {
			st.Detail = aerr.Error()
		}
	}
	return st, true, nil
}

// Reconcile makes the pins match the stored state and reports what is
// pinned: every policy that is retired, expired, fixed by the running
// kernel, no longer signed by a trusted key, or pinned without a stored
// document is unpinned; every policy that should be in force and is not
// pinned (or was pinned at another version, or not by this process) is
// installed. A policy whose stored state cannot be read or decoded keeps
// its pins (its status says why). The daemon calls it at start, on every
// heartbeat, after every gossip delivery and when the nearest expiry
// passes (Run).
//
// It returns a Status per policy together with the joined errors of
// whatever failed (bpf-lsm unavailable, an install or unpin, a state
// file); only when the pins cannot be listed (ErrPins) are there no
// statuses. Without trusted keys nothing can be verified: the pins are
// reported as unverified and left as they are. It holds the state
// directory's lock (shared with one-shot commands) while it works.
func (m *Manager) Reconcile(ctx context.Context) ([]Status, error) {
	defer bpf.ReleaseCaches()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.trusted) == 0 {
		return m.listUnverified(ctx)
	}
	unlock, err := m.lockState(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return m.reconcileLocked(ctx, nil)
}

// unverifiedDetail marks what a manager without trusted keys reports.
const unverifiedDetail = "not verified: no trusted policy keys configured; the pins are left as they are"

// listUnverified is Reconcile without trusted keys: List, with the pins
// marked unverified.
func (m *Manager) listUnverified(ctx context.Context) ([]Status, error) {
	sts, err := m.listLocked(ctx)
	for i, st := range sts {
		if !st.State.InForce() {
			continue
		}
		if st.Detail == "" || strings.HasPrefix(st.Detail, "signature not checked") {
			sts[i].Detail = unverifiedDetail
		} else {
			sts[i].Detail = unverifiedDetail + "; " + st.Detail
		}
	}
	return sts, err
}

// reconcileLocked reconciles the policies in only (every policy when nil).
func (m *Manager) reconcileLocked(ctx context.Context, only map[string]bool) ([]Status, error) {
	if len(m.trusted) == 0 {
		// Nothing can be verified: changing the pins would only remove.
		return nil, errors.New("mitigate: reconcile: no trusted policy keys")
	}
	return m.pass(ctx, only, true)
}

// List reports, without changing anything, every policy the host knows,
// ordered by ID: enforcing or auditing only when pinned (with a Detail
// when the pins are due for removal), else why not. Like Reconcile it
// returns the statuses with the joined errors; only when the pins cannot
// be listed (ErrPins) are there none.
func (m *Manager) List(ctx context.Context) ([]Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.listLocked(ctx)
}

func (m *Manager) listLocked(ctx context.Context) ([]Status, error) {
	return m.pass(ctx, nil, false)
}

// pass judges every policy the host knows (those in only, when not nil)
// and reports what is pinned; with change it first pins what is to be in
// force and unpins the rest (Reconcile), without it changes nothing
// (List).
func (m *Manager) pass(ctx context.Context, only map[string]bool, change bool) ([]Status, error) {
	ids, stateErr, err := m.ids()
	if err != nil {
		return nil, err
	}
	var (
		errs      []error
		out       []Status
		availErr  error
		availDone bool
	)
	if stateErr != nil {
		if change {
			stateErr = fmt.Errorf("%w (nothing unpinned)", stateErr)
		}
		errs = append(errs, stateErr)
	}
	avail := func() error {
		if !availDone {
			availErr, availDone = m.enf.Available(ctx), true
		}
		return availErr
	}
	for _, id := range ids {
		if only != nil && !only[id] {
			continue
		}
		vd, known, err := m.judge(id)
		if err != nil {
			errs = append(errs, err)
		}
		var warns []string
		switch {
		case !change:
		case vd.undecided:
			// The stored state cannot be read or decoded: neither pin
			// nor unpin on that basis.
		case vd.want:
			// Installed again when this process did not pin this
			// version or the pins went away (a reboot, bpffs unmounted,
			// removed by hand) or hold the other mode.
			mode, _, rerr := m.enf.Read(id)
			if m.pinned[id] != vd.v.Policy().Version || rerr != nil || (mode == bpf.Enforce) != (vd.v.Policy().Mode == policy.ModeEnforce) {
				if aerr := avail(); aerr != nil {
					errs = append(errs, fmt.Errorf("policy %s: %w", id, aerr))
				} else if w, err := m.enf.Install(ctx, vd.v); err != nil {
					errs = append(errs, fmt.Errorf("policy %s: %w", id, err))
					delete(m.pinned, id)
				} else {
					warns = w
					m.pinned[id] = vd.v.Policy().Version
				}
			}
		case stateErr != nil:
			// The state directory could not be listed: a pin may have
			// a stored document this reconcile did not see.
		default:
			delete(m.pinned, id)
			if err := m.enf.Uninstall(id); err != nil {
				errs = append(errs, fmt.Errorf("policy %s: unpin: %w", id, err))
			}
		}
		st, ok, oerr := m.observe(ctx, vd, known, avail)
		if oerr != nil {
			errs = append(errs, oerr)
		}
		if ok {
			st.Warnings = warns
			out = append(out, st)
		}
	}
	return out, errors.Join(errs...)
}

// NextExpiry returns the earliest expiry of a policy that is to be in
// force, or false if there is none.
func (m *Manager) NextExpiry() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids, _, err := m.ids()
	if err != nil {
		return time.Time{}, false
	}
	var next time.Time
	for _, id := range ids {
		vd, _, _ := m.judge(id)
		if !vd.want {
			continue
		}
		if e := vd.v.Policy().Expires; next.IsZero() || e.Before(next) {
			next = e
		}
	}
	return next, !next.IsZero()
}

// Run reconciles when the nearest expiry passes, and at least every
// interval (a wrong or jumping clock must not keep a policy pinned for
// long), until ctx is done. after is the timer (time.After when nil).
func (m *Manager) Run(ctx context.Context, log *slog.Logger, interval time.Duration, after func(time.Duration) <-chan time.Time) {
	if after == nil {
		after = time.After
	}
	for {
		wait := interval
		if next, ok := m.NextExpiry(); ok {
			// A little past the instant: expired means !Expires.After(now).
			if d := next.Sub(m.now()) + time.Millisecond; d < wait {
				wait = max(d, 0)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-after(wait):
		}
		if _, err := m.Reconcile(ctx); err != nil && ctx.Err() == nil {
			log.Warn("mitigations: reconcile", "err", err)
		}
	}
}

// Remove detaches and unpins policy id and deletes its stored state.
func (m *Manager) Remove(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	unlock, err := m.lockState(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	_, statErr := os.Stat(m.statePath(id))
	if err := m.enf.Uninstall(id); err != nil {
		return fmt.Errorf("mitigate: %w", err)
	}
	delete(m.pinned, id)
	if errors.Is(statErr, os.ErrNotExist) {
		return fmt.Errorf("mitigate: policy %q: %w", id, ErrNotInstalled)
	}
	if err := os.Remove(m.statePath(id)); err != nil {
		return fmt.Errorf("mitigate: %w", err)
	}
	return fsutil.SyncDir(m.stateDir)
}

// Restore brings the pins in line with the stored state at start (see
// Reconcile): policies accepted earlier are in force again after a reboot
// (pins do not survive one) and adopted after an agent restart, each
// stored document verified again; retired, expired and untrusted ones are
// unpinned.
func (m *Manager) Restore(ctx context.Context) ([]Status, error) {
	return m.Reconcile(ctx)
}

// Documents returns the stored policies that verify with the trusted keys
// and are not retired by the operator, ordered by id: what the host
// spreads through gossip.
func (m *Manager) Documents() ([]policy.Verified, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ents, err := os.ReadDir(m.stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mitigate: %w", err)
	}
	var out []policy.Verified
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		vd, _, err := m.judge(id)
		if err != nil || vd.v.IsZero() {
			continue
		}
		out = append(out, vd.v)
	}
	return out, nil
}

// WireStatus converts statuses to what heartbeats report. Statuses without
// an id (a document that did not even decode) are left out.
func WireStatus(sts []Status) []wire.PolicyStatus {
	out := make([]wire.PolicyStatus, 0, len(sts))
	for _, s := range sts {
		if s.ID == "" {
			continue
		}
		out = append(out, wire.PolicyStatus{ID: s.ID, Version: s.Version, State: s.State, Detail: truncateDetail(s.Detail)})
	}
	return out
}

func truncateDetail(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}
