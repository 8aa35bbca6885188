package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/strictjson"
)

// StateFile is the file in the state directory that lists what the agent
// installed, so that cleanup never removes what it did not create.
const StateFile = "installed.json"

// stateSchema is the format version of StateFile.
const stateSchema = 1

// maxStateSize bounds the state file read.
const maxStateSize = 1 << 20

// The install methods of a Record.
const (
	methodDpkg   = "dpkg"
	methodBundle = "bundle"
)

// Record is what the agent installed for one kernel release.
type Record struct {
	// Release is the kernel release (uname -r).
	Release string `json:"release"`
	// Method is "dpkg" or "bundle".
	Method string `json:"method"`
	// Package and Version name the dpkg package installed.
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	// Files are the files the agent created, relative to the root
	// (boot/vmlinuz-<release>, boot/initrd.img-<release>).
	Files []string `json:"files,omitempty"`
	// Modules is the module tree the agent created, relative to the root
	// (lib/modules/<release>), and ModulesDigest the digest of its content.
	Modules       string `json:"modules,omitempty"`
	ModulesDigest string `json:"modules_digest,omitempty"`
	// RunningAtInstall is the kernel that ran when this one was installed:
	// the previous kernel once this one runs.
	RunningAtInstall string `json:"running_at_install,omitempty"`
	// Complete is set once the install finished; until then the record is
	// the intent written before the first change.
	Complete bool      `json:"complete,omitempty"`
	Updated  time.Time `json:"updated"`
}

// state is the content of StateFile.
type state struct {
	Schema  int                `json:"schema"`
	Kernels map[string]*Record `json:"kernels"`
}

func (in *Installer) statePath() string { return filepath.Join(in.cfg.StateDir, StateFile) }

// loadState reads StateFile; a missing file is an empty state. A file that
// cannot be decoded is an error: the agent must not guess what it owns.
func (in *Installer) loadState() (*state, error) {
	st := &state{Schema: stateSchema, Kernels: map[string]*Record{}}
	data, err := os.ReadFile(in.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	if err := strictjson.Decode(data, maxStateSize, st); err != nil {
		return nil, fmt.Errorf("install: %s: %w", in.statePath(), err)
	}
	if st.Schema != stateSchema {
		return nil, fmt.Errorf("install: %s: schema %d, this agent reads schema %d", in.statePath(), st.Schema, stateSchema)
	}
	if st.Kernels == nil {
		st.Kernels = map[string]*Record{}
	}
	for k, r := range st.Kernels {
		if r == nil || r.Release != k || checkRelease(k) != nil {
			return nil, fmt.Errorf("install: %s: bad record %q", in.statePath(), k)
		}
		for _, f := range append(append([]string(nil), r.Files...), r.Modules) {
			if f != "" && !filepath.IsLocal(f) {
				return nil, fmt.Errorf("install: %s: record %q names %q outside the root", in.statePath(), k, f)
			}
		}
	}
	return st, nil
}

// saveState writes StateFile durably.
func (in *Installer) saveState(st *state) error {
	st.Schema = stateSchema
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := os.MkdirAll(in.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := fsutil.WriteFileAtomic(in.statePath(), append(data, '\n'), 0o600, false); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// putRecord stores r (stamped now) in the state file.
func (in *Installer) putRecord(r Record) error {
	st, err := in.loadState()
	if err != nil {
		return err
	}
	r.Updated = in.cfg.Now()
	st.Kernels[r.Release] = &r
	return in.saveState(st)
}
