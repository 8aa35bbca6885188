package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
)

// The command registry: every command is one Type with one payload type
// and one entry in registry, which both the Raft path (ApplyCommand, which
// decodes the log entry) and the typed path (Exec, the fleet simulator's)
// dispatch through. Adding a command is one line below, plus its Type
// constant, its payload type and its method on State.
//
// Format versions. Commands and snapshots carry the format version they
// were written in ("v"; absent means 1). A node applies only the versions
// it knows (1 … FormatVersion) and only the types in its registry; anything
// else halts its state machine (see FSM.Halted): skipping a command would
// let this replica drift silently from the others. Version 1 payloads are
// decoded leniently, as the version 1 code did (unknown fields ignored);
// from version 2 on a payload must decode strictly (no unknown fields, one
// JSON value), so a change of a payload's JSON shape needs a new
// FormatVersion, whose decoding of the older versions stays.
//
// A format version is also a version of the rules: a log written in an
// older format replays into the very state its own code made. A command
// introduced by a format (entry.since) is an unknown type in the older
// ones. Version 3 changes liveness: from the first command of version 3
// or later a State applies on (State.LivenessByFlag, persisted, never
// cleared) an agent is alive unless the leader marked it silent with
// mark_silent (new in version 3), and it expires ExpireAfter after that
// mark; before it, as in versions 1 and 2, a host is alive while its last
// applied heartbeat is at most AliveWithin old and expires ExpireAfter
// after it (State.alive holds both rules). When the flag rule takes over
// no host is marked silent yet, so every host is alive until the leader
// marks the silent ones after its liveness grace.
//
// Version 4 keeps FleetLock off the hosts of kroll agents: a FleetLock
// acquire or steady-state release (owner fleetlock) naming a host that an
// agent registered (Host.FleetLock false) is refused as a conflict, unless
// a steady-state release gives back a FleetLock slot the host still holds;
// and an Acquire with Stay set (a FleetLock request admitted by its source
// network) never moves a registered host to another datacenter. Versions
// 1 to 3 took such requests (the agent's host could lose its slot to
// FleetLock); their logs replay as they did (State.format).
//
// Version 5 adds the release train (set_train, hold_train, resume_train,
// skip_train, expedite_train, train_step, reject_release; see train.go)
// and release states (Release.State). States are derived from the
// release's rollouts inside apply in every format, silently before
// version 5 (no events, so an older log replays into the very events it
// made), and Restore derives them for a snapshot of version 4 or older:
// an old log and its snapshots give identical states.

// FormatVersion is the format version of the commands and snapshots this
// code writes; it reads every version from 1 up to it.
const FormatVersion = FormatV5

// Format versions.
const (
	// FormatV1 is the format before the registry: no version field;
	// Renew also carried slot releases, Pause resumes, RolloutAction
	// every rollout action (their JSON shapes are unchanged).
	FormatV1 = 1
	// FormatV2 adds the version field and decodes payloads strictly.
	FormatV2 = 2
	// FormatV3 is liveness by mark_silent: the mark_silent command, and
	// the flag rule of liveness (State.LivenessByFlag) from the first
	// command of version 3 on.
	FormatV3 = 3
	// FormatV4 refuses FleetLock for the hosts of kroll agents and adds
	// Acquire.Stay.
	FormatV4 = 4
	// FormatV5 adds the release train, feeds, host lines and release fixes
	FormatV5 = 5
)

// registry lists every command. It is built once and only read.
var registry = newRegistry(
	cmd(TypeSetDatacenter, (*State).setDatacenter),
	cmd(TypePause, (*State).pause),
	cmd(TypeResume, (*State).resume),
	cmd(TypeHeartbeat, (*State).heartbeat),
	cmd(TypeAcquire, (*State).acquire),
	cmd(TypeRenew, (*State).renew),
	cmd(TypeRelease, (*State).release),
	cmd(TypeForceRelease, (*State).forceRelease),
	cmd(TypeHealth, (*State).health),
	cmd(TypeTick, (*State).tick),
	cmd(TypeSetMember, (*State).setMember),
	cmd(TypeRemoveMember, (*State).removeMember),
	cmd(TypeAddRelease, (*State).addRelease),
	cmd(TypePushPolicy, (*State).pushPolicy),
	cmd(TypeRetirePolicy, (*State).retirePolicy),
	cmd(TypeStartRollout, (*State).startRollout),
	cmd(TypePauseRollout, (*State).pauseRollout),
	cmd(TypeResumeRollout, (*State).resumeRollout),
	cmd(TypeAbortRollout, (*State).abortRollout),
	cmd(TypeRemoveHost, (*State).removeHost),
	since(FormatV3, cmd(TypeMarkSilent, (*State).markSilent)),
	since(FormatV5, cmd(TypeFeedBuild, (*State).feedBuild)),
	since(FormatV5, cmd(TypeSetHostLine, (*State).setHostLine)),
	since(FormatV5, cmd(TypeSetTrain, (*State).setTrain)),
	since(FormatV5, cmd(TypeHoldTrain, (*State).holdTrain)),
	since(FormatV5, cmd(TypeResumeTrain, (*State).resumeTrain)),
	since(FormatV5, cmd(TypeSkipTrain, (*State).skipTrain)),
	since(FormatV5, cmd(TypeExpediteTrain, (*State).expediteTrain)),
	since(FormatV5, cmd(TypeTrainStep, (*State).trainStep)),
	since(FormatV5, cmd(TypeRejectRelease, (*State).rejectRelease)),
)

// entry is one command of the registry.
type entry struct {
	typ     Type
	payload reflect.Type
	// since is the first format version that has the command (0: all);
	// in an older one its type is unknown.
	since int
	// decode decodes a payload written in format version v.
	decode func(raw json.RawMessage, v int) (any, error)
	// run applies a payload of type payload to the state; s.Now is the
	// command's time.
	run func(s *State, p any) Result
}

// cmd makes the registry entry of command t, whose payload is a P and
// which run applies.
func cmd[P any](t Type, run func(*State, P) Result) entry {
	return entry{
		typ:     t,
		payload: reflect.TypeFor[P](),
		decode: func(raw json.RawMessage, v int) (any, error) {
			var p P
			if err := decodePayload(raw, v, &p); err != nil {
				return nil, err
			}
			return p, nil
		},
		run: func(s *State, p any) Result { return run(s, p.(P)) },
	}
}

// since marks e as introduced by format version v.
func since(v int, e entry) entry {
	e.since = v
	return e
}

// known reports whether format version v has command e.
func (e *entry) known(v int) bool { return v >= e.since }

// commandSet indexes the registry by type and by payload type.
type commandSet struct {
	byType    map[Type]*entry
	byPayload map[reflect.Type]*entry
}

// newRegistry indexes entries; a type or payload type listed twice is a
// programming error.
func newRegistry(entries ...entry) commandSet {
	r := commandSet{byType: map[Type]*entry{}, byPayload: map[reflect.Type]*entry{}}
	for i := range entries {
		e := &entries[i]
		if r.byType[e.typ] != nil {
			panic(fmt.Sprintf("fsm: command type %q registered twice", e.typ))
		}
		if o := r.byPayload[e.payload]; o != nil {
			panic(fmt.Sprintf("fsm: payload %s registered for %q and %q", e.payload, o.typ, e.typ))
		}
		r.byType[e.typ], r.byPayload[e.payload] = e, e
	}
	return r
}

// Types returns every registered command type, sorted.
func Types() []Type {
	out := make([]Type, 0, len(registry.byType))
	for t := range registry.byType {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// PayloadOf returns a zero payload of command type t (nil when t is not
// registered): what NewCommand and Exec expect for t.
func PayloadOf(t Type) any {
	e := registry.byType[t]
	if e == nil {
		return nil
	}
	return reflect.Zero(e.payload).Interface()
}

// decodePayload decodes raw into p as format version v writes it:
// leniently for version 1, as the version 1 code did (null is the zero
// payload), strictly from version 2 on (an object, no unknown fields,
// nothing after it).
func decodePayload(raw json.RawMessage, v int, p any) error {
	if len(raw) == 0 {
		return errors.New("missing payload")
	}
	if v == FormatV1 {
		return json.Unmarshal(raw, p)
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return errors.New("null payload")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the payload")
	}
	return nil
}
