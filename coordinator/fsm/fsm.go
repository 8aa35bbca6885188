package fsm

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// FSM is the replicated state machine. It implements raft.FSM; reads go
// through View.
type FSM struct {
	mu    sync.RWMutex
	state *State
	// applied counts applied commands (for tests and metrics).
	applied uint64
}

// New returns an FSM with empty state.
func New() *FSM {
	return &FSM{state: newState()}
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	res := f.ApplyCommand(l.Data)
	f.mu.Lock()
	f.state.Index = l.Index
	f.mu.Unlock()
	return res
}

// Index returns the Raft index of the last command applied to the state
// (also across snapshot restores): a follower that forwarded a write waits
// for it before it reads its effect.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Index
}

// ApplyCommand applies one encoded Command and returns its Result. A
// command that cannot be decoded is refused; it changes nothing.
func (f *FSM) ApplyCommand(data []byte) Result {
	var c Command
	if err := json.Unmarshal(data, &c); err != nil {
		return refused(wire.KindInternal, "undecodable command: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied++
	s := f.state
	if c.Time.After(s.Now) {
		s.Now = c.Time.UTC()
	}
	return s.apply(c.Type, c.Payload)
}

// exec dispatches a typed command; apply decodes into the same calls.
func (s *State) exec(t Type, payload any) Result {
	switch p := payload.(type) {
	case SetDatacenter:
		return s.setDatacenter(p)
	case Pause:
		return s.pause(p, t == TypePause)
	case Heartbeat:
		return s.heartbeat(p)
	case Acquire:
		return s.acquire(p)
	case Renew:
		if t == TypeRelease {
			return s.release(p)
		}
		return s.renew(p)
	case ForceRelease:
		return s.forceRelease(p)
	case Health:
		return s.health(p)
	case Tick:
		return s.tick(p)
	case AddRelease:
		return s.addRelease(p)
	case PushPolicy:
		return s.pushPolicy(p)
	case RetirePolicy:
		return s.retirePolicy(p)
	case StartRollout:
		return s.startRollout(p)
	case RolloutAction:
		return s.rolloutAction(p, t)
	case RemoveHost:
		return s.removeHost(p)
	case MarkSilent:
		return s.markSilent(p)
	}
	return refused(wire.KindInternal, "exec: unknown payload %T", payload)
}

func decode[T any](payload json.RawMessage) (T, error) {
	var v T
	err := json.Unmarshal(payload, &v)
	return v, err
}

// apply dispatches a command; s.Now is the command's time.
func (s *State) apply(t Type, payload json.RawMessage) Result {
	var (
		res Result
		err error
	)
	switch t {
	case TypeSetDatacenter:
		var p SetDatacenter
		if p, err = decode[SetDatacenter](payload); err == nil {
			res = s.setDatacenter(p)
		}
	case TypePause, TypeResume:
		var p Pause
		if p, err = decode[Pause](payload); err == nil {
			res = s.pause(p, t == TypePause)
		}
	case TypeHeartbeat:
		var p Heartbeat
		if p, err = decode[Heartbeat](payload); err == nil {
			res = s.heartbeat(p)
		}
	case TypeAcquire:
		var p Acquire
		if p, err = decode[Acquire](payload); err == nil {
			res = s.acquire(p)
		}
	case TypeRenew:
		var p Renew
		if p, err = decode[Renew](payload); err == nil {
			res = s.renew(p)
		}
	case TypeRelease:
		var p Renew
		if p, err = decode[Renew](payload); err == nil {
			res = s.release(p)
		}
	case TypeForceRelease:
		var p ForceRelease
		if p, err = decode[ForceRelease](payload); err == nil {
			res = s.forceRelease(p)
		}
	case TypeHealth:
		var p Health
		if p, err = decode[Health](payload); err == nil {
			res = s.health(p)
		}
	case TypeAddRelease:
		var p AddRelease
		if p, err = decode[AddRelease](payload); err == nil {
			res = s.addRelease(p)
		}
	case TypePushPolicy:
		var p PushPolicy
		if p, err = decode[PushPolicy](payload); err == nil {
			res = s.pushPolicy(p)
		}
	case TypeRetirePolicy:
		var p RetirePolicy
		if p, err = decode[RetirePolicy](payload); err == nil {
			res = s.retirePolicy(p)
		}
	case TypeTick:
		var p Tick
		if len(payload) > 0 && string(payload) != "null" {
			p, err = decode[Tick](payload)
		}
		if err == nil {
			res = s.tick(p)
		}
	case TypeStartRollout:
		var p StartRollout
		if p, err = decode[StartRollout](payload); err == nil {
			res = s.startRollout(p)
		}
	case TypePauseRollout, TypeResumeRollout, TypeAbortRollout:
		var p RolloutAction
		if p, err = decode[RolloutAction](payload); err == nil {
			res = s.rolloutAction(p, t)
		}
	case TypeRemoveHost:
		var p RemoveHost
		if p, err = decode[RemoveHost](payload); err == nil {
			res = s.removeHost(p)
		}
	case TypeMarkSilent:
		var p MarkSilent
		if p, err = decode[MarkSilent](payload); err == nil {
			res = s.markSilent(p)
		}
	case TypeSetMember:
		var p SetMember
		if p, err = decode[SetMember](payload); err == nil {
			s.Members[p.ID] = &Member{ID: p.ID, RaftAddr: p.RaftAddr, HTTPAddr: p.HTTPAddr}
		}
	case TypeRemoveMember:
		var p RemoveMember
		if p, err = decode[RemoveMember](payload); err == nil {
			delete(s.Members, p.ID)
		}
	default:
		return refused(wire.KindInternal, "unknown command type %q", t)
	}
	if err != nil {
		return refused(wire.KindInternal, "undecodable %s payload: %v", t, err)
	}
	return res
}

func (s *State) event(typ, dc, host, format string, args ...any) {
	s.Events = append(s.Events, wire.Event{
		ID: s.NextEventID, Time: s.Now, Type: typ, Datacenter: dc, Host: host,
		Message: fmt.Sprintf(format, args...),
	})
	s.NextEventID++
	// Trim in batches so that recording an event stays O(1) amortized.
	if len(s.Events) >= MaxEvents+MaxEvents/4 {
		s.Events = append(s.Events[:0:0], s.Events[len(s.Events)-MaxEvents:]...)
	}
}

// Snapshot implements raft.FSM: it copies the state (cheap relative to the
// log) so that Persist can stream it while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	data, err := json.Marshal(f.state)
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
// streamed from r.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	st := newState()
	dec := json.NewDecoder(r)
	if err := dec.Decode(st); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
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
	st.reindex()
	f.mu.Lock()
	f.state = st
	f.mu.Unlock()
	return nil
}

// View runs fn with read access to the state. fn must not keep references
// into the state after it returns, nor change it.
func (f *FSM) View(fn func(*State)) {
	f.mu.RLock()
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
// a function call. The payload's type selects the command (Pause is
// TypePause; use ExecType for TypeResume, TypeRelease and the rollout
// actions, whose payload types are shared).
func (f *FSM) Exec(now time.Time, payload any) Result {
	var t Type
	switch payload.(type) {
	case SetDatacenter:
		t = TypeSetDatacenter
	case Pause:
		t = TypePause
	case Heartbeat:
		t = TypeHeartbeat
	case Acquire:
		t = TypeAcquire
	case Renew:
		t = TypeRenew
	case ForceRelease:
		t = TypeForceRelease
	case Health:
		t = TypeHealth
	case Tick:
		t = TypeTick
	case AddRelease:
		t = TypeAddRelease
	case PushPolicy:
		t = TypePushPolicy
	case RetirePolicy:
		t = TypeRetirePolicy
	case StartRollout:
		t = TypeStartRollout
	case RemoveHost:
		t = TypeRemoveHost
	case MarkSilent:
		t = TypeMarkSilent
	default:
		return refused(wire.KindInternal, "Exec: payload %T needs ExecType", payload)
	}
	return f.ExecType(t, now, payload)
}

// ExecType is Exec with an explicit command type.
func (f *FSM) ExecType(t Type, now time.Time, payload any) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied++
	s := f.state
	if now.After(s.Now) {
		s.Now = now.UTC()
	}
	return s.exec(t, payload)
}
