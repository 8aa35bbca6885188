package fsm

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/pkg/capacity"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// MaxEvents bounds the event history kept in the state.
const MaxEvents = 1000

// State is everything the coordinator replicates. It is only changed by
// Apply and Restore.
type State struct {
	Datacenters map[string]*Datacenter `json:"datacenters"`
	Hosts       map[string]*Host       `json:"hosts"`
	Members     map[string]*Member     `json:"members"`
	Releases    map[string]*Release    `json:"releases"`
	Policies    map[string]*Policy     `json:"policies"`
	Rollouts    map[string]*Rollout    `json:"rollouts"`
	// Trains are the release trains, by kernel line (FormatV5).
	Trains map[string]*Train `json:"trains,omitempty"`
	Events []wire.Event      `json:"events"`
	// FeedBuilds are the builds the feed pollers found that did not
	// become releases (unsigned, badly signed, mismatched …), newest
	// last, at most MaxFeedBuilds (see feedBuild).
	FeedBuilds  []FeedBuild `json:"feed_builds,omitempty"`
	NextEventID uint64      `json:"next_event_id"`
	// Now is the latest leader time applied; commands never move it
	// backwards (a new leader's clock may lag the old one's).
	Now time.Time `json:"now"`
	// Index is the Raft log index of the last applied command.
	Index uint64 `json:"index"`
	// ExpiryScanned is when Tick last looked for silent hosts to expire.
	ExpiryScanned time.Time `json:"expiry_scanned,omitzero"`
	// FleetLockFresh is the freshness of FleetLock-only hosts the last
	// Tick carried, for the read views (0: DefaultFleetLockFresh).
	FleetLockFresh time.Duration `json:"fleetlock_fresh,omitempty"`
	// Grace is the leader grace of the rollout gates (see LeaderGrace).
	Grace LeaderGrace `json:"leader_grace,omitzero"`
	// LivenessSettled is the latest leader term whose first liveness pass
	// after its grace was applied (MarkSilent.Term; see State.unsettled).
	LivenessSettled uint64 `json:"liveness_settled,omitempty"`
	// LivenessByFlag is the liveness rule in force (see State.alive):
	// false, the time rule of formats 1 and 2 (a recent heartbeat); true,
	// the flag rule of FormatV3 (not marked silent). The first command of
	// format 3 or later applied sets it, before it runs; nothing clears
	// it. Omitted when false, so a snapshot of formats 1 and 2 restores
	// the rule it ran by.
	LivenessByFlag bool `json:"liveness_by_flag,omitempty"`

	// format is the format version of the command being applied: rules
	// that only hold from a version on (see registry.go) ask it. Not
	// persisted: every command sets it before it runs.
	format int

	// byDC indexes Hosts by datacenter; derived, rebuilt on restore.
	byDC map[string]map[string]*Host
	// counts are the scheduler's per-datacenter inputs (see
	// counters.go; each host keeps its contribution, Host.mark); derived,
	// rebuilt on restore.
	counts map[string]*dcCounts
	// interned holds the values hosts share (see intern.go); derived,
	// rebuilt on restore, created on first use.
	interned *internTable
	// lineWaiting holds the hosts whose assigned line is not the line
	// they follow yet (see settleLine); derived, rebuilt on restore.
	lineWaiting map[string]bool
	// expiryWalk makes the next expiry scan walk every host (see
	// expireHosts): hosts restored from a snapshot, or registered before
	// the state had a time, may have no time they were heard from.
	// Derived; it changes how much a scan reads, never what it finds.
	expiryWalk bool
	// scratch and holderScratch are reused by hostStatesAndView (not
	// state).
	scratch       []schedule.HostState
	holderScratch []*Host
	viewScratch   []int
}

// indexHost records h under its datacenter, moving it from old if it
// changed datacenter.
func (s *State) indexHost(h *Host, old string) {
	if old != "" && old != h.Datacenter {
		delete(s.byDC[old], h.ID)
	}
	if s.byDC[h.Datacenter] == nil {
		s.byDC[h.Datacenter] = map[string]*Host{}
	}
	s.byDC[h.Datacenter][h.ID] = h
}

// byHostID orders hosts by id (for slices.BinarySearchFunc).
func byHostID(h *Host, id string) int { return strings.Compare(h.ID, id) }

// reindex rebuilds byDC and the counters from Hosts and the slots.
func (s *State) reindex() {
	s.byDC = map[string]map[string]*Host{}
	s.interned = newInternTable()
	for _, h := range s.Hosts {
		s.internHost(h, hostShared{})
		s.indexHost(h, "")
	}
	s.recount()
	s.reindexLines()
	s.expiryWalk = true
}

// HostsIn returns the hosts registered in datacenter dc (unordered; do not
// modify).
func (s *State) HostsIn(dc string) map[string]*Host { return s.byDC[dc] }

// HostDatacenters returns the datacenters hosts are registered in (every
// host is in the HostsIn of exactly one of them), unordered: a caller can
// go through the hosts one datacenter per View instead of all of them
// under one long hold of the state's lock.
func (s *State) HostDatacenters() []string {
	out := make([]string, 0, len(s.byDC))
	for dc, hosts := range s.byDC {
		if len(hosts) > 0 {
			out = append(out, dc)
		}
	}
	return out
}

// Datacenter is one datacenter's settings and slots.
type Datacenter struct {
	Name        string          `json:"name"`
	Tier        string          `json:"tier"`
	Policy      schedule.Policy `json:"policy"`
	PauseReason string          `json:"pause_reason,omitempty"`
	// NextToken is the fencing token of the next grant; strictly
	// increasing, never reused.
	NextToken uint64 `json:"next_token"`
	// Slots by holder host id.
	Slots map[string]*Slot `json:"slots"`
	// Targets are the releases the datacenter's hosts should run, by
	// kernel line.
	Targets map[string]Target `json:"targets,omitempty"`
	// LineRule (FormatV5) assigns a share of the hosts a kernel line.
	LineRule *LineRule `json:"line_rule,omitempty"`
}

// Target is the release a datacenter's hosts of one line should run.
type Target struct {
	Release string `json:"release"`
	// Rollout is the rollout that set it ("" for an operator's dc set).
	Rollout string `json:"rollout,omitempty"`
	// Expedite lets its reboots ignore the maintenance window.
	Expedite bool `json:"expedite,omitempty"`
}

// Policy is a pushed mitigation policy (the newest version pushed), kept
// verbatim with its signature so agents verify it themselves.
type Policy struct {
	ID          string          `json:"id"`
	Version     int64           `json:"version"`
	CVE         string          `json:"cve,omitempty"`
	Kind        string          `json:"kind"`
	Mode        string          `json:"mode"`
	Datacenters []string        `json:"datacenters,omitempty"`
	Expires     time.Time       `json:"expires"`
	KeyID       string          `json:"key_id"`
	Pushed      time.Time       `json:"pushed"`
	Document    string          `json:"document"`
	Signature   json.RawMessage `json:"signature"`
	Retired     bool            `json:"retired,omitempty"`
}

// appliesTo reports whether p is meant for datacenter dc.
func (p *Policy) appliesTo(dc string) bool {
	if len(p.Datacenters) == 0 {
		return true
	}
	for _, d := range p.Datacenters {
		if d == dc {
			return true
		}
	}
	return false
}

// Release is a signed kernel release. The manifest and signature are kept
// verbatim so agents verify them against their own trusted keys.
type Release struct {
	ID              string          `json:"id"`
	Line            string          `json:"line"`
	KernelVersion   string          `json:"kernel_version"`
	UpstreamVersion string          `json:"upstream_version,omitempty"`
	Kind            string          `json:"kind"`
	Created         time.Time       `json:"created"`
	Added           time.Time       `json:"added"`
	KeyID           string          `json:"key_id"`
	Manifest        json.RawMessage `json:"manifest"`
	Signature       json.RawMessage `json:"signature"`
	// Rejected marks the release rejected by a failed rollout, by line.
	Rejected map[string]Rejection `json:"rejected,omitempty"`
	// State is where the release stands on its line (ReleaseCandidate …
	// ReleaseRejected, or ReleaseSuperseded), derived inside apply from
	// its rollouts (see State.refreshRelease); StateReason says why.
	State       string `json:"state,omitempty"`
	StateReason string `json:"state_reason,omitempty"`
	// Source is where the release came from: "feed:<name>" for a build a
	// feed found ("" for an operator's release add).
	Source string `json:"source,omitempty"`
}

// Release states (Release.State).
const (
	ReleaseCandidate = "candidate"
	ReleaseStaging   = "staging"
	ReleaseValidated = "validated"
	ReleaseRolling   = "rolling"
	ReleaseDone      = "done"
	ReleaseRejected  = "rejected"
)

// Slot is a held reboot slot.
type Slot struct {
	Host           string    `json:"host"`
	Token          uint64    `json:"token"`
	Owner          string    `json:"owner"`
	Granted        time.Time `json:"granted"`
	LeaseExpires   time.Time `json:"lease_expires"`
	RebootDeadline time.Time `json:"reboot_deadline"`
	Lost           bool      `json:"lost,omitempty"`
}

// Host is a registered host.
type Host struct {
	ID         string `json:"id"`
	Datacenter string `json:"datacenter"`
	// KernelLine is the line the host follows: its rollouts, targets and
	// gates go by it. From FormatV5 the coordinator assigns it (see
	// lines.go: OperatorLine, else its datacenter's LineRule, else
	// AgentLine); before, it was the line the agent reported.
	KernelLine string `json:"kernel_line,omitempty"`
	// HostLines (FormatV5) is where the line comes from and what waits.
	HostLines
	Kernel        string              `json:"kernel,omitempty"`
	Phase         string              `json:"phase,omitempty"`
	BootID        string              `json:"boot_id,omitempty"`
	LastHeartbeat time.Time           `json:"last_heartbeat"`
	FleetLock     bool                `json:"fleetlock,omitempty"`
	Unhealthy     bool                `json:"unhealthy,omitempty"`
	Policies      []wire.PolicyStatus `json:"policies,omitempty"`
	// View is the host's last reported gossip view of its datacenter.
	View *wire.DCView `json:"view,omitempty"`
	// GossipAddr is the host's gossip member address.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// Silent marks a host the leader has not heard from for AliveWithin
	// (MarkSilent); its next heartbeat clears it. SilentSince is when it
	// was marked.
	Silent      bool      `json:"silent,omitempty"`
	SilentSince time.Time `json:"silent_since,omitzero"`
	// Registered is when the host registered.
	Registered time.Time `json:"registered,omitzero"`
	// LastToken is the fencing token of the host's latest grant (held or
	// given back): only a health report carrying it counts against the
	// failure budget.
	LastToken uint64 `json:"last_token,omitempty"`
	// CountedToken is the grant whose unhealthy report was counted
	// against the failure budget: once per grant, so once per boot.
	CountedToken uint64 `json:"counted_token,omitempty"`
	// FleetLockConfirmed marks a FleetLock-only host that completed a
	// lock and steady-state cycle (granted, then steady-state at least
	// FleetLockConfirmAfter later): only then does it count toward its
	// datacenter's slot limit base and serving hosts (see counts).
	FleetLockConfirmed bool `json:"fleetlock_confirmed,omitempty"`

	// mark is the host's contribution to its datacenter's counters, when
	// counted (mark.on; see State.touchHost); derived, never persisted.
	mark hostMark
}

// FleetLockConfirmAfter is how long a FleetLock host must have held its
// lock before its steady-state confirms it: a reboot takes at least that
// long, so an id cycled through pre-reboot and steady-state at once (a
// phantom) stays unconfirmed.
const FleetLockConfirmAfter = 30 * time.Second

// MaxUnconfirmedFleetLockPerDC bounds the unconfirmed FleetLock ids one
// datacenter tracks; they do not count toward [hosts] max_per_dc.
const MaxUnconfirmedFleetLockPerDC = 64

// counts reports whether h may count toward its datacenter's slot limit
// base and serving hosts: an agent, or a confirmed FleetLock-only host.
// An unconfirmed FleetLock id (anyone with FleetLock access can make one
// up) never does unless it holds a slot.
func (h *Host) counts() bool { return !h.FleetLock || h.FleetLockConfirmed }

// registered counts dc's hosts that count toward [hosts] max_per_dc and
// its unconfirmed FleetLock ids.
func (s *State) registered(dc string) (counted, unconfirmed int) {
	return s.registeredFast(dc)
}

// registeredWalk is registered by walking dc's hosts (the reference the
// counters are tested against).
func (s *State) registeredWalk(dc string) (counted, unconfirmed int) {
	for _, h := range s.byDC[dc] {
		if h.counts() {
			counted++
		} else {
			unconfirmed++
		}
	}
	return counted, unconfirmed
}

// Member is a coordinator node's addresses.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

func newState() *State {
	return &State{
		Datacenters: map[string]*Datacenter{},
		Hosts:       map[string]*Host{},
		Members:     map[string]*Member{},
		Releases:    map[string]*Release{},
		Policies:    map[string]*Policy{},
		Rollouts:    map[string]*Rollout{},
		Trains:      map[string]*Train{},
		NextEventID: 1,
		byDC:        map[string]map[string]*Host{},
		counts:      map[string]*dcCounts{},
	}
}

// Tiers of datacenters.
const (
	TierEdge    = "edge"
	TierControl = "control"
	TierStaging = "staging"
)

// serving reports whether h counts toward its datacenter's capacity floor
// at time now: alive (see State.alive: an agent within aliveWithin or not
// marked silent, a confirmed FleetLock-only host heard from within
// fleetLockFresh), not holding a slot, not unhealthy, not in an
// out-of-service phase.
func (s *State) serving(h *Host, dc *Datacenter, now time.Time, aliveWithin, fleetLockFresh time.Duration) bool {
	if dc != nil {
		if _, holding := dc.Slots[h.ID]; holding {
			return false
		}
	}
	if h.Unhealthy || capacity.OutOfService(h.Phase) || !h.counts() {
		return false
	}
	return s.alive(h, now, h.aliveWindow(aliveWithin, fleetLockFresh))
}

// aliveWindow is how recently h must have been heard from to be alive:
// aliveWithin for an agent, fleetLockFresh for a FleetLock-only host.
func (h *Host) aliveWindow(aliveWithin, fleetLockFresh time.Duration) time.Duration {
	if h.FleetLock {
		return fleetLockFresh
	}
	return aliveWithin
}

// lastHeard is when h was last heard from (or registered).
func (h *Host) lastHeard() time.Time {
	if h.LastHeartbeat.After(h.Registered) {
		return h.LastHeartbeat
	}
	return h.Registered
}

func (s *Slot) wire(dc string) *wire.Slot {
	return &wire.Slot{
		Datacenter: dc, HostID: s.Host, Token: s.Token, Granted: s.Granted,
		LeaseExpires: s.LeaseExpires, RebootDeadline: s.RebootDeadline, Owner: s.Owner, Lost: s.Lost,
	}
}
