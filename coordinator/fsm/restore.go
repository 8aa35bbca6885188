package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// MaxRestoreSkew bounds how far ahead of the restoring leader's time (its
// wall clock, or the live state's time when that is later) a restored
// snapshot's times may be: a snapshot whose time lies further ahead would
// freeze the state machine's clock (commands never move it backwards), so
// leases and reboot deadlines would stop expiring and hosts stop going
// silent.
const MaxRestoreSkew = 5 * time.Minute

// ErrSnapshotFuture is wrapped by PrepareRestore's refusal of a snapshot
// whose times lie beyond MaxRestoreSkew.
var ErrSnapshotFuture = errors.New("fsm: snapshot from the future")

// Carried is what PrepareRestore carried forward from the live state into
// a snapshot about to be restored.
type Carried struct {
	// Slots are the live reboot slots the snapshot lacked (or held under
	// an older grant), as "datacenter/host".
	Slots []string
	// Datacenters are the datacenters the snapshot lacked, carried for
	// the slots held in them.
	Datacenters []string
	// Tokens counts the datacenters whose next fencing token was raised
	// to the live one.
	Tokens int
}

// PrepareRestore returns snapshot data (see Snapshot) made safe to restore
// over the live state of f, failing closed:
//
//   - every reboot slot held now is held after the restore: a host that is
//     rebooting keeps counting against its datacenter's limit (the slot,
//     its holder's host record when the snapshot lacks it or has it in
//     another datacenter, and its datacenter when the snapshot lacks it);
//     a live slot replaces the snapshot's slot of the same host when its
//     grant is newer;
//   - fencing tokens never go backwards: each datacenter's next token is
//     the larger of the live one and the snapshot's, and so is a host's
//     last token; the event ids and the state's time never go backwards
//     either;
//   - the state's Raft index is the live one (the restore takes a later
//     index), so that no node claims to have applied more than it has.
//
// A snapshot whose time, or a host's last heartbeat or registration, lies
// more than MaxRestoreSkew after the later of wall and the live state's
// time is refused (ErrSnapshotFuture), as is one that does not decode.
// The snapshot keeps its format version. The caller must keep commands
// from being applied between PrepareRestore and the restore itself.
func (f *FSM) PrepareRestore(data []byte, wall time.Time) ([]byte, Carried, error) {
	var c Carried
	var ver struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(data, &ver); err != nil {
		return nil, c, fmt.Errorf("fsm: prepare restore: %w", err)
	}
	file := New()
	if err := file.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		return nil, c, fmt.Errorf("fsm: prepare restore: %w", err)
	}
	if err := file.Halted(); err != nil {
		return nil, c, fmt.Errorf("fsm: prepare restore: %w", err)
	}
	st := file.state
	f.mu.RLock()
	defer f.mu.RUnlock()
	live := f.state
	bound := wall
	if live.Now.After(bound) {
		bound = live.Now
	}
	if err := CheckSnapshotTimes(st, bound.Add(MaxRestoreSkew)); err != nil {
		return nil, c, err
	}
	for _, name := range sortedKeys(live.Datacenters) {
		ldc := live.Datacenters[name]
		fdc := st.Datacenters[name]
		if fdc == nil {
			if len(ldc.Slots) == 0 {
				continue
			}
			fdc = &Datacenter{Name: ldc.Name, Tier: ldc.Tier, Policy: ldc.Policy, PauseReason: ldc.PauseReason,
				NextToken: ldc.NextToken, Slots: map[string]*Slot{}, Targets: ldc.Targets}
			st.Datacenters[name] = fdc
			c.Datacenters = append(c.Datacenters, name)
		}
		if ldc.NextToken > fdc.NextToken {
			fdc.NextToken = ldc.NextToken
			c.Tokens++
		}
		for _, holder := range sortedKeys(ldc.Slots) {
			ls := ldc.Slots[holder]
			if fs := fdc.Slots[holder]; fs == nil || fs.Token < ls.Token {
				fdc.Slots[holder] = ls
				c.Slots = append(c.Slots, name+"/"+holder)
			}
			if lh := live.Hosts[holder]; lh != nil {
				if fh := st.Hosts[holder]; fh == nil || fh.Datacenter != name {
					st.Hosts[holder] = lh
				}
			}
		}
	}
	for id, fh := range st.Hosts { // fh is the snapshot's, or live and left alone
		if lh := live.Hosts[id]; lh != nil && lh != fh && lh.LastToken > fh.LastToken {
			fh.LastToken = lh.LastToken
		}
	}
	if live.NextEventID > st.NextEventID {
		st.NextEventID = live.NextEventID
	}
	if live.Now.After(st.Now) {
		st.Now = live.Now
	}
	st.Index = live.Index
	sort.Strings(c.Datacenters)
	out, err := json.Marshal(snapshotHeader{V: ver.V, State: st})
	if err != nil {
		return nil, c, fmt.Errorf("fsm: prepare restore: %w", err)
	}
	return out, c, nil
}

// CheckSnapshotTimes returns an error wrapping ErrSnapshotFuture when the
// state's time, or a host's last heartbeat or registration, lies after
// notAfter.
func CheckSnapshotTimes(st *State, notAfter time.Time) error {
	if st.Now.After(notAfter) {
		return fmt.Errorf("%w: its time %s is later than %s (this leader's time plus %s); a restored clock this far ahead would stop leases from expiring",
			ErrSnapshotFuture, st.Now.UTC().Format(time.RFC3339), notAfter.UTC().Format(time.RFC3339), MaxRestoreSkew)
	}
	for _, id := range sortedKeys(st.Hosts) {
		h := st.Hosts[id]
		if t := h.lastHeard(); t.After(notAfter) {
			return fmt.Errorf("%w: host %q was heard from at %s, later than %s (this leader's time plus %s)",
				ErrSnapshotFuture, id, t.UTC().Format(time.RFC3339), notAfter.UTC().Format(time.RFC3339), MaxRestoreSkew)
		}
	}
	return nil
}
