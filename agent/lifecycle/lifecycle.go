// Package lifecycle is the agent's state machine: it takes a host from
// "running the old kernel, serving traffic" to "running the new kernel,
// checked, serving again" while holding exactly one reboot slot, and it
// resumes from its journal after being killed at any step.
//
//	idle → staging → staged → installing → waiting-slot → draining → rebooting ⇒ verifying → healthy → idle
//	failures: staging-failed, install-failed (retry), drain-timeout, wrong-kernel, unhealthy → rollback → failed
//
// Each host concern sits behind a small interface (Coordinator, Stager,
// Installer, Announcer, Drainer, Booter, Verifier, JournalStore); Agent composes them.
// Every step that changes the host is preceded by a durable journal write,
// and a step that finds the host already changed (a new boot id, routes
// already withdrawn) moves on instead of repeating it.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/agent/anycast"
	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/bootloader"
	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/agent/stage"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Coordinator is the agent API of the regional coordinator
// (*client.Client implements it).
type Coordinator interface {
	Heartbeat(ctx context.Context, hb wire.Heartbeat) (*wire.DesiredState, error)
	AcquireSlot(ctx context.Context, req wire.SlotRequest) (*wire.Slot, error)
	RenewSlot(ctx context.Context, req wire.SlotRequest) (*wire.Slot, error)
	AgentRelease(ctx context.Context, req wire.SlotRequest) error
	ReportHealth(ctx context.Context, rep wire.HealthReport) error
}

// Stager fetches, verifies and unpacks a signed release (*stage.Stager).
// Verify only decodes the manifest and checks its signature.
type Stager interface {
	Verify(manifest, sig []byte) (release.Manifest, error)
	Stage(ctx context.Context, manifest, sig []byte) (*stage.Staged, error)
}

// Announcer withdraws and restores the host's anycast routes
// (*anycast.Routes). List tells what Withdraw would remove, so the routes
// are journaled before they leave the kernel.
type Announcer interface {
	List(ctx context.Context) ([]anycast.Route, error)
	anycast.Announcer
}

// Booter boots into a kernel (*boot.Booter).
type Booter interface {
	Mode() boot.Mode
	Cmdline() (string, error)
	KexecSupported() error
	Boot(ctx context.Context, m boot.Method, img boot.Image) (boot.Method, error)
}

// Verifier checks the host after a boot (*health.Checker).
type Verifier interface {
	Check(ctx context.Context, want health.Expect) (health.Result, error)
}

// DatacenterView is the host's own view of its datacenter, from its
// gossip pool (*dcguard.Guard). Check runs with the limits the coordinator
// sent right before the host goes out of service and returns an error when
// the view shows the datacenter cannot lose the host now; the agent then
// gives the slot back with that reason. View summarizes the view for the
// heartbeats (nil = none).
type DatacenterView interface {
	Check(ctx context.Context, limits *wire.DatacenterLimits) error
	View() *wire.DCView
}

// JournalStore persists the journal (*journal.Store).
type JournalStore interface {
	Load(now time.Time) (*journal.Journal, error)
	Save(j *journal.Journal, now time.Time) error
}

// DrainPolicy says how long to wait for connections to drain.
type DrainPolicy struct {
	// Threshold: drained when at most this many established connections
	// to anycast addresses remain.
	Threshold int
	// Deadline bounds the wait; default 5 minutes.
	Deadline time.Duration
	// Poll is the interval between counts; default 1 second.
	Poll time.Duration
	// AbortOnTimeout gives the slot back (routes restored) when the
	// deadline passes; the default proceeds with the reboot, logged.
	AbortOnTimeout bool
}

// Config configures an Agent.
type Config struct {
	HostID     string
	Datacenter string
	// KernelLine is the LTS line the host follows (e.g. "6.1"); it only
	// receives releases of that line.
	KernelLine string

	Coordinator Coordinator
	Stager      Stager
	// Routes and Drainer may be nil on hosts without anycast.
	Routes  Announcer
	Drainer anycast.Drainer
	Booter  Booter
	// BootLoader sets the one-shot entry of a full reboot into the target
	// and, once it is verified, the default entry; nil means not managed
	// by the operator's choice (bootloader.None{Explicit: true}).
	BootLoader BootLoader
	Verifier   Verifier
	Journal    JournalStore
	// Installer installs the staged kernel (with its modules and initrd)
	// between staged and waiting-slot; nil skips the install step (the
	// staged kernel is booted as it is).
	Installer Installer
	// Policies reports the mitigation policies (reconciling them first),
	// for heartbeats and for the post-boot check; nil means none. It
	// returns the statuses it has together with an error when part of it
	// failed: heartbeats report the statuses either way.
	Policies func(ctx context.Context) ([]wire.PolicyStatus, error)
	// PinnedPolicies lists, without changing anything, the policies
	// pinned right before the boot: those must be in force again after
	// it. An error means the pins cannot be listed; nil uses Policies.
	PinnedPolicies func(ctx context.Context) ([]wire.PolicyStatus, error)

	// Kernel is the running kernel (release, version, boot id);
	// running.ProcFS{} (/proc) when nil. Tests use a fake proc tree.
	Kernel running.Kernel
	// BootDir holds the installed kernels (vmlinuz-<release>,
	// initrd.img-<release>): the rollback target and the initrd of a
	// staged kernel without one. Default /boot.
	BootDir string
	// LSMFile lists the running kernel's active LSMs; default
	// /sys/kernel/security/lsm. A release that would drop the bpf LSM
	// while it is in force is refused.
	LSMFile string
	// Initrd, when set, is the initrd for every staged kernel without
	// one of its own (a path, "{release}" replaced by the kernel release).
	Initrd string
	// Drain is the drain policy.
	Drain DrainPolicy
	// MaxBoots bounds the boots per release, rollback included; default 3.
	MaxBoots int
	// RetryInterval is the pause after a denied slot or a failed call;
	// default 15 s. Staging failures back off from it up to MaxBackoff.
	RetryInterval time.Duration
	// MaxBackoff caps the backoff; default 10 minutes.
	MaxBackoff time.Duration
	// HeartbeatInterval is used until the coordinator says otherwise;
	// default 10 s.
	HeartbeatInterval time.Duration
	// RenewInterval is how often a held slot is renewed; default 15 s.
	// Renewals are never later than half the time left on the lease.
	RenewInterval time.Duration
	// ErrorBackoff and ErrorBackoffMax pace the retries of failed
	// heartbeats and renewals: exponential from ErrorBackoff (default
	// 1 s) up to ErrorBackoffMax (default 30 s: every agent is heard again
	// within a new leader's grace of three heartbeat intervals), each wait
	// drawn uniformly from [0, current] (full jitter), reset on success.
	// A Retry-After from the coordinator is a floor; a lease is a ceiling.
	ErrorBackoff, ErrorBackoffMax time.Duration
	// Rand returns uniform numbers in [0, 1) for the jitter; nil uses
	// math/rand/v2 (tests inject their own).
	Rand func() float64
	// Sleep waits between heartbeats and between renewals (d, or until
	// ctx ends: then an error); nil uses a timer (tests record the waits).
	Sleep func(ctx context.Context, d time.Duration) error
	// ResetFile is a file whose existence asks a failed agent to return
	// to service (kroll-agent reset creates it); "" disables.
	ResetFile string
	// Local is the host's own view of its datacenter (*dcguard.Guard):
	// reported with every heartbeat, and checked before the host goes out
	// of service (before the drain and before the first boot). nil = no
	// view and no check.
	Local DatacenterView
	// GossipAddr is the host's gossip member address, for heartbeats.
	GossipAddr string
	// OnDesired is called with every desired state the coordinator sends
	// (e.g. to apply pushed policies); nil = nothing.
	OnDesired func(ctx context.Context, ds *wire.DesiredState)

	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// ErrRebooting is returned by Step once a real boot was started: the
// process should wait to be stopped.
var ErrRebooting = errors.New("lifecycle: boot started; waiting for the system to go down")

// Agent runs the lifecycle.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	j       *journal.Journal
	desired *wire.DesiredState
	wake    chan struct{}
	// rewithdrawn is set once this process made sure routes journaled as
	// withdrawn are not announced (boot-time network configuration may
	// have added them again).
	rewithdrawn bool
	// unverified is the release id and error of the last desired release
	// whose manifest did not verify (logged once).
	unverified string
}

// New loads the journal and returns an Agent.
func New(cfg Config) (*Agent, error) {
	var missing []string
	for name, ok := range map[string]bool{
		"HostID": cfg.HostID != "", "Datacenter": cfg.Datacenter != "", "Coordinator": cfg.Coordinator != nil,
		"Stager": cfg.Stager != nil, "Booter": cfg.Booter != nil, "Verifier": cfg.Verifier != nil, "Journal": cfg.Journal != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("lifecycle: Config needs %s", strings.Join(missing, ", "))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Kernel == nil {
		cfg.Kernel = running.ProcFS{}
	}
	if cfg.BootDir == "" {
		cfg.BootDir = "/boot"
	}
	if cfg.BootLoader == nil {
		cfg.BootLoader = bootloader.None{Explicit: true}
	}
	if cfg.LSMFile == "" {
		cfg.LSMFile = "/sys/kernel/security/lsm"
	}
	if cfg.MaxBoots <= 0 {
		cfg.MaxBoots = 3
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 15 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.RenewInterval <= 0 {
		cfg.RenewInterval = 15 * time.Second
	}
	if cfg.ErrorBackoff <= 0 {
		cfg.ErrorBackoff = time.Second
	}
	if cfg.ErrorBackoffMax <= 0 {
		cfg.ErrorBackoffMax = 30 * time.Second
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Drain.Deadline <= 0 {
		cfg.Drain.Deadline = 5 * time.Minute
	}
	if cfg.Drain.Poll <= 0 {
		cfg.Drain.Poll = time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	j, err := cfg.Journal.Load(cfg.Now())
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, j: j, wake: make(chan struct{}, 1)}
	a.cfg.Metrics.setPhase(j.Phase, j.PhaseSince)
	return a, nil
}

// Phase returns the current phase.
func (a *Agent) Phase() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.j.Phase
}

// Journal returns a copy of the current journal.
func (a *Agent) Journal() *journal.Journal {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.j.Clone()
}

// save applies change to a copy of the journal and persists it; the
// in-memory journal changes only when the write succeeded.
func (a *Agent) save(change func(j *journal.Journal)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := a.j.Clone()
	change(next)
	now := a.cfg.Now()
	if next.Phase != a.j.Phase {
		next.PhaseSince = now
		next.Failures = 0
	}
	if err := a.cfg.Journal.Save(next, now); err != nil {
		return err
	}
	if next.Phase != a.j.Phase {
		a.log.Info("phase", "from", a.j.Phase, "to", next.Phase, "release", targetID(next))
		a.cfg.Metrics.setPhase(next.Phase, now)
	}
	a.j = next
	return nil
}

func targetID(j *journal.Journal) string {
	if j.Target == nil {
		return ""
	}
	return j.Target.ID
}

// SetDesired records the coordinator's answer to a heartbeat.
func (a *Agent) SetDesired(ds *wire.DesiredState) {
	a.mu.Lock()
	changed := a.desired == nil || (a.desired.Release == nil) != (ds.Release == nil) ||
		(ds.Release != nil && a.desired.Release != nil && a.desired.Release.ID != ds.Release.ID)
	a.desired = ds
	a.mu.Unlock()
	if changed {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

func (a *Agent) desiredState() *wire.DesiredState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.desired
}

// Step advances the lifecycle by at most one transition and returns how
// long to wait before the next step. It returns ErrRebooting once a real
// boot was started.
func (a *Agent) Step(ctx context.Context) (time.Duration, error) {
	j := a.Journal()
	if j.Withdrawn && !a.rewithdrawn && a.cfg.Routes != nil && j.Phase != wire.PhaseHealthy {
		// After a boot the network configuration may announce the anycast
		// routes again; until the host is healthy they stay withdrawn.
		removed, err := a.cfg.Routes.Withdraw(ctx)
		if err != nil {
			return a.cfg.RetryInterval, fmt.Errorf("lifecycle: keep anycast routes withdrawn: %w", err)
		}
		if len(removed) > 0 {
			a.log.Info("anycast routes announced at boot withdrawn again", "routes", len(removed))
			if err := a.save(func(n *journal.Journal) { n.Routes = mergeRoutes(n.Routes, removed) }); err != nil {
				return 0, err
			}
		}
		a.rewithdrawn = true
	}
	switch j.Phase {
	case wire.PhaseIdle:
		return a.stepIdle(ctx, j)
	case wire.PhaseStaging:
		return a.stepStaging(ctx, j)
	case wire.PhaseStagingFailed:
		if a.abandoned(j) {
			return 0, a.abandon(j, "target changed while staging failed")
		}
		return 0, a.save(func(n *journal.Journal) { n.Phase = wire.PhaseStaging; n.Failures = j.Failures })
	case wire.PhaseStaged:
		return 0, a.stepStaged(j)
	case wire.PhaseInstalling:
		return a.stepInstalling(ctx, j)
	case wire.PhaseInstallFailed:
		if a.abandoned(j) {
			return 0, a.abandon(j, "target changed while the install failed")
		}
		return 0, a.save(func(n *journal.Journal) { n.Phase = wire.PhaseInstalling; n.Failures = j.Failures })
	case wire.PhaseWaitingSlot:
		return a.stepWaitingSlot(ctx, j)
	case wire.PhaseDraining:
		return a.stepDraining(ctx, j)
	case wire.PhaseDrainTimeout:
		return a.stepGiveBack(ctx, j, wire.PhaseStaged)
	case wire.PhaseRebooting:
		return a.stepRebooting(ctx, j)
	case wire.PhaseVerifying, wire.PhaseWrongKernel, wire.PhaseUnhealthy:
		return a.stepVerifying(ctx, j)
	case wire.PhaseRollback:
		return 0, a.save(func(n *journal.Journal) { n.Rollback = true; n.Phase = wire.PhaseRebooting })
	case wire.PhaseHealthy:
		return a.stepHealthy(ctx, j)
	case wire.PhaseFailed:
		return a.stepFailed(ctx, j)
	}
	return 0, fmt.Errorf("lifecycle: journal has unknown phase %q", j.Phase)
}

// reportedMark replaces the health summary once it was reported.
const reportedMark = "reported healthy"
