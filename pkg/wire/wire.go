package wire

import (
	"encoding/json"
	"time"
)

// MaxBodySize bounds every request body the coordinator accepts.
const MaxBodySize = 64 << 10

// Error is the body of every non-2xx response.
type Error struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// Error kinds: a small, fixed set. The FleetLock ones follow airlock's
// naming; the denial kinds are "failed_lock_" + the scheduler's reason.
const (
	KindMissingHeader       = "missing_header"        // FleetLock header absent
	KindInvalidClientParams = "invalid_client_params" // FleetLock body malformed or id/group empty
	KindInvalidRequest      = "invalid_request"       // any other malformed or invalid body or query
	KindRequestTooLarge     = "request_too_large"
	KindMethodNotAllowed    = "method_not_allowed"
	KindNotFound            = "not_found"
	KindUnauthorized        = "unauthorized" // no or bad credentials
	KindForbidden           = "forbidden"    // credentials lack the role
	KindStaleToken          = "stale_token"  // fencing token no longer valid
	KindNotHolder           = "not_holder"   // host holds no slot
	KindConflict            = "conflict"
	// KindNoLeader: the cluster has no leader this node can reach; the
	// command was not proposed (503): retrying it anywhere is safe.
	KindNoLeader = "no_leader"
	// KindOutcomeUnknown: the command reached a leader, or may have, but
	// its outcome was lost (leadership changed or the leader went away
	// while it was in flight); it may or may not be applied (503). Slot,
	// health and heartbeat commands are idempotent: the client retries.
	KindOutcomeUnknown = "outcome_unknown"
	KindInternal       = "internal"
	// KindOverloaded: the coordinator node sheds load (429); the response
	// carries Retry-After (seconds) and the client waits at least that long.
	KindOverloaded = "overloaded"
	// KindUnknownDatacenter: a host tried to register in a datacenter no
	// operator created (404).
	KindUnknownDatacenter = "unknown_dc"
	// KindHostLimit: the datacenter has as many hosts as [hosts]
	// max_per_dc allows; a new one cannot register.
	KindHostLimit = "dc_host_limit_reached"

	// Denials of a slot (FleetLock pre-reboot and agent acquire).
	KindSemaphoreFull = "failed_lock_semaphore_full"
	KindCapacityFloor = "failed_lock_capacity_floor"
	KindPaused        = "failed_lock_dc_paused"
	KindOutsideWindow = "failed_lock_outside_window"
	KindFailureBudget = "failed_lock_failure_budget_exhausted"
	KindUnknownDC     = "failed_lock_unknown_dc"
	KindUnknownHost   = "failed_lock_unknown_host"

	// KindReleaseWithdrawn refuses a slot acquire or a pre-boot renewal
	// whose release (SlotRequest.Release) the coordinator no longer wants
	// booted on the host: rejected for its line, its rollout failed,
	// aborted or paused, or no longer its datacenter's target. The agent
	// gives the slot back and abandons the release (409).
	KindReleaseWithdrawn = "release_withdrawn"
)

// HostIDHeader carries the sending host's id on a heartbeat (the same as
// the body's host_id). With HeartbeatDigestHeader it lets a coordinator
// that sheds the heartbeat on arrival, without reading its body, record
// that it heard the host when the heartbeat changes nothing, so that load
// shedding never makes a live host look silent.
const HostIDHeader = "Kroll-Host-Id"

// FleetLockHeader must be "true" on FleetLock requests.
const FleetLockHeader = "fleet-lock-protocol"

// FleetLockRequest is the body of POST /v1/pre-reboot and /v1/steady-state.
type FleetLockRequest struct {
	ClientParams FleetLockClientParams `json:"client_params"`
}

// FleetLockClientParams identify the node (ID) and its lock group; kroll's
// groups are datacenters.
type FleetLockClientParams struct {
	ID    string `json:"id"`
	Group string `json:"group"`
}

// Phases an agent reports (DESIGN §4).
const (
	PhaseIdle          = "idle"
	PhaseStaging       = "staging"
	PhaseStaged        = "staged"
	PhaseWaitingSlot   = "waiting-slot"
	PhaseDraining      = "draining"
	PhaseRebooting     = "rebooting"
	PhaseVerifying     = "verifying"
	PhaseHealthy       = "healthy"
	PhaseStagingFailed = "staging-failed"
	PhaseDrainTimeout  = "drain-timeout"
	PhaseWrongKernel   = "wrong-kernel"
	PhaseUnhealthy     = "unhealthy"
	PhaseRollback      = "rollback"
	// PhaseFailed: the upgrade failed and was rolled back (or could not
	// be); the host stays out of service until an operator acts.
	PhaseFailed = "failed"
)

// Install phases (DESIGN §4 "Install"): between staged and waiting-slot.
const (
	// PhaseInstalling: the staged kernel is being installed on the host
	// (dpkg, or a bundle's modules and initrd) before a slot is asked.
	PhaseInstalling = "installing"
	// PhaseInstallFailed: the install failed; it is retried with backoff
	// and the host stays in service (no slot, routes untouched).
	PhaseInstallFailed = "install-failed"
)

// Routes of the agent and FleetLock APIs.
const (
	PathHeartbeat          = "/api/v1/agent/heartbeat"
	PathSlotAcquire        = "/api/v1/agent/slot/acquire"
	PathSlotRenew          = "/api/v1/agent/slot/renew"
	PathSlotRelease        = "/api/v1/agent/slot/release"
	PathHealth             = "/api/v1/agent/health"
	PathFleetLockPreReboot = "/v1/pre-reboot"
	PathFleetLockSteady    = "/v1/steady-state"
)

// PolicyState is the state of one mitigation policy on a host, as the
// agent reports it: what is pinned in bpffs and verified, never what the
// agent merely believes.
type PolicyState string

// The states of a policy on a host.
const (
	// PolicyEnforcing: pinned and attached, denying matching operations.
	PolicyEnforcing PolicyState = "enforcing"
	// PolicyAuditing: pinned and attached, counting and logging only.
	PolicyAuditing PolicyState = "auditing"
	// PolicyRetired: not in force on purpose: the operator retired it, it
	// expired, or the running kernel contains the fix (Detail says which).
	PolicyRetired PolicyState = "retired"
	// PolicyUnavailable: meant to be in force but not pinned, e.g. bpf-lsm
	// does not work on this host (Detail says why).
	PolicyUnavailable PolicyState = "unavailable"
	// PolicyRejected: refused, e.g. its signing key is no longer trusted
	// or it is not newer than what the host has (Detail says why).
	PolicyRejected PolicyState = "rejected"
)

// Valid reports whether s is one of the PolicyState constants.
func (s PolicyState) Valid() bool {
	switch s {
	case PolicyEnforcing, PolicyAuditing, PolicyRetired, PolicyUnavailable, PolicyRejected:
		return true
	}
	return false
}

// InForce reports whether s is enforcing or auditing.
func (s PolicyState) InForce() bool { return s == PolicyEnforcing || s == PolicyAuditing }

// PolicyStatus is what an agent reports about one mitigation policy.
type PolicyStatus struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
	// State is one of the PolicyState constants.
	State  PolicyState `json:"state"`
	Detail string      `json:"detail,omitempty"`
}

// PolicyRetirement says that the operator retired a policy at a version:
// agents remove it and refuse that version and every older one.
type PolicyRetirement struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

// Heartbeat registers a host and refreshes its liveness and status.
type Heartbeat struct {
	HostID     string         `json:"host_id"`
	Datacenter string         `json:"datacenter"`
	KernelLine string         `json:"kernel_line,omitempty"`
	Kernel     string         `json:"kernel,omitempty"`
	Phase      string         `json:"phase,omitempty"`
	BootID     string         `json:"boot_id,omitempty"`
	Policies   []PolicyStatus `json:"policies,omitempty"`
	// View is the host's gossip view of its datacenter, if it runs gossip.
	View *DCView `json:"view,omitempty"`
	// GossipAddr is the host:port of the host's gossip member, if any.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// DesiredVersion is the DesiredState.DesiredVersion of the documents
	// (release manifest, policies) the agent holds; "" when it holds none.
	// When it is current, the answer omits them (DesiredState.Unchanged).
	DesiredVersion string `json:"desired_version,omitempty"`
	// AssignedLine is the kernel line the agent follows as the coordinator
	// assigned it (DesiredState.KernelLine), while KernelLine stays the
	// line of its configuration, its default; "" until a coordinator
	// assigned one (an older coordinator never does).
	AssignedLine string `json:"assigned_line,omitempty"`
}

// DesiredState is what the coordinator wants a host to do; the heartbeat
// response.
type DesiredState struct {
	// HeartbeatInterval is how often the agent should send heartbeats.
	HeartbeatIntervalSeconds int `json:"heartbeat_interval_seconds"`
	// Slot is the slot the host holds, if any.
	Slot *Slot `json:"slot,omitempty"`
	// KernelLine is the kernel line the coordinator assigns the host (an
	// operator's assignment, else its datacenter's line rule, else the
	// agent's configured default): the agent follows it, and its
	// releases are the ones it takes. "" from an older coordinator: the
	// agent keeps its configured line.
	KernelLine string `json:"kernel_line,omitempty"`
	// Release is the release the host should run: its datacenter's
	// target when the host is on the release's kernel line. The agent
	// verifies the signature itself and never downgrades.
	Release *SignedRelease `json:"release,omitempty"`
	// Policies are the mitigation policies pushed for the host's
	// datacenter (newest version of each, retired ones excluded); the
	// agent verifies each itself.
	Policies []SignedPolicy `json:"policies,omitempty"`
	// RetiredPolicies are ids the operator retired: the agent removes them.
	// Agents that know Retirements use it instead.
	RetiredPolicies []string `json:"retired_policies,omitempty"`
	// Retirements are the policies the operator retired, each with the
	// version retired: the agent removes them and refuses any document of
	// that id with a version <= the retired one (from gossip too).
	Retirements []PolicyRetirement `json:"retirements,omitempty"`
	// Datacenter carries the datacenter's limits for the agent's own
	// pre-reboot check against its gossip view.
	Datacenter *DatacenterLimits `json:"datacenter,omitempty"`
	// GossipSeeds are gossip addresses of a few live hosts of the same
	// datacenter, to join its pool.
	GossipSeeds []string `json:"gossip_seeds,omitempty"`
	// DesiredVersion identifies Release and Policies: the hex SHA-256 of
	// their canonical encoding, the same on every coordinator node for the
	// same replicated state. The agent sends it back in its heartbeats.
	DesiredVersion string `json:"desired_version,omitempty"`
	// Unchanged says that Release and Policies were omitted because the
	// heartbeat's desired_version equals DesiredVersion: the agent keeps
	// the documents it has. Slot, Retirements, Datacenter and the other
	// fields are always sent.
	Unchanged bool `json:"unchanged,omitempty"`
}

// DatacenterLimits are what an agent needs to check its datacenter's
// capacity itself.
type DatacenterLimits struct {
	// EffectiveLimit is the slot limit for the current host count.
	EffectiveLimit int `json:"effective_limit"`
	MinHealthyPct  int `json:"min_healthy_pct"`
	Hosts          int `json:"hosts"`
}

// SignedPolicy is a mitigation policy document (YAML or JSON, as signed)
// with its detached signature.
type SignedPolicy struct {
	ID        string          `json:"id"`
	Version   int64           `json:"version"`
	Document  string          `json:"document"`
	Signature json.RawMessage `json:"signature"`
}

// PolicyPushRequest pushes a signed policy (POST PathPolicies).
type PolicyPushRequest struct {
	Document  string          `json:"document"`
	Signature json.RawMessage `json:"signature"`
}

// PolicyRetireRequest retires a policy fleet-wide.
type PolicyRetireRequest struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// Policy is a pushed policy and its coverage.
type Policy struct {
	ID          string    `json:"id"`
	Version     int64     `json:"version"`
	CVE         string    `json:"cve,omitempty"`
	Kind        string    `json:"kind"`
	Mode        string    `json:"mode"`
	Datacenters []string  `json:"datacenters,omitempty"`
	Expires     time.Time `json:"expires"`
	Pushed      time.Time `json:"pushed"`
	KeyID       string    `json:"key_id"`
	Retired     bool      `json:"retired,omitempty"`
	// Coverage counts, per datacenter, the hosts reporting each state of
	// this policy: "enforcing v3", "auditing v2", "unavailable v3",
	// "retired v3", or "missing" (alive hosts not reporting it).
	Coverage map[string]map[string]int `json:"coverage"`
}

// DCView is an agent's gossip view of its datacenter.
type DCView struct {
	Alive     int `json:"alive"`
	Draining  int `json:"draining"`
	Rebooting int `json:"rebooting"`
	Dead      int `json:"dead"`
}

// SignedRelease is a release manifest with its detached signature, both
// exactly as signed (pkg/release, pkg/signing).
type SignedRelease struct {
	ID        string          `json:"id"`
	Manifest  json.RawMessage `json:"manifest"`
	Signature json.RawMessage `json:"signature"`
}

// ReleaseAddRequest adds a signed release (POST PathReleases).
type ReleaseAddRequest struct {
	Manifest  json.RawMessage `json:"manifest"`
	Signature json.RawMessage `json:"signature"`
}

// Release is a release known to the coordinator.
type Release struct {
	ID              string    `json:"id"`
	Line            string    `json:"line"`
	KernelVersion   string    `json:"kernel_version"`
	UpstreamVersion string    `json:"upstream_version,omitempty"`
	Kind            string    `json:"kind"`
	Created         time.Time `json:"created"`
	Added           time.Time `json:"added"`
	// KeyID is the key id of the signature the coordinator verified.
	KeyID string `json:"key_id"`
	// Targeted lists the datacenters whose target it is.
	Targeted []string `json:"targeted,omitempty"`
	// Rejected maps a kernel line to why a failed rollout rejected the
	// release for it; a new rollout of it there needs Force and a reason.
	Rejected map[string]string `json:"rejected,omitempty"`
	// State is where the release stands on its line (candidate, staging,
	// validated, rolling, done, rejected or superseded) and StateReason
	// why; Source is where it came from ("feed:<name>", or empty for an
	// operator's release add).
	State       string `json:"state,omitempty"`
	StateReason string `json:"state_reason,omitempty"`
	Source      string `json:"source,omitempty"`
}

// FeedBuild is a build a feed found that did not become a release: it is
// listed, never rolled.
type FeedBuild struct {
	Feed string `json:"feed"`
	Line string `json:"line"`
	// Key identifies the build in its feed (the .deb's path, or the
	// manifest's URL).
	Key         string `json:"key"`
	Package     string `json:"package,omitempty"`
	Version     string `json:"version,omitempty"`
	ManifestURL string `json:"manifest_url"`
	// Release is the id the manifest claims, when it decoded.
	Release string `json:"release,omitempty"`
	// Status is unsigned, bad-signature, mismatch, invalid or conflict;
	// Reason says why.
	Status string    `json:"status"`
	Reason string    `json:"reason"`
	Seen   time.Time `json:"seen"`
}

// SlotRequest asks to acquire (Token 0), renew or release a slot.
type SlotRequest struct {
	HostID     string `json:"host_id"`
	Datacenter string `json:"datacenter"`
	Token      uint64 `json:"token,omitempty"`
	// Release is the release the host asks the slot for (acquire) or is
	// about to boot (the fencing renewal right before the boot): the
	// coordinator refuses (KindReleaseWithdrawn) when it no longer wants
	// that release booted there. Empty on the renewals after the boot
	// and from agents that predate it (no such check then).
	Release string `json:"release,omitempty"`
	// Reason says why a slot is given back early (release only), for the
	// event log.
	Reason string `json:"reason,omitempty"`
}

// Slot is a held reboot slot.
type Slot struct {
	Datacenter string `json:"datacenter"`
	HostID     string `json:"host_id"`
	// Token is the fencing token: strictly increasing per datacenter.
	Token          uint64    `json:"token"`
	Granted        time.Time `json:"granted"`
	LeaseExpires   time.Time `json:"lease_expires"`
	RebootDeadline time.Time `json:"reboot_deadline"`
	// Owner is "agent" or "fleetlock".
	Owner string `json:"owner"`
	// Lost is set when the holder passed its reboot deadline without
	// renewing; only an operator frees such a slot.
	Lost bool `json:"lost,omitempty"`
}

// HealthReport is an agent's verdict after booting the new kernel.
type HealthReport struct {
	HostID     string `json:"host_id"`
	Datacenter string `json:"datacenter"`
	Token      uint64 `json:"token,omitempty"`
	Healthy    bool   `json:"healthy"`
	Kernel     string `json:"kernel,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

// HostRemoveRequest forgets a decommissioned host (POST PathHost + ID +
// PathHostRemove). A host holding a slot is removed only with Force and a
// Reason.
type HostRemoveRequest struct {
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Member is one coordinator node.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Leader   bool   `json:"leader"`
	Voter    bool   `json:"voter"`
}

// JoinRequest adds a voter to the cluster.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
}

// RemoveRequest removes a member from the cluster.
type RemoveRequest struct {
	ID string `json:"id"`
}

// Datacenter is a datacenter's settings and live counts.
type Datacenter struct {
	Name          string `json:"name"`
	Tier          string `json:"tier"`
	SlotLimit     int    `json:"slot_limit,omitempty"`
	SlotPct       int    `json:"slot_pct,omitempty"`
	MinHealthyPct int    `json:"min_healthy_pct"`
	Window        string `json:"window"`
	Paused        bool   `json:"paused"`
	PauseReason   string `json:"pause_reason,omitempty"`
	FailureBudget int    `json:"failure_budget"`
	Failures      int    `json:"failures"`
	// Targets are the releases the datacenter's hosts should run, by
	// kernel line.
	Targets map[string]string `json:"targets,omitempty"`
	// LineRule assigns a share of the datacenter's hosts a kernel line.
	LineRule *LineRule `json:"line_rule,omitempty"`
	// Live counts, computed at read time.
	Hosts          int `json:"hosts"`
	Serving        int `json:"serving"`
	SlotsHeld      int `json:"slots_held"`
	EffectiveLimit int `json:"effective_limit"`
}

// DatacenterUpdate changes a datacenter's settings (creating it when
// new); nil fields keep their value.
type DatacenterUpdate struct {
	Tier          *string `json:"tier,omitempty"`
	SlotLimit     *int    `json:"slot_limit,omitempty"`
	SlotPct       *int    `json:"slot_pct,omitempty"`
	MinHealthyPct *int    `json:"min_healthy_pct,omitempty"`
	Window        *string `json:"window,omitempty"`
	FailureBudget *int    `json:"failure_budget,omitempty"`
	// TargetRelease sets the release the datacenter's hosts of its kernel
	// line should run (outside any rollout).
	TargetRelease *string `json:"target_release,omitempty"`
	// UntargetLine clears the target of a kernel line.
	UntargetLine *string `json:"untarget_line,omitempty"`
	// Line and LinePct set the datacenter's line rule: the LinePct %
	// of its hosts chosen by a stable hash of their ids follow kernel
	// line Line (LinePct alone changes the share of the rule in force;
	// LinePct 0 removes it). LineForce accepts a line no registered
	// release is of yet.
	Line      *string `json:"line,omitempty"`
	LinePct   *int    `json:"line_pct,omitempty"`
	LineForce bool    `json:"line_force,omitempty"`
}

// LineRule is a datacenter's kernel line rule as the API shows it.
type LineRule struct {
	Line string `json:"line"`
	Pct  int    `json:"pct"`
	// Hosts counts the datacenter's agent hosts the rule selects, and
	// Following those whose line it is now (the rest wait or were
	// refused, or an operator assigned them another line).
	Hosts     int `json:"hosts"`
	Following int `json:"following"`
}

// HostLineRequest assigns a host a kernel line (POST PathHost + ID +
// PathHostLine); an empty Line clears the operator's assignment. Force
// accepts a line no registered release is of yet.
type HostLineRequest struct {
	Line   string `json:"line,omitempty"`
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// PauseRequest pauses or resumes a datacenter.
type PauseRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Host is a registered host as the coordinator sees it.
type Host struct {
	ID         string `json:"id"`
	Datacenter string `json:"datacenter"`
	// KernelLine is the line the host follows now, LineSource where it
	// comes from: "operator" (krollctl host set-line), "dc-rule" (its
	// datacenter's line rule) or "agent" (the agent's configuration).
	KernelLine string `json:"kernel_line,omitempty"`
	LineSource string `json:"line_source,omitempty"`
	// AgentLine is the line of the agent's configuration (its default);
	// OperatorLine an operator's assignment; AssignedLine the line the
	// agent reports it follows.
	AgentLine    string `json:"agent_line,omitempty"`
	OperatorLine string `json:"operator_line,omitempty"`
	AssignedLine string `json:"assigned_line,omitempty"`
	// PendingLine is the line the host is assigned but not moved to yet,
	// LineWait why (mid-reboot, or a migration refused: never a
	// downgrade).
	PendingLine   string         `json:"pending_line,omitempty"`
	LineWait      string         `json:"line_wait,omitempty"`
	Kernel        string         `json:"kernel,omitempty"`
	Phase         string         `json:"phase,omitempty"`
	LastHeartbeat time.Time      `json:"last_heartbeat"`
	Alive         bool           `json:"alive"`
	Lost          bool           `json:"lost,omitempty"`
	Unhealthy     bool           `json:"unhealthy,omitempty"`
	Policies      []PolicyStatus `json:"policies,omitempty"`
	Slot          *Slot          `json:"slot,omitempty"`
}

// SlotReleaseRequest is an operator's break-glass release.
type SlotReleaseRequest struct {
	Datacenter string `json:"datacenter"`
	HostID     string `json:"host_id"`
	Reason     string `json:"reason,omitempty"`
}

// Event is one entry of the coordinator's bounded event history.
type Event struct {
	ID         uint64    `json:"id"`
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
	Datacenter string    `json:"datacenter,omitempty"`
	Host       string    `json:"host,omitempty"`
	Message    string    `json:"message"`
}

// Status is the cluster overview of `krollctl status`.
type Status struct {
	Leader      string       `json:"leader"`
	Members     []Member     `json:"members"`
	Datacenters []Datacenter `json:"datacenters"`
	// Phases counts hosts per datacenter per phase.
	Phases map[string]map[string]int `json:"phases"`
	// Kernels counts hosts per datacenter per running kernel.
	Kernels map[string]map[string]int `json:"kernels"`
	// Lines counts agent hosts per datacenter per kernel line followed.
	Lines map[string]map[string]int `json:"lines,omitempty"`
}

// Routes of the operator API. {name} and {id} are path parameters.
const (
	PathStatus           = "/api/v1/status"          // GET → Status
	PathMembers          = "/api/v1/cluster/members" // GET → []Member
	PathJoin             = "/api/v1/cluster/join"    // POST JoinRequest → []Member
	PathRemove           = "/api/v1/cluster/remove"  // POST RemoveRequest → []Member
	PathDatacenters      = "/api/v1/datacenters"     // GET → []Datacenter
	PathDatacenter       = "/api/v1/datacenters/"    // + {name}: GET → Datacenter; PUT DatacenterUpdate → Datacenter
	PathDatacenterPause  = "/pause"                  // POST {name}/pause PauseRequest → Datacenter
	PathDatacenterResume = "/resume"                 // POST {name}/resume → Datacenter
	PathSlots            = "/api/v1/slots"           // GET ?dc= → []Slot
	PathSlotsRelease     = "/api/v1/slots/release"   // POST SlotReleaseRequest → Slot (the released one)
	PathHosts            = "/api/v1/hosts"           // GET ?dc= → []Host
	PathHost             = "/api/v1/hosts/"          // + {id}: GET → Host; + {id}/remove: POST HostRemoveRequest → Host (the removed one)
	PathHostRemove       = "/remove"
	PathHostLine         = "/line"                   // + POST HostLineRequest → Host
	PathEvents           = "/api/v1/events"          // GET ?since=ID&limit=N → []Event
	PathReleases         = "/api/v1/releases"        // GET → []Release; POST ReleaseAddRequest → Release
	PathPolicies         = "/api/v1/policies"        // GET → []Policy; POST PolicyPushRequest → Policy
	PathPolicyRetire     = "/api/v1/policies/retire" // POST PolicyRetireRequest → Policy
	PathRollouts         = "/api/v1/rollouts"        // GET → []Rollout; POST RolloutStartRequest → Rollout
	PathFeedBuilds       = "/api/v1/feeds/builds"    // GET → []FeedBuild (builds the feeds refused)
	PathRollout          = "/api/v1/rollouts/"       // + {id}: GET → Rollout; + {id}/pause|resume|abort: POST RolloutActionRequest → Rollout
)

// Roles of operator credentials, each including the ones before it.
const (
	RoleRead    = "read"    // GET routes
	RoleOperate = "operate" // pause/resume, slot release, dc settings
	RoleAdmin   = "admin"   // cluster membership
)

// RolloutStartRequest starts a rollout of a release.
type RolloutStartRequest struct {
	// ID names the rollout; default: the release id.
	ID      string `json:"id,omitempty"`
	Release string `json:"release"`
	// Waves are cumulative fractions of the edge datacenters after the
	// canary, e.g. [0.1, 0.5, 1]; default that.
	Waves []float64 `json:"waves,omitempty"`
	// Canary names the canary datacenters; default the smallest edge one.
	Canary []string `json:"canary,omitempty"`
	// SoakSeconds after staging is healthy; default 24 h (30 min expedited).
	SoakSeconds int64 `json:"soak_seconds,omitempty"`
	// CycleSeconds over which the edge waves are paced; default 28 days.
	CycleSeconds int64 `json:"cycle_seconds,omitempty"`
	// Budget is the per-wave failure budget; default 2.
	Budget *int `json:"budget,omitempty"`
	// Expedite (CVE) skips pacing and maintenance windows, never slot
	// limits or capacity floors; it needs a Reason.
	Expedite bool   `json:"expedite,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Force starts a rollout of a release rejected for its line (a
	// rollout of it failed its staging or canary gate); it needs a Reason.
	Force bool `json:"force,omitempty"`
}

// RolloutActionRequest pauses, resumes or aborts a rollout.
type RolloutActionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Rollout is a rollout and its progress.
type Rollout struct {
	ID           string        `json:"id"`
	Release      string        `json:"release"`
	Line         string        `json:"line"`
	Kernel       string        `json:"kernel"`
	State        string        `json:"state"`
	PauseReason  string        `json:"pause_reason,omitempty"`
	Expedite     bool          `json:"expedite,omitempty"`
	Reason       string        `json:"reason,omitempty"`
	Created      time.Time     `json:"created"`
	SoakSeconds  int64         `json:"soak_seconds"`
	CycleSeconds int64         `json:"cycle_seconds"`
	Budget       int           `json:"budget"`
	Waves        []RolloutWave `json:"waves"`
}

// RolloutWave is one wave and its progress per datacenter.
type RolloutWave struct {
	Name      string           `json:"name"`
	Gates     bool             `json:"gates"`
	Started   time.Time        `json:"started,omitzero"`
	Completed time.Time        `json:"completed,omitzero"`
	Progress  []RolloutDCCount `json:"progress"`
	// Passed is when a staging or canary wave passed its gate (every host
	// healthy on the kernel through the soak).
	Passed time.Time `json:"passed,omitzero"`
}

// RolloutDCCount counts a datacenter's hosts of the rollout's line:
// pending / staged / draining / rebooting / healthy / failed.
type RolloutDCCount struct {
	Datacenter string `json:"datacenter"`
	Hosts      int    `json:"hosts"`
	Pending    int    `json:"pending"`
	Staged     int    `json:"staged"`
	Draining   int    `json:"draining"`
	Rebooting  int    `json:"rebooting"`
	Healthy    int    `json:"healthy"`
	Failed     int    `json:"failed"`
}
