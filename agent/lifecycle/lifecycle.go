// Package lifecycle is the agent's state machine: it takes a host from
// "running the old kernel, serving traffic" to "running the new kernel,
// checked, serving again" while holding exactly one reboot slot, and it
// resumes from its journal after being killed at any step.
//
//	idle → staging → staged → waiting-slot → draining → rebooting ⇒ verifying → healthy → idle
//	failures: staging-failed (retry), drain-timeout, wrong-kernel, unhealthy → rollback → failed
//
// Each host concern sits behind a small interface (Coordinator, Stager,
// Announcer, Drainer, Booter, Verifier, JournalStore); Agent composes them.
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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/agent/anycast"
	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/stage"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/kversion"
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
	BootID() (string, error)
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
	Routes   Announcer
	Drainer  anycast.Drainer
	Booter   Booter
	Verifier Verifier
	Journal  JournalStore
	// Policies reports the mitigation policies (reconciling them first),
	// for heartbeats and for the post-boot check; nil means none. It
	// returns the statuses it has together with an error when part of it
	// failed: heartbeats report the statuses either way.
	Policies func(ctx context.Context) ([]wire.PolicyStatus, error)
	// PinnedPolicies lists, without changing anything, the policies
	// pinned right before the boot: those must be in force again after
	// it. An error means the pins cannot be listed; nil uses Policies.
	PinnedPolicies func(ctx context.Context) ([]wire.PolicyStatus, error)

	// ProcDir is /proc (tests use a fake).
	ProcDir string
	// BootDir holds the installed kernels (vmlinuz-<release>,
	// initrd.img-<release>): the rollback target and the initrd of a
	// staged kernel without one. Default /boot.
	BootDir string
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
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	if cfg.BootDir == "" {
		cfg.BootDir = "/boot"
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
		return 0, a.save(func(n *journal.Journal) { n.Phase = wire.PhaseWaitingSlot })
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

// abandoned reports whether the coordinator no longer wants j's target.
// Without an answer yet (just started) the target stands.
func (a *Agent) abandoned(j *journal.Journal) bool {
	ds := a.desiredState()
	return ds != nil && j.Target != nil && (ds.Release == nil || ds.Release.ID != j.Target.ID)
}

// abandon drops a target that was not acted on yet (no slot, no routes).
func (a *Agent) abandon(j *journal.Journal, why string) error {
	a.log.Info("abandoning release", "release", targetID(j), "why", why)
	return a.save(func(n *journal.Journal) {
		n.Target, n.Staged, n.Error = nil, nil, ""
		n.Phase = wire.PhaseIdle
	})
}

func (a *Agent) stepIdle(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	ds := a.desiredState()
	if ds == nil || ds.Release == nil {
		return a.cfg.HeartbeatInterval, nil
	}
	id := ds.Release.ID
	if _, done := j.Done[id]; done {
		return a.cfg.HeartbeatInterval, nil
	}
	// Verify before recording anything under id: an outcome is kept for
	// good, so a forged or damaged desired state (bad signature, or a
	// signed manifest of another release) must not block the release id
	// on this host. It is refused now and looked at again next time.
	m, err := a.cfg.Stager.Verify(ds.Release.Manifest, ds.Release.Signature)
	if err == nil && m.ID != id {
		err = fmt.Errorf("signed manifest is release %q, not %q", m.ID, id)
	}
	if err != nil {
		a.refuseUnverified(id, err)
		return a.cfg.HeartbeatInterval, nil
	}
	finish := func(outcome string) error {
		a.log.Info("release not rolled out", "release", id, "outcome", outcome)
		return a.save(func(n *journal.Journal) {
			if n.Done == nil {
				n.Done = map[string]string{}
			}
			n.Done[id] = outcome
		})
	}
	running, err := a.kernelRelease()
	if err != nil {
		return a.cfg.RetryInterval, err
	}
	if running == m.KernelVersion {
		return a.cfg.HeartbeatInterval, finish("current")
	}
	if m.Line != a.cfg.KernelLine {
		return a.cfg.HeartbeatInterval, finish(fmt.Sprintf("refused: release line %s, host line %s", m.Line, a.cfg.KernelLine))
	}
	reason, err := a.downgrade(m)
	if err != nil {
		// The host could not be read: not the release's fault, nothing
		// is recorded; tried again.
		return a.cfg.RetryInterval, err
	}
	if reason != "" {
		return a.cfg.HeartbeatInterval, finish("refused: " + reason)
	}
	return 0, a.save(func(n *journal.Journal) {
		n.Target = &journal.Target{ID: id, KernelRelease: m.KernelVersion, UpstreamVersion: m.UpstreamVersion,
			Manifest: ds.Release.Manifest, Signature: ds.Release.Signature}
		n.Staged, n.Boots, n.Previous, n.Rollback, n.KexecFailed, n.Error, n.Health = nil, nil, nil, false, false, "", ""
		n.ReportedUnhealthy = false
		n.Phase = wire.PhaseStaging
	})
}

// refuseUnverified logs a desired release that failed verification, once
// per release id and error.
func (a *Agent) refuseUnverified(id string, err error) {
	a.mu.Lock()
	key := id + "\x00" + err.Error()
	repeated := a.unverified == key
	a.unverified = key
	a.mu.Unlock()
	if !repeated {
		a.log.Warn("desired release refused: its manifest does not verify", "release", id, "err", err)
	}
}

// downgrade explains why m would not be an upgrade of the running kernel,
// or returns "". An error means the running kernel's version could not be
// read or parsed: a problem of the host, never recorded as the release's
// outcome. The order is the full build version
// (kversion.CompareBuild): a target must be strictly newer than the running
// kernel, also within one upstream version (6.1.0-47-amd64 is older than
// 6.1.0-56-amd64 even when both say 6.1.192), so an older signed build
// cannot be pushed as a target.
func (a *Agent) downgrade(m release.Manifest) (string, error) {
	data, err := os.ReadFile(filepath.Join(a.cfg.ProcDir, "version"))
	if err != nil {
		return "", fmt.Errorf("lifecycle: cannot read the running kernel's version: %w", err)
	}
	running, err := kversion.ParseProcVersion(string(data))
	if err != nil {
		return "", fmt.Errorf("lifecycle: cannot parse the running kernel's version: %w", err)
	}
	target, err := kversion.ParseBuild(m.KernelVersion, m.UpstreamVersion)
	if err != nil {
		return fmt.Sprintf("release kernel %q (upstream %q): %v", m.KernelVersion, m.UpstreamVersion, err), nil
	}
	c, err := kversion.CompareBuild(target, running)
	if err != nil {
		return fmt.Sprintf("%s is not known to be newer than the running kernel %s: %v", target.Describe(), running.Describe(), err), nil
	}
	if c <= 0 {
		return fmt.Sprintf("%s is not newer than the running kernel %s", target.Describe(), running.Describe()), nil
	}
	return "", nil
}

func (a *Agent) kernelRelease() (string, error) {
	b, err := os.ReadFile(filepath.Join(a.cfg.ProcDir, "sys/kernel/osrelease"))
	if err != nil {
		return "", fmt.Errorf("lifecycle: running kernel: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (a *Agent) backoff(failures int) time.Duration {
	d := a.cfg.RetryInterval
	for i := 1; i < failures && d < a.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, a.cfg.MaxBackoff)
}

func (a *Agent) stepStaging(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if a.abandoned(j) {
		return 0, a.abandon(j, "target changed before staging")
	}
	start := a.cfg.Now()
	st, err := a.cfg.Stager.Stage(ctx, j.Target.Manifest, j.Target.Signature)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		fails := j.Failures + 1
		a.log.Warn("staging failed", "release", j.Target.ID, "attempt", fails, "err", err)
		a.cfg.Metrics.StageFailures.Inc()
		return a.backoff(fails), a.save(func(n *journal.Journal) {
			n.Phase, n.Error = wire.PhaseStagingFailed, err.Error()
			n.Failures = fails
		})
	}
	a.cfg.Metrics.StageSeconds.Observe(a.cfg.Now().Sub(start).Seconds())
	initrd := st.Initrd
	if initrd == "" {
		initrd = a.initrdFor(st.KernelRelease)
	}
	return 0, a.save(func(n *journal.Journal) {
		n.Staged = &journal.Staged{Vmlinuz: st.Vmlinuz, Initrd: initrd, KernelRelease: st.KernelRelease}
		n.Error = ""
		n.Phase = wire.PhaseStaged
	})
}

// initrdFor finds the initrd for a kernel release: the configured one, or
// BootDir/initrd.img-<release> when it exists.
func (a *Agent) initrdFor(rel string) string {
	if a.cfg.Initrd != "" {
		return strings.ReplaceAll(a.cfg.Initrd, "{release}", rel)
	}
	p := filepath.Join(a.cfg.BootDir, "initrd.img-"+rel)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

func (a *Agent) slotRequest(token uint64) wire.SlotRequest {
	return wire.SlotRequest{HostID: a.cfg.HostID, Datacenter: a.cfg.Datacenter, Token: token}
}

func (a *Agent) stepWaitingSlot(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if a.abandoned(j) {
		return 0, a.abandon(j, "target changed while waiting for a slot")
	}
	sl, err := a.cfg.Coordinator.AcquireSlot(ctx, a.slotRequest(0))
	if err != nil {
		kind := client.ErrorKind(err)
		if strings.HasPrefix(kind, "failed_lock_") {
			a.log.Info("slot denied", "kind", kind, "err", err)
			a.cfg.Metrics.SlotDenials.WithLabelValues(kind).Inc()
		} else {
			a.log.Warn("slot request failed", "err", err)
		}
		return a.cfg.RetryInterval, nil
	}
	a.log.Info("slot granted", "datacenter", sl.Datacenter, "token", sl.Token, "lease_expires", sl.LeaseExpires)
	return 0, a.save(func(n *journal.Journal) {
		n.Slot = &journal.Slot{Datacenter: sl.Datacenter, Token: sl.Token, LeaseExpires: sl.LeaseExpires}
		n.Phase = wire.PhaseDraining
	})
}

// guard runs Config.Local's check; a refusal gives the slot back with its
// reason. Until the coordinator answered a heartbeat (an agent restarted
// while holding a slot) there are no limits to check against: it waits
// (stop is true) for the first desired state, holding the slot and
// changing nothing.
func (a *Agent) guard(ctx context.Context, j *journal.Journal) (stop bool, wait time.Duration, err error) {
	if a.cfg.Local == nil {
		return false, 0, nil
	}
	ds := a.desiredState()
	if ds == nil {
		a.log.Info("waiting for the coordinator's first desired state (its datacenter limits) before the datacenter-local check")
		return true, a.cfg.RetryInterval, nil
	}
	gerr := a.cfg.Local.Check(ctx, ds.Datacenter)
	if gerr == nil {
		return false, 0, nil
	}
	a.log.Warn("datacenter-local guard refuses the reboot; giving the slot back", "why", gerr)
	a.cfg.Metrics.GuardRefusals.Inc()
	wait, err = a.giveBack(ctx, j, wire.PhaseStaged, "local guard: "+gerr.Error())
	return true, wait, err
}

func (a *Agent) stepDraining(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if !j.Withdrawn && j.Routes == nil {
		if refused, wait, err := a.guard(ctx, j); refused {
			return wait, err
		}
	}
	if a.cfg.Routes != nil && !j.Withdrawn {
		if j.Routes == nil {
			// Journal what is about to be withdrawn first: a crash between
			// the withdrawal and the next write must not lose routes.
			rs, err := a.cfg.Routes.List(ctx)
			if err != nil {
				return a.cfg.RetryInterval, fmt.Errorf("lifecycle: list anycast routes: %w", err)
			}
			if rs == nil {
				rs = []anycast.Route{}
			}
			return 0, a.save(func(n *journal.Journal) { n.Routes = rs })
		}
		removed, err := a.cfg.Routes.Withdraw(ctx)
		if err != nil {
			return a.cfg.RetryInterval, fmt.Errorf("lifecycle: withdraw anycast routes: %w", err)
		}
		a.log.Info("anycast routes withdrawn", "routes", len(removed))
		return 0, a.save(func(n *journal.Journal) {
			n.Routes = mergeRoutes(n.Routes, removed)
			n.Withdrawn = true
		})
	}
	if a.cfg.Drainer != nil {
		left := a.cfg.Drain.Deadline - a.cfg.Now().Sub(j.PhaseSince)
		if left > 0 {
			res, err := a.cfg.Drainer.Wait(ctx, a.cfg.Drain.Threshold, left, a.cfg.Drain.Poll)
			if err != nil {
				return a.cfg.RetryInterval, fmt.Errorf("lifecycle: drain: %w", err)
			}
			a.cfg.Metrics.DrainConnections.Set(float64(res.Count))
			if !res.Drained {
				if a.cfg.Drain.AbortOnTimeout {
					a.log.Warn("drain deadline passed; giving the slot back", "connections", res.Count)
					return 0, a.save(func(n *journal.Journal) {
						n.Phase, n.Error = wire.PhaseDrainTimeout, fmt.Sprintf("%d connections left at the drain deadline", res.Count)
					})
				}
				a.log.Warn("drain deadline passed; proceeding", "connections", res.Count, "elapsed", res.Elapsed)
			} else {
				a.log.Info("drained", "connections", res.Count, "elapsed", res.Elapsed)
			}
		}
	}
	prev, err := a.currentKernel()
	if err != nil {
		return a.cfg.RetryInterval, err
	}
	inForce, err := a.policiesInForce(ctx)
	if err != nil {
		// Without knowing what must be in force after the boot, do not
		// boot; and do not stay out of service holding the slot either.
		fails := j.Failures + 1
		if fails >= maxPolicyListFailures {
			a.log.Warn("cannot list the mitigations in force; giving the slot back", "attempts", fails, "err", err)
			return a.giveBack(ctx, j, wire.PhaseStaged, "mitigations in force unknown before the boot: "+truncate(err.Error(), 200))
		}
		if serr := a.save(func(n *journal.Journal) { n.Failures = fails }); serr != nil {
			return 0, serr
		}
		return a.cfg.RetryInterval, err
	}
	return 0, a.save(func(n *journal.Journal) {
		if n.Previous == nil {
			n.Previous = prev
			n.Policies = inForce
		}
		n.Phase = wire.PhaseRebooting
	})
}

// mergeRoutes returns the routes of a and b without duplicates.
func mergeRoutes(a, b []anycast.Route) []anycast.Route {
	out := append([]anycast.Route{}, a...)
	for _, r := range b {
		dup := false
		for _, o := range out {
			if o.String() == r.String() {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, r)
		}
	}
	return out
}

// currentKernel describes the running kernel as the rollback target.
func (a *Agent) currentKernel() (*journal.Kernel, error) {
	rel, err := a.kernelRelease()
	if err != nil {
		return nil, err
	}
	id, err := a.cfg.Booter.BootID()
	if err != nil {
		return nil, fmt.Errorf("lifecycle: boot id: %w", err)
	}
	cmdline, err := a.cfg.Booter.Cmdline()
	if err != nil {
		return nil, fmt.Errorf("lifecycle: command line: %w", err)
	}
	k := &journal.Kernel{Release: rel, BootID: id, Cmdline: cmdline, Vmlinuz: filepath.Join(a.cfg.BootDir, "vmlinuz-"+rel)}
	if _, err := os.Stat(k.Vmlinuz); err != nil {
		k.Vmlinuz = ""
	}
	k.Initrd = a.initrdFor(rel)
	return k, nil
}

// renew renews the held slot; lost is true when the coordinator no longer
// accepts its fencing token.
func (a *Agent) renew(ctx context.Context, sl *journal.Slot) (lost bool, err error) {
	got, err := a.cfg.Coordinator.RenewSlot(ctx, a.slotRequest(sl.Token))
	if err != nil {
		switch client.ErrorKind(err) {
		case wire.KindStaleToken, wire.KindNotHolder:
			return true, err
		}
		return false, err
	}
	a.mu.Lock()
	if a.j.Slot != nil && a.j.Slot.Token == got.Token {
		a.j.Slot.LeaseExpires = got.LeaseExpires
	}
	a.mu.Unlock()
	return false, nil
}

func (a *Agent) stepRebooting(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	cur, err := a.cfg.Booter.BootID()
	if err != nil {
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: boot id: %w", err)
	}
	if lb := j.LastBoot(); lb != nil && !lb.Completed && cur != lb.BootIDBefore {
		a.log.Info("new boot", "boot_id", cur, "method", lb.Method, "into", lb.Into)
		return 0, a.save(func(n *journal.Journal) {
			n.Boots[len(n.Boots)-1].Completed = true
			n.Phase = wire.PhaseVerifying
		})
	}
	if len(j.Boots) >= a.cfg.MaxBoots {
		return 0, a.fail(ctx, j, fmt.Sprintf("%d boots attempted for %s without success", len(j.Boots), j.Target.ID))
	}
	// Fencing: never boot unless the coordinator still accepts our token.
	if j.Slot == nil {
		return 0, a.save(func(n *journal.Journal) { n.Phase = wire.PhaseWaitingSlot })
	}
	if a.cfg.Routes != nil && !j.Withdrawn {
		// Never boot while announcing: withdraw (and drain) first.
		return 0, a.save(func(n *journal.Journal) { n.Phase = wire.PhaseDraining })
	}
	if lost, err := a.renew(ctx, j.Slot); err != nil {
		if lost {
			a.log.Warn("slot lost before the boot; giving up this attempt", "err", err)
			return a.stepGiveBack(ctx, j, wire.PhaseStaged)
		}
		if a.cfg.Now().After(j.Slot.LeaseExpires) {
			// The coordinator has been unreachable for a whole lease: do
			// not stay out of service waiting for it.
			a.log.Warn("cannot renew the slot and its lease ran out; returning to service", "err", err)
			return a.stepGiveBack(ctx, j, wire.PhaseStaged)
		}
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: renew slot before boot: %w", err)
	}
	if len(j.Boots) == 0 {
		if refused, wait, err := a.guard(ctx, j); refused {
			return wait, err
		}
	}
	img, into, err := a.bootImage(j)
	if err != nil {
		return 0, a.fail(ctx, j, err.Error())
	}
	method := boot.MethodKexec
	if j.KexecFailed {
		method = boot.MethodReboot
	} else if err := a.cfg.Booter.KexecSupported(); err != nil {
		a.log.Warn("kexec unavailable; using a full reboot", "err", err)
		method = boot.MethodReboot
	}
	if err := a.save(func(n *journal.Journal) {
		n.Boots = append(n.Boots, journal.Boot{Method: string(method), Into: into, BootIDBefore: cur, Started: a.cfg.Now(), Rollback: n.Rollback})
	}); err != nil {
		return 0, err
	}
	a.log.Info("booting", "method", method, "into", into, "kernel", img.Kernel, "initrd", img.Initrd, "rollback", j.Rollback)
	used, err := a.cfg.Booter.Boot(ctx, method, img)
	if err != nil {
		// The boot did not happen: forget the attempt.
		kexecOut := errors.Is(err, boot.ErrKexecUnavailable)
		if serr := a.save(func(n *journal.Journal) {
			n.Boots = n.Boots[:len(n.Boots)-1]
			n.Error = err.Error()
			if kexecOut {
				n.KexecFailed = true
			}
		}); serr != nil {
			return 0, serr
		}
		if kexecOut {
			a.log.Warn("kexec refused; falling back to a full reboot", "err", err)
			return 0, nil
		}
		fails := j.Failures + 1
		if fails >= 3 {
			return 0, a.fail(ctx, a.Journal(), fmt.Sprintf("boot failed %d times: %v", fails, err))
		}
		if serr := a.save(func(n *journal.Journal) { n.Failures = fails }); serr != nil {
			return 0, serr
		}
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: boot: %w", err)
	}
	a.cfg.Metrics.Reboots.WithLabelValues(string(used)).Inc()
	if used == boot.MethodDryRun {
		a.log.Warn("dry-run: no boot performed (configure [boot] mode to boot for real)")
		return 0, a.save(func(n *journal.Journal) {
			n.Boots[len(n.Boots)-1].Method = string(boot.MethodDryRun)
			n.Boots[len(n.Boots)-1].Completed = true
			n.Phase = wire.PhaseVerifying
		})
	}
	if used != method {
		if err := a.save(func(n *journal.Journal) { n.Boots[len(n.Boots)-1].Method = string(used) }); err != nil {
			return 0, err
		}
	}
	return 0, ErrRebooting
}

// bootImage returns what to boot: the staged kernel, or the previous one
// for a rollback.
func (a *Agent) bootImage(j *journal.Journal) (boot.Image, string, error) {
	if j.Rollback {
		if j.Previous == nil || j.Previous.Vmlinuz == "" {
			return boot.Image{}, "", errors.New("rollback impossible: the previous kernel's image is unknown")
		}
		return boot.Image{Kernel: j.Previous.Vmlinuz, Initrd: j.Previous.Initrd, Cmdline: j.Previous.Cmdline}, j.Previous.Release, nil
	}
	if j.Staged == nil {
		return boot.Image{}, "", errors.New("nothing staged")
	}
	img := boot.Image{Kernel: j.Staged.Vmlinuz, Initrd: j.Staged.Initrd}
	if j.Previous != nil {
		img.Cmdline = j.Previous.Cmdline
	}
	return img, j.Staged.KernelRelease, nil
}

// maxPolicyListFailures bounds the attempts to list the mitigations in
// force before the boot; then the slot is given back.
const maxPolicyListFailures = 3

// policiesInForce lists the ids of the policies enforcing or auditing:
// what is pinned (Config.PinnedPolicies), without changing it.
func (a *Agent) policiesInForce(ctx context.Context) ([]string, error) {
	list := a.cfg.PinnedPolicies
	if list == nil {
		list = a.cfg.Policies
	}
	if list == nil {
		return nil, nil
	}
	ps, err := list(ctx)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: list mitigations: %w", err)
	}
	var ids []string
	for _, p := range ps {
		if p.State.InForce() {
			ids = append(ids, p.ID)
		}
	}
	return ids, nil
}

// expectedPolicies are the policies in force before the boot that the
// running kernel has not retired (a kernel containing the fix retires its
// stopgap).
func (a *Agent) expectedPolicies(ctx context.Context, before []string) []string {
	if a.cfg.Policies == nil || len(before) == 0 {
		return before
	}
	ps, err := a.cfg.Policies(ctx)
	if err != nil && len(ps) == 0 {
		return before // the check itself reports the failure
	}
	retired := map[string]bool{}
	for _, p := range ps {
		if p.State == wire.PolicyRetired {
			retired[p.ID] = true
		}
	}
	var out []string
	for _, id := range before {
		if !retired[id] {
			out = append(out, id)
		}
	}
	return out
}

func (a *Agent) stepVerifying(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	lb := j.LastBoot()
	if lb == nil || !lb.Completed {
		return 0, a.save(func(n *journal.Journal) { n.Phase = wire.PhaseRebooting })
	}
	if j.Slot != nil {
		if _, err := a.renew(ctx, j.Slot); err != nil {
			a.log.Warn("slot renewal after boot failed", "err", err)
		}
	}
	want := health.Expect{KernelRelease: lb.Into, PreviousBootID: lb.BootIDBefore}
	if !lb.Rollback && j.Target != nil {
		want.UpstreamVersion = j.Target.UpstreamVersion
	}
	if lb.Method == string(boot.MethodDryRun) {
		rel, err := a.kernelRelease()
		if err != nil {
			return a.cfg.RetryInterval, err
		}
		want = health.Expect{KernelRelease: rel}
	}
	// Policies that were in force before must be again.
	want.Policies = a.expectedPolicies(ctx, j.Policies)
	res, err := a.cfg.Verifier.Check(ctx, want)
	if err != nil {
		return a.cfg.RetryInterval, fmt.Errorf("lifecycle: health check: %w", err)
	}
	summary := res.Summary()
	a.log.Info("health", "healthy", res.Healthy, "summary", summary, "rollback", j.Rollback)
	wrongKernel := false
	for _, c := range res.Checks {
		if c.Name == "kernel" && !c.OK {
			wrongKernel = true
		}
	}
	switch {
	case res.Healthy && !j.Rollback:
		return 0, a.save(func(n *journal.Journal) { n.Health, n.Phase = summary, wire.PhaseHealthy })
	case res.Healthy && j.Rollback:
		return 0, a.fail(ctx, j, "rolled back to "+lb.Into+" after: "+j.Health)
	case wrongKernel && !j.Rollback && lb.Method == string(boot.MethodKexec) && !j.KexecFailed:
		a.log.Warn("kexec did not bring up the staged kernel; next attempt uses a full reboot", "summary", summary)
		return 0, a.save(func(n *journal.Journal) {
			n.KexecFailed, n.Health, n.Phase = true, summary, wire.PhaseRebooting
		})
	case !j.Rollback:
		if err := a.save(func(n *journal.Journal) {
			n.Health = summary
			if wrongKernel {
				n.Phase = wire.PhaseWrongKernel
			} else {
				n.Phase = wire.PhaseUnhealthy
			}
		}); err != nil {
			return 0, err
		}
		if err := a.report(ctx, j, false, lb.Into, summary); err != nil {
			return a.cfg.RetryInterval, err
		}
		return 0, a.save(func(n *journal.Journal) { n.ReportedUnhealthy, n.Phase = true, wire.PhaseRollback })
	default:
		return 0, a.fail(ctx, j, "rollback to "+lb.Into+" is unhealthy too: "+summary)
	}
}

// report sends a health report; a slot the coordinator no longer knows
// does not stop the report.
func (a *Agent) report(ctx context.Context, j *journal.Journal, healthy bool, kernel, detail string) error {
	rep := wire.HealthReport{HostID: a.cfg.HostID, Datacenter: a.cfg.Datacenter, Healthy: healthy, Kernel: kernel, Detail: truncate(detail, 1000)}
	if j.Slot != nil {
		rep.Token = j.Slot.Token
	}
	err := a.cfg.Coordinator.ReportHealth(ctx, rep)
	if err != nil && rep.Token != 0 && client.ErrorKind(err) == wire.KindStaleToken {
		rep.Token = 0
		err = a.cfg.Coordinator.ReportHealth(ctx, rep)
	}
	if err != nil {
		return fmt.Errorf("lifecycle: health report: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// release gives the slot back; a slot the coordinator no longer has counts
// as released.
func (a *Agent) release(ctx context.Context, j *journal.Journal, reason string) error {
	if j.Slot == nil {
		return nil
	}
	req := a.slotRequest(j.Slot.Token)
	req.Reason = reason
	err := a.cfg.Coordinator.AgentRelease(ctx, req)
	if err != nil {
		switch client.ErrorKind(err) {
		case wire.KindStaleToken, wire.KindNotHolder:
		default:
			return fmt.Errorf("lifecycle: release slot: %w", err)
		}
	}
	return a.save(func(n *journal.Journal) { n.Slot = nil })
}

// restore re-adds the withdrawn routes.
func (a *Agent) restore(ctx context.Context, j *journal.Journal) error {
	if !j.Withdrawn && j.Routes == nil {
		return nil
	}
	if a.cfg.Routes != nil && len(j.Routes) > 0 {
		if err := a.cfg.Routes.Restore(ctx, j.Routes); err != nil {
			return fmt.Errorf("lifecycle: restore anycast routes: %w", err)
		}
		a.log.Info("anycast routes restored", "routes", len(j.Routes))
	}
	return a.save(func(n *journal.Journal) { n.Routes, n.Withdrawn = nil, false })
}

// stepHealthy reports healthy, restores the routes, releases the slot and
// returns to idle; each part is journaled, so a restart does not repeat
// what was done.
func (a *Agent) stepHealthy(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	kernel := ""
	if lb := j.LastBoot(); lb != nil {
		kernel = lb.Into
	}
	if j.Health != reportedMark {
		if err := a.report(ctx, j, true, kernel, j.Health); err != nil {
			return a.cfg.RetryInterval, err
		}
		if err := a.save(func(n *journal.Journal) { n.Health = reportedMark }); err != nil {
			return 0, err
		}
	}
	if err := a.restore(ctx, a.Journal()); err != nil {
		return a.cfg.RetryInterval, err
	}
	if err := a.release(ctx, a.Journal(), ""); err != nil {
		return a.cfg.RetryInterval, err
	}
	outcome := "healthy"
	if lb := j.LastBoot(); lb != nil && lb.Method == string(boot.MethodDryRun) {
		outcome = "dry-run"
	}
	a.log.Info("release rolled out", "release", targetID(j), "kernel", kernel, "outcome", outcome)
	return 0, a.save(func(n *journal.Journal) { a.finish(n, outcome) })
}

// reportedMark replaces the health summary once it was reported.
const reportedMark = "reported healthy"

// finish records the outcome of the target and returns to idle.
func (a *Agent) finish(n *journal.Journal, outcome string) {
	if n.Done == nil {
		n.Done = map[string]string{}
	}
	if n.Target != nil {
		n.Done[n.Target.ID] = outcome
	}
	n.Target, n.Staged, n.Boots, n.Previous, n.Policies = nil, nil, nil, nil, nil
	n.Rollback, n.KexecFailed, n.Error, n.ReportedUnhealthy = false, false, "", false
	n.Phase = wire.PhaseIdle
}

// fail reports the failure, releases the slot and stays out of service:
// routes stay withdrawn until an operator resets the agent.
func (a *Agent) fail(ctx context.Context, j *journal.Journal, why string) error {
	a.log.Error("upgrade failed; staying out of service for an operator", "release", targetID(j), "why", why)
	if err := a.save(func(n *journal.Journal) { n.Error, n.Phase = why, wire.PhaseFailed }); err != nil {
		return err
	}
	return nil
}

// stepFailed finishes the failure (report, slot release) once and then
// waits for an operator's reset.
func (a *Agent) stepFailed(ctx context.Context, j *journal.Journal) (time.Duration, error) {
	if j.Target != nil {
		if !j.ReportedUnhealthy {
			if err := a.report(ctx, j, false, "", j.Error); err != nil {
				return a.cfg.RetryInterval, err
			}
		}
		if err := a.release(ctx, j, "upgrade failed: "+truncate(j.Error, 200)); err != nil {
			return a.cfg.RetryInterval, err
		}
		return 0, a.save(func(n *journal.Journal) {
			if n.Done == nil {
				n.Done = map[string]string{}
			}
			n.Done[n.Target.ID] = "failed: " + truncate(n.Error, 200)
			n.Target, n.Staged = nil, nil
		})
	}
	if a.cfg.ResetFile != "" {
		if _, err := os.Stat(a.cfg.ResetFile); err == nil {
			a.log.Warn("operator reset: returning to service")
			if err := a.restore(ctx, j); err != nil {
				return a.cfg.RetryInterval, err
			}
			if err := a.save(func(n *journal.Journal) {
				n.Boots, n.Previous, n.Rollback, n.KexecFailed, n.Error = nil, nil, false, false, ""
				n.ReportedUnhealthy = false
				// The operator fixed what failed: the release may be
				// tried again (a rollout wave waits for this host).
				for id, outcome := range n.Done {
					if strings.HasPrefix(outcome, "failed") {
						delete(n.Done, id)
					}
				}
				n.Phase = wire.PhaseIdle
			}); err != nil {
				return 0, err
			}
			return 0, os.Remove(a.cfg.ResetFile)
		}
	}
	return a.cfg.HeartbeatInterval, nil
}

// stepGiveBack restores the routes, releases the slot and moves to phase
// next (used when the drain deadline passed or the slot was lost before
// the boot).
func (a *Agent) stepGiveBack(ctx context.Context, j *journal.Journal, next string) (time.Duration, error) {
	return a.giveBack(ctx, j, next, j.Error)
}

// giveBack is stepGiveBack with the reason reported to the coordinator.
func (a *Agent) giveBack(ctx context.Context, j *journal.Journal, next, reason string) (time.Duration, error) {
	if err := a.restore(ctx, j); err != nil {
		return a.cfg.RetryInterval, err
	}
	if err := a.release(ctx, a.Journal(), reason); err != nil {
		// Keep the slot in the journal: acquiring again returns it while
		// the coordinator still has it, and its lease runs out otherwise.
		a.log.Warn("could not give the slot back", "err", err)
	}
	return a.cfg.RetryInterval, a.save(func(n *journal.Journal) {
		n.Previous, n.Policies, n.Phase = nil, nil, next
		if reason != "" {
			n.Error = reason
		}
	})
}
