package fsm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// Type tags a Command.
type Type string

// The command types.
const (
	TypeSetDatacenter Type = "set_datacenter"
	TypePause         Type = "pause"
	TypeResume        Type = "resume"
	TypeHeartbeat     Type = "heartbeat"
	TypeAcquire       Type = "acquire"
	TypeRenew         Type = "renew"
	TypeRelease       Type = "release"
	TypeForceRelease  Type = "force_release"
	TypeHealth        Type = "health"
	TypeTick          Type = "tick"
	TypeSetMember     Type = "set_member"
	TypeRemoveMember  Type = "remove_member"
	TypeAddRelease    Type = "add_release"
	TypePushPolicy    Type = "push_policy"
	TypeRetirePolicy  Type = "retire_policy"
	TypeStartRollout  Type = "start_rollout"
	TypePauseRollout  Type = "pause_rollout"
	TypeResumeRollout Type = "resume_rollout"
	TypeAbortRollout  Type = "abort_rollout"
	TypeRemoveHost    Type = "remove_host"
	// TypeFeedBuild records a build a feed poller found (FormatV5).
	TypeFeedBuild Type = "feed_build"
)

// Command is one entry of the replicated log.
type Command struct {
	Type Type `json:"type"`
	// V is the format version the command was written in (see
	// FormatVersion); 0, absent, is FormatV1.
	V int `json:"v,omitempty"`
	// Time is the leader's clock when it proposed the command.
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
}

// NewCommand encodes a command of type t with the leader's time now in the
// current FormatVersion. payload must be t's payload type (see PayloadOf),
// or its JSON encoding as a json.RawMessage (a command a follower
// forwarded). A command that this code could not apply — an unknown type,
// a payload of another type or one that does not decode — is an error
// here: it must never reach the log, where it would halt every replica.
func NewCommand(t Type, now time.Time, payload any) ([]byte, error) {
	e := registry.byType[t]
	if e == nil {
		return nil, fmt.Errorf("fsm: unknown command type %q", t)
	}
	raw, isRaw := payload.(json.RawMessage)
	if !isRaw {
		if pt := reflect.TypeOf(payload); pt != e.payload {
			return nil, fmt.Errorf("fsm: %s takes a %s payload, not %v", t, e.payload, pt)
		}
		var err error
		if raw, err = json.Marshal(payload); err != nil {
			return nil, fmt.Errorf("fsm: encode %s payload: %w", t, err)
		}
	}
	if _, err := e.decode(raw, FormatVersion); err != nil {
		return nil, fmt.Errorf("fsm: invalid %s payload: %w", t, err)
	}
	return json.Marshal(Command{Type: t, V: FormatVersion, Time: now.UTC(), Payload: raw})
}

// SetDatacenter creates or updates a datacenter.
type SetDatacenter struct {
	Name   string                `json:"name"`
	Update wire.DatacenterUpdate `json:"update"`
}

// Pause pauses a datacenter.
type Pause struct {
	Name   string `json:"name"`
	Reason string `json:"reason,omitempty"`
	// Index is the Raft log index of the command (set by the store).
	Index uint64 `json:"index,omitempty"`
}

// Resume resumes a paused datacenter (and resets its failure count).
type Resume struct {
	Name string `json:"name"`
}

// Heartbeat registers or refreshes a host.
type Heartbeat struct {
	wire.Heartbeat
	// FleetLock marks hosts that only speak FleetLock (no heartbeats): they
	// count as serving unless they hold a slot.
	FleetLock bool `json:"fleetlock,omitempty"`
	// Timing carries the leader's host settings (MaxHostsPerDC).
	Timing Timing `json:"timing,omitzero"`
}

// Timing holds the durations the leader's configuration sets; they travel
// in the commands so that every replica decides alike.
type Timing struct {
	// Lease is how long a grant or renewal is good for.
	Lease time.Duration `json:"lease"`
	// RebootDeadline is how long after its last grant or renewal a holder
	// may stay silent (it may be rebooting) before it is marked lost.
	RebootDeadline time.Duration `json:"reboot_deadline"`
	// AliveWithin is how recent a heartbeat must be for a host to count as
	// alive.
	AliveWithin time.Duration `json:"alive_within"`
	// LivenessGrace is how long after its term starts a leader marks no
	// host silent (every host counts as heard at the term start), at
	// least AliveWithin; the rollout gates forgive silence as long.
	LivenessGrace time.Duration `json:"liveness_grace,omitempty"`
	// FleetLockFresh is how recently a FleetLock-only host (which sends no
	// heartbeats) must have been heard from (pre-reboot or steady-state)
	// to count as a host of its datacenter at all: a stale one counts
	// neither toward the slot limit base nor as serving. 0 means
	// DefaultFleetLockFresh.
	FleetLockFresh time.Duration `json:"fleetlock_fresh,omitempty"`
	// ExpireAfter is how long a host not holding a slot may stay silent
	// before Tick removes it. 0 means DefaultExpireAfter; negative, never.
	ExpireAfter time.Duration `json:"expire_after,omitempty"`
	// MaxHostsPerDC caps the hosts registered in one datacenter. 0 means
	// DefaultMaxHostsPerDC.
	MaxHostsPerDC int `json:"max_hosts_per_dc,omitempty"`
}

// Defaults of the host settings a command leaves at zero.
const (
	// DefaultFleetLockFresh is three times a 5-minute Zincati check.
	DefaultFleetLockFresh = 15 * time.Minute
	DefaultExpireAfter    = 7 * 24 * time.Hour
	DefaultMaxHostsPerDC  = 10000
)

// fleetLockFresh returns t.FleetLockFresh or its default.
func (t Timing) fleetLockFresh() time.Duration {
	if t.FleetLockFresh > 0 {
		return t.FleetLockFresh
	}
	return DefaultFleetLockFresh
}

// expireAfter returns t.ExpireAfter or its default; 0 = never.
func (t Timing) expireAfter() time.Duration {
	switch {
	case t.ExpireAfter < 0:
		return 0
	case t.ExpireAfter == 0:
		return DefaultExpireAfter
	}
	return t.ExpireAfter
}

// maxHostsPerDC returns t.MaxHostsPerDC or its default.
func (t Timing) maxHostsPerDC() int {
	if t.MaxHostsPerDC > 0 {
		return t.MaxHostsPerDC
	}
	return DefaultMaxHostsPerDC
}

// Acquire asks for a slot for Host in Datacenter.
type Acquire struct {
	Datacenter string `json:"datacenter"`
	Host       string `json:"host"`
	// Owner is "agent" or "fleetlock".
	Owner    string `json:"owner"`
	Expedite bool   `json:"expedite,omitempty"`
	// Stay (FormatV4) forbids moving a registered host to Datacenter: a
	// FleetLock request admitted by its source network, without
	// credentials, may register a new id but never moves a known one.
	Stay bool `json:"stay,omitempty"`
	// Release (FormatV5, agents) is the release the slot is for: the
	// grant is refused (wire.KindReleaseWithdrawn) unless it is the
	// host's desired release (see State.Withdrawn).
	Release string `json:"release,omitempty"`
	Timing
}

// Renew extends the lease of a held slot.
type Renew struct {
	Datacenter string `json:"datacenter"`
	Host       string `json:"host"`
	// Token must be the slot's fencing token.
	Token uint64 `json:"token"`
	Owner string `json:"owner,omitempty"`
	// Release (FormatV5) is the release the holder is about to boot (the
	// fencing renewal before the boot): refused like Acquire.Release.
	Release string `json:"release,omitempty"`
	Timing
}

// SlotRelease gives a held slot back (TypeRelease). Its JSON is the
// subset of Renew's that version 1 release commands were written in.
type SlotRelease struct {
	Datacenter string `json:"datacenter"`
	Host       string `json:"host"`
	// Token must be the slot's fencing token; for a FleetLock client it is
	// 0 and Owner must be OwnerFleetLock.
	Token uint64 `json:"token"`
	Owner string `json:"owner,omitempty"`
	// Reason says why the release came early.
	Reason string `json:"reason,omitempty"`
}

// ForceRelease is an operator's break-glass release of any slot.
type ForceRelease struct {
	Datacenter string `json:"datacenter"`
	Host       string `json:"host"`
	Reason     string `json:"reason,omitempty"`
}

// RemoveHost forgets a host (decommissioned). A host holding a slot is
// only removed with Force and a Reason; its slot is released with it.
type RemoveHost struct {
	Host   string `json:"host"`
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Health records an agent's verdict on its new kernel.
type Health struct {
	wire.HealthReport
}

// AddRelease records a signed release the API has verified.
type AddRelease struct {
	Release Release `json:"release"`
}

// PushPolicy records a signed mitigation policy the API has verified.
type PushPolicy struct {
	Policy Policy `json:"policy"`
}

// RetirePolicy retires a policy fleet-wide.
type RetirePolicy struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// Tick expires leases (holders past their reboot deadline become lost) and
// moves rollouts on.
type Tick struct {
	Timing
	// Term is the Raft term of the leader that proposed the tick (0:
	// unknown, as in the simulator). The first tick of a new term starts
	// the leader grace of the rollout gates (see LeaderGrace).
	Term uint64 `json:"term,omitempty"`
}

// SetMember records a coordinator node's addresses.
type SetMember struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// RemoveMember forgets a coordinator node.
type RemoveMember struct {
	ID string `json:"id"`
}

// Owners of slots.
const (
	OwnerAgent     = "agent"
	OwnerFleetLock = "fleetlock"
)

// Result is what Apply returns for a command. Err is set when the command
// was refused; nothing changed then.
type Result struct {
	Err  *wire.Error `json:"err,omitempty"`
	Slot *wire.Slot  `json:"slot,omitempty"`
	// KernelLine is a heartbeat's assigned kernel line (FormatV5).
	KernelLine string `json:"kernel_line,omitempty"`
	// Release is a heartbeat's desired release.
	Release *wire.SignedRelease `json:"release,omitempty"`
	// Policies and RetiredPolicies are a heartbeat's desired mitigations.
	Policies        []wire.SignedPolicy `json:"policies,omitempty"`
	RetiredPolicies []string            `json:"retired_policies,omitempty"`
	// Retirements are the retired policies with the version retired.
	Retirements []wire.PolicyRetirement `json:"retirements,omitempty"`
	// Limits are the host's datacenter limits.
	Limits *wire.DatacenterLimits `json:"limits,omitempty"`
	// GossipSeeds are gossip addresses of live hosts of the same
	// datacenter.
	GossipSeeds []string `json:"gossip_seeds,omitempty"`
	// Reason is the scheduler's reason for an acquire.
	Reason string `json:"reason,omitempty"`
	// Index is the Raft log index of the command (set by the store).
	Index uint64 `json:"index,omitempty"`
	// Halted marks the refusal of a halted state machine (see
	// FSM.Halted): the command was not applied, nor will any later one be.
	Halted bool `json:"halted,omitempty"`
}

func refused(kind, format string, args ...any) Result {
	return Result{Err: &wire.Error{Kind: kind, Value: fmt.Sprintf(format, args...)}}
}
