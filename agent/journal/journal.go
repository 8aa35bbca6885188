// Package journal is the agent's durable record of where a kernel upgrade
// stands: the phase, the target release, the slot and its fencing token,
// the withdrawn anycast routes, the previous kernel and boot id. It is
// written with fsync and an atomic rename before every step that acts on
// the host, so an agent killed (or a host that lost power) at any point
// resumes at the right step.
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kroll-dev/kroll/agent/anycast"
	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/strictjson"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Schema is the journal format version this build writes and reads.
const Schema = 1

// FileName is the journal's file name in the state directory.
const FileName = "journal.json"

// MaxSize bounds the journal file read.
const MaxSize = 4 << 20

// Journal is the agent's durable state.
type Journal struct {
	// Schema is the format version (Schema).
	Schema int `json:"schema"`
	// Seq counts writes.
	Seq uint64 `json:"seq"`
	// Updated is when the journal was last written.
	Updated time.Time `json:"updated"`
	// Phase is the lifecycle phase (wire.Phase*).
	Phase string `json:"phase"`
	// PhaseSince is when Phase was entered.
	PhaseSince time.Time `json:"phase_since"`
	// Target is the release being rolled out, nil when idle.
	Target *Target `json:"target,omitempty"`
	// Staged is the staged kernel of Target.
	Staged *Staged `json:"staged,omitempty"`
	// Slot is the reboot slot held, nil when none.
	Slot *Slot `json:"slot,omitempty"`
	// Withdrawn is true once the anycast routes were withdrawn; Routes are
	// exactly the routes removed, to be restored after health.
	Withdrawn bool            `json:"withdrawn,omitempty"`
	Routes    []anycast.Route `json:"routes,omitempty"`
	// Previous is the kernel the host ran before the upgrade: the
	// rollback target.
	Previous *Kernel `json:"previous,omitempty"`
	// Policies are the mitigation policies in force before the boot; they
	// must be in force again after it (unless the new kernel retired them).
	Policies []string `json:"policies,omitempty"`
	// Boots are the boots attempted for Target, oldest first.
	Boots []Boot `json:"boots,omitempty"`
	// Rollback is set once the agent decided to return to Previous.
	Rollback bool `json:"rollback,omitempty"`
	// KexecFailed is set when kexec proved unusable for Target; further
	// boots use a full reboot.
	KexecFailed bool `json:"kexec_failed,omitempty"`
	// LoaderDefault is the kernel release made the boot loader's default
	// after it was verified healthy.
	LoaderDefault string `json:"loader_default,omitempty"`
	// Error is the last failure, for status and reports.
	Error string `json:"error,omitempty"`
	// Failures counts consecutive failures of the current phase (staging
	// retries, slot renewals).
	Failures int `json:"failures,omitempty"`
	// Health is the last health verdict.
	Health string `json:"health,omitempty"`
	// ReportedUnhealthy is set once the target's failure was reported,
	// so the coordinator's failure budget counts a host once.
	ReportedUnhealthy bool `json:"reported_unhealthy,omitempty"`
	// Done records the outcome of releases already handled, by release id,
	// so a target is not rolled out twice: "healthy", "failed", "current",
	// "dry-run" or "refused: ...".
	Done map[string]string `json:"done,omitempty"`
}

// Target is a release with its signed manifest.
type Target struct {
	ID string `json:"id"`
	// KernelRelease is the manifest's kernel version (uname -r).
	KernelRelease string `json:"kernel_release"`
	// UpstreamVersion is the manifest's upstream version, if any.
	UpstreamVersion string          `json:"upstream_version,omitempty"`
	Manifest        json.RawMessage `json:"manifest"`
	Signature       json.RawMessage `json:"signature"`
}

// Staged is a staged kernel.
type Staged struct {
	Vmlinuz       string `json:"vmlinuz"`
	Initrd        string `json:"initrd,omitempty"`
	KernelRelease string `json:"kernel_release"`
}

// Slot is a held reboot slot.
type Slot struct {
	Datacenter   string    `json:"datacenter"`
	Token        uint64    `json:"token"`
	LeaseExpires time.Time `json:"lease_expires"`
}

// Kernel is a bootable kernel and the boot that ran it.
type Kernel struct {
	Release string `json:"release"`
	Vmlinuz string `json:"vmlinuz,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	BootID  string `json:"boot_id"`
}

// Boot is one boot attempt.
type Boot struct {
	// Method is kexec, reboot or dry-run.
	Method string `json:"method"`
	// Into is the kernel release booted into.
	Into string `json:"into"`
	// BootIDBefore is the boot id when the boot was started; a different
	// boot id afterwards proves the boot happened.
	BootIDBefore string    `json:"boot_id_before"`
	Started      time.Time `json:"started"`
	// Rollback marks a boot back into the previous kernel.
	Rollback bool `json:"rollback,omitempty"`
	// OneShot is set when the boot loader's one-shot entry was (about to
	// be) set for this boot: a full reboot into Into, once.
	OneShot bool `json:"one_shot,omitempty"`
	// Completed is set once the new boot was observed (or the dry run
	// logged); a later boot attempt starts a new entry.
	Completed bool `json:"completed,omitempty"`
}

// New returns the journal of an agent that has never run.
func New(now time.Time) *Journal {
	return &Journal{Schema: Schema, Phase: wire.PhaseIdle, PhaseSince: now}
}

// LastBoot returns the newest boot attempt, or nil.
func (j *Journal) LastBoot() *Boot {
	if len(j.Boots) == 0 {
		return nil
	}
	return &j.Boots[len(j.Boots)-1]
}

// Clone returns a deep copy of j.
func (j *Journal) Clone() *Journal {
	b, err := json.Marshal(j)
	if err != nil {
		panic(fmt.Sprintf("journal: clone: %v", err)) // plain data; cannot fail
	}
	var c Journal
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("journal: clone: %v", err))
	}
	return &c
}

// Store reads and writes the journal file in a state directory.
type Store struct {
	path string
}

// NewStore returns the store for dir, creating dir (0700) if needed.
func NewStore(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("journal: state directory is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Store{path: filepath.Join(dir, FileName)}, nil
}

// Path returns the journal file's path.
func (s *Store) Path() string { return s.path }

// Load reads the journal; a missing file yields New(now). A journal that
// cannot be decoded or has an unknown schema is an error: the agent must
// not guess where a host upgrade stands.
func (s *Store) Load(now time.Time) (*Journal, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return New(now), nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return Decode(data)
}

// Decode parses a journal file strictly.
func Decode(data []byte) (*Journal, error) {
	var probe struct {
		Schema int `json:"schema"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if probe.Schema != Schema {
		return nil, fmt.Errorf("journal: schema %d, this agent reads schema %d", probe.Schema, Schema)
	}
	var j Journal
	if err := strictjson.Decode(data, MaxSize, &j); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if j.Phase == "" {
		return nil, errors.New("journal: no phase")
	}
	return &j, nil
}

// Save writes j durably (fsync, atomic rename, directory fsync), stamping
// Seq and Updated.
func (s *Store) Save(j *Journal, now time.Time) error {
	j.Schema = Schema
	j.Seq++
	j.Updated = now
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := fsutil.WriteFileAtomic(s.path, append(data, '\n'), 0o600, false); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}
