package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// FSM is the replicated state machine. It implements raft.FSM; reads go
// through View.
//
// An FSM that meets a command or snapshot it cannot apply exactly as its
// writer meant — an unknown command type or format version, an
// undecodable entry — halts (see Halted): it never skips one, which would
// let this replica drift silently from the others. A halted FSM changes
// no more: every later command is refused with the halt's reason, and it
// takes no snapshot (Raft would then compact away the entries it did not
// apply) and restores none; a node restarted with code that knows the
// format replays them.
type FSM struct {
	mu    sync.RWMutex
	state *State
	// applied counts applied commands (for tests and metrics).
	applied uint64
	// halt is why the FSM stopped applying (nil while it applies).
	halt *HaltError
	// lockObs, when set, is told about every hold of mu by applies,
	// snapshots and views (see ObserveLocks).
	lockObs LockObserver
}

// ErrHalted is wrapped by every HaltError.
var ErrHalted = errors.New("fsm: halted")

// HaltError says why the FSM stopped applying: the Raft index and the
// command (or snapshot) it could not apply, and why.
type HaltError struct {
	// Index is the Raft index of the command (0: a snapshot, or a
	// command applied outside Raft).
	Index uint64
	// Type and Version are the command's, as far as they were decoded.
	Type    Type
	Version int
	// Reason says what this code could not apply.
	Reason string
}

// Error implements error.
func (e *HaltError) Error() string {
	what := "command"
	switch {
	case e.Type != "":
		what = fmt.Sprintf("command %q (format v%d)", e.Type, e.Version)
	case e.Version != 0:
		what = fmt.Sprintf("command (format v%d)", e.Version)
	}
	at := ""
	if e.Index != 0 {
		at = fmt.Sprintf(" at Raft index %d", e.Index)
	}
	return fmt.Sprintf("state machine halted%s: %s: %s; this node (formats v1–v%d) applies nothing more until it runs a version that knows it", at, what, e.Reason, FormatVersion)
}

// Unwrap returns ErrHalted.
func (e *HaltError) Unwrap() error { return ErrHalted }

// New returns an FSM with empty state.
func New() *FSM {
	return &FSM{state: newState()}
}

// Halted returns why the FSM stopped applying (a *HaltError), or nil.
func (f *FSM) Halted() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.halt == nil {
		return nil
	}
	return f.halt
}

// haltedResult is the refusal of every command a halted FSM meets.
func (f *FSM) haltedResult() Result {
	res := refused(wire.KindInternal, "%s", f.halt.Error())
	res.Halted = true
	return res
}

// stop halts the FSM (f.mu held) and returns the refusal of the command
// that halted it.
func (f *FSM) stop(h *HaltError) Result {
	f.halt = h
	return f.haltedResult()
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	return f.apply(l.Index, l.Data)
}

// Index returns the Raft index of the last command applied to the state
// (also across snapshot restores): a follower that forwarded a write waits
// for it before it reads its effect. It does not move while halted.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Index
}

// ApplyCommand applies one encoded Command outside Raft (its index is 0)
// and returns its Result. A command this code cannot apply halts the FSM.
func (f *FSM) ApplyCommand(data []byte) Result {
	return f.apply(0, data)
}

// apply decodes and applies the command at Raft index (0: none). The
// version, the type and the payload must all be known and decode, else
// the FSM halts.
func (f *FSM) apply(index uint64, data []byte) Result {
	lt := f.timeLock(LockApply)
	f.mu.Lock()
	lt.locked()
	defer lt.unlocked()
	defer f.mu.Unlock()
	if f.halt != nil {
		return f.haltedResult()
	}
	var c Command
	if err := json.Unmarshal(data, &c); err != nil {
		return f.stop(&HaltError{Index: index, Reason: fmt.Sprintf("undecodable command: %v", err)})
	}
	v := c.V
	if v == 0 {
		v = FormatV1
	}
	if v < FormatV1 || v > FormatVersion {
		return f.stop(&HaltError{Index: index, Type: c.Type, Version: c.V, Reason: fmt.Sprintf("unknown format version %d", c.V)})
	}
	e := registry.byType[c.Type]
	if e == nil {
		return f.stop(&HaltError{Index: index, Type: c.Type, Version: v, Reason: "unknown command type"})
	}
	if !e.known(v) {
		// Written by no code of format v: never applied under rules it
		// was not written for.
		return f.stop(&HaltError{Index: index, Type: c.Type, Version: v, Reason: fmt.Sprintf("unknown command type in format version %d (it is new in version %d)", v, e.since)})
	}
	p, err := e.decode(c.Payload, v)
	if err != nil {
		return f.stop(&HaltError{Index: index, Type: c.Type, Version: v, Reason: fmt.Sprintf("undecodable payload: %v", err)})
	}
	res := f.run(e, v, c.Time, p)
	if index != 0 {
		f.state.Index = index
	}
	return res
}

// run applies a decoded payload of format version v at time now (f.mu
// held). The first command of FormatV3 or later switches the state to the
// flag rule of liveness for good (see State.LivenessByFlag), before it
// runs: a command runs by the rules of its format.
func (f *FSM) run(e *entry, v int, now time.Time, p any) Result {
	f.applied++
	s := f.state
	if now.After(s.Now) {
		s.Now = now.UTC()
	}
	if v >= FormatV3 {
		s.LivenessByFlag = true
	}
	s.format = v
	return e.run(s, p)
}

func (s *State) event(typ, dc, host, format string, args ...any) {
	s.Events = append(s.Events, wire.Event{
		ID: s.NextEventID, Time: s.Now, Type: typ, Datacenter: dc, Host: host,
		Message: fmt.Sprintf(format, args...),
	})
	s.NextEventID++
	// Trim in batches so that recording an event stays O(1) amortized,
	// in place: the backing array is reused, not reallocated per batch
	// (every reader of Events holds the lock and copies what it keeps).
	if len(s.Events) >= MaxEvents+MaxEvents/4 {
		n := copy(s.Events, s.Events[len(s.Events)-MaxEvents:])
		clear(s.Events[n:])
		s.Events = s.Events[:n]
	}
}

// snapshotHeader is the start of a snapshot: the format version, then the
// state's fields at the same level. A version 1 snapshot is the bare
// state.
type snapshotHeader struct {
	V int `json:"v,omitempty"`
	*State
}

// Snapshot implements raft.FSM: it copies the state (cheap relative to the
// log) so that Persist can stream it while Apply goes on. A halted FSM
// takes none: Raft would compact away the entries it did not apply.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	lt := f.timeLock(LockSnapshot)
	f.mu.RLock()
	lt.locked()
	defer lt.unlocked()
	defer f.mu.RUnlock()
	if f.halt != nil {
		return nil, fmt.Errorf("fsm: no snapshot: %w", f.halt)
	}
	data, err := json.Marshal(snapshotHeader{V: FormatVersion, State: f.state})
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return snapshot(data), nil
}

type snapshot []byte

// Persist writes the snapshot to the sink.
func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s snapshot) Release() {}

// Restore implements raft.FSM: it replaces the state with a snapshot,
// streamed from r. A snapshot of a format version this code does not know
// halts the FSM; a halted FSM restores nothing (an older snapshot would
// replay the log from a point it may no longer reach).
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	if err := f.Halted(); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	st := newState()
	dec := json.NewDecoder(r)
	hdr := snapshotHeader{State: st}
	if err := dec.Decode(&hdr); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	if hdr.V < 0 || hdr.V > FormatVersion {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.halt = &HaltError{Version: hdr.V, Reason: fmt.Sprintf("snapshot in unknown format version %d", hdr.V)}
		return fmt.Errorf("fsm: restore: %w", f.halt)
	}
	if st.Datacenters == nil {
		st.Datacenters = map[string]*Datacenter{}
	}
	for _, dc := range st.Datacenters {
		if dc.Slots == nil {
			dc.Slots = map[string]*Slot{}
		}
	}
	if st.Hosts == nil {
		st.Hosts = map[string]*Host{}
	}
	if st.Members == nil {
		st.Members = map[string]*Member{}
	}
	if st.Releases == nil {
		st.Releases = map[string]*Release{}
	}
	if st.Policies == nil {
		st.Policies = map[string]*Policy{}
	}
	if st.Rollouts == nil {
		st.Rollouts = map[string]*Rollout{}
	}
	if st.Trains == nil {
		st.Trains = map[string]*Train{}
	}
	// Release states are new in FormatV5: an older snapshot's releases
	// get the state their rollouts make, as replaying its log does.
	st.deriveReleases(hdr.V < FormatV5)
	st.reindex()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.halt != nil {
		return fmt.Errorf("fsm: restore: %w", f.halt)
	}
	f.state = st
	return nil
}

// View runs fn with read access to the state. fn must not keep references
// into the state after it returns, nor change it.
func (f *FSM) View(fn func(*State)) {
	f.ViewAs(LockView, fn)
}

// ViewAs is View for a caller the lock observer names op (see
// ObserveLocks): the leader's periodic passes name theirs, so that their
// lock holds can be told from the requests'.
func (f *FSM) ViewAs(op string, fn func(*State)) {
	lt := f.timeLock(op)
	f.mu.RLock()
	lt.locked()
	defer lt.unlocked()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Applied returns how many commands were applied.
func (f *FSM) Applied() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// sortedKeys returns the keys of m in order: map iteration order must never
// reach the replicated state.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Exec applies a command given as its typed payload at time now, without
// the JSON encoding of the replicated log: the fleet simulator drives the
// very state machine the coordinator replicates this way, at the speed of
// a function call, in the current FormatVersion (its rules). The
// payload's type selects the command through the
// same registry as the log's (every command has its own payload type); a
// payload of no command halts the FSM, as an unknown command in the log
// does.
func (f *FSM) Exec(now time.Time, payload any) Result {
	lt := f.timeLock(LockApply)
	f.mu.Lock()
	lt.locked()
	defer lt.unlocked()
	defer f.mu.Unlock()
	if f.halt != nil {
		return f.haltedResult()
	}
	e := registry.byPayload[reflect.TypeOf(payload)]
	if e == nil {
		return f.stop(&HaltError{Version: FormatVersion, Reason: fmt.Sprintf("no command takes a %T payload", payload)})
	}
	return f.run(e, FormatVersion, now, payload)
}

// ExecType is Exec for a payload that must be of command type t.
func (f *FSM) ExecType(t Type, now time.Time, payload any) Result {
	if e := registry.byType[t]; e == nil || reflect.TypeOf(payload) != e.payload {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.halt != nil {
			return f.haltedResult()
		}
		return f.stop(&HaltError{Type: t, Version: FormatVersion, Reason: fmt.Sprintf("no command %q takes a %T payload", t, payload)})
	}
	return f.Exec(now, payload)
}
