package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/agent/anycast"
	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/bootloader"
	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/install"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/lifecycle"
	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/agent/policysync"
	"github.com/kroll-dev/kroll/agent/stage"
	"github.com/kroll-dev/kroll/pkg/buildmetrics"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func (a *app) runCommand() *cobra.Command {
	return &cobra.Command{Use: "run", Short: "the agent daemon (systemd Type=notify, watchdog)", Args: noArgs("run"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(a.config, a.kernel)
			if err != nil {
				return err
			}
			return runDaemon(cmd.Context(), a.env, c)
		}}
}

// noArgs refuses positional arguments of command name.
func noArgs(name string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return cli.Usagef("%s: unexpected argument %q", name, args[0])
		}
		return nil
	}
}

func runDaemon(ctx context.Context, env cli.Env, c *config) error {
	log := cli.Logger(env.Stderr, slog.LevelInfo).With("host", c.hostID, "datacenter", c.datacenter)
	if os.Getenv("GOGC") == "" {
		// A mostly idle daemon on every server: collect more often, keep
		// less heap (GOGC overrides).
		debug.SetGCPercent(50)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildmetrics.Collector("kroll-agent"))
	lm := lifecycle.NewMetrics(reg)

	// Mitigations first: policies accepted earlier are in force again
	// before anything else happens (DESIGN §4 "Mitigate"). Without policy
	// keys the manager changes nothing but still reports what is pinned
	// (unverified).
	mgr, err := mitigate.New(mitigate.Config{Trusted: c.policyKeys, BPFFS: c.bpffs, StateDir: c.mitState, Running: c.kernel})
	if err != nil {
		return err
	}
	if len(c.policyKeys) == 0 {
		log.Warn("no trust.policy_keys configured: mitigation policies are disabled; existing pins are reported, unverified, and left as they are")
	}
	sts, err := mgr.Restore(ctx)
	for _, s := range sts {
		log.Info("mitigation", "policy", s.ID, "version", s.Version, "state", s.State, "detail", s.Detail)
	}
	if err != nil {
		log.Warn("mitigations not all in force", "err", err)
	}
	// Loading parsed the kernel's BTF (released by Apply); hand the
	// memory back to the system now rather than minutes later.
	debug.FreeOSMemory()

	deps, err := build(ctx, c, log, mgr)
	if err != nil {
		return err
	}
	deps.Metrics, deps.Logger = lm, log
	var syncer *policysync.Syncer
	if len(c.policyKeys) > 0 {
		syncer, err = policysync.New(ctx, policysync.Config{Datacenter: c.datacenter, Trusted: c.policyKeys, Manager: mgr,
			Logger: log.With("component", "policies"), Registerer: reg})
		if err != nil {
			return err
		}
		deps.OnDesired = syncer.Desired
	}
	var agent *lifecycle.Agent
	phase := func() string {
		if agent == nil {
			return wire.PhaseIdle
		}
		return agent.Phase()
	}
	gctx, stopGossip := context.WithCancel(ctx)
	defer stopGossip()
	if c.gossip {
		pool, err := startGossip(gctx, c, log, reg, syncer, phase, &deps)
		if err != nil {
			return err
		}
		if syncer != nil {
			syncer.SetPool(pool)
		}
		defer func() {
			if err := pool.Leave(2 * time.Second); err != nil {
				log.Warn("gossip: leave", "err", err)
			}
			_ = pool.Shutdown()
		}()
	}
	agent, err = lifecycle.New(deps)
	if err != nil {
		return err
	}
	j := agent.Journal()
	log.Info("kroll-agent starting", "phase", j.Phase, "release", targetOf(j), "boot_mode", c.bootMode, "coordinators", c.coordURLs)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if err := mgr.Watch(ctx, log, mitigate.NewMetrics(reg)); err != nil && ctx.Err() == nil {
			log.Warn("mitigation event watcher stopped", "err", err)
		}
	})
	if len(c.policyKeys) > 0 {
		// Unpin policies when they expire, whether or not a heartbeat
		// or gossip message comes by.
		wg.Go(func() { mgr.Run(ctx, log, mitigationReconcileInterval, nil) })
	}
	if c.metrics != "" {
		ln, err := net.Listen("tcp", c.metrics)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		log.Info("serving metrics", "addr", ln.Addr().String())
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() { _ = srv.Serve(ln) })
		wg.Go(func() { <-ctx.Done(); _ = srv.Close() })
	}
	stopping := cli.NotifyReady(ctx, log)
	err = agent.Run(ctx)
	stopping()
	log.Info("kroll-agent stopped", "phase", agent.Journal().Phase)
	cancel()
	return err
}

func targetOf(j *journal.Journal) string {
	if j.Target == nil {
		return ""
	}
	return j.Target.ID
}

// mitigationReconcileInterval bounds the time between two reconciles of
// the pinned mitigations when nothing else triggers one.
const mitigationReconcileInterval = time.Minute

// build assembles the lifecycle's dependencies from c.
func build(ctx context.Context, c *config, log *slog.Logger, mgr *mitigate.Manager) (lifecycle.Config, error) {
	coord, err := newCoordinators(c)
	if err != nil {
		return lifecycle.Config{}, err
	}
	st, err := stage.New(stage.Config{Dir: c.stageDir, Trusted: c.releaseKeys, MaxRetries: c.maxRetries, Backoff: c.backoff,
		MinFreeBytes: c.minFree, Modules: c.modules, MaxEntrySize: c.maxEntry, MaxTotalSize: c.maxTotal})
	if err != nil {
		return lifecycle.Config{}, err
	}
	js, err := journal.NewStore(c.stateDir)
	if err != nil {
		return lifecycle.Config{}, err
	}
	b, err := boot.New(boot.Config{Mode: c.bootMode, StripParams: c.strip, Kernel: c.kernel, Logger: log})
	if err != nil {
		return lifecycle.Config{}, err
	}
	loader, err := bootloader.New(ctx, bootloader.Config{Kind: c.loader, BootDir: c.bootDir, Logger: log.With("component", "bootloader")})
	if err != nil {
		return lifecycle.Config{}, err
	}
	hc := health.Config{RequiredUnits: c.units, Commands: c.commands, SettleTimeout: c.settle, Kernel: c.kernel}
	policies, pinned, lister := policyFuncs(mgr, len(c.policyKeys) > 0)
	hc.Policies = lister
	checker, err := health.New(hc)
	if err != nil {
		return lifecycle.Config{}, err
	}
	cfg := lifecycle.Config{
		HostID: c.hostID, Datacenter: c.datacenter, KernelLine: c.kernelLine, Kernel: c.kernel,
		Coordinator: coord, Stager: st, Booter: b, BootLoader: loader, Verifier: checker, Journal: js, Policies: policies, PinnedPolicies: pinned,
		BootDir: c.bootDir, Initrd: c.initrd, Drain: c.drain, MaxBoots: c.maxBoots,
		RetryInterval: c.retry, HeartbeatInterval: c.heartbeat, RenewInterval: c.renew,
		ErrorBackoff: c.errBackoff, ErrorBackoffMax: c.errMax,
		ResetFile: filepath.Join(c.stateDir, resetFileName),
	}
	if c.installMode == installAuto {
		ic := c.install
		ic.Logger = log
		inst, err := install.New(ic)
		if err != nil {
			return lifecycle.Config{}, err
		}
		cfg.Installer = inst
	}
	if c.table > 0 {
		routes, err := anycast.NewRoutes(anycast.Config{Table: c.table, Prefixes: c.prefixes})
		if err != nil {
			return lifecycle.Config{}, err
		}
		cfg.Routes = routes
		prefixes := c.prefixes
		if len(prefixes) == 0 {
			rs, err := routes.List(ctx)
			if err != nil {
				return lifecycle.Config{}, err
			}
			prefixes = anycast.PrefixesOf(rs)
		}
		if len(prefixes) > 0 {
			d, err := anycast.NewDrain(anycast.DrainConfig{Prefixes: prefixes})
			if err != nil {
				return lifecycle.Config{}, err
			}
			cfg.Drainer = d
		} else {
			log.Warn("anycast table has no routes and no prefixes are configured: no drain wait")
		}
	}
	return cfg, nil
}

// policyFuncs wires the mitigation manager into the lifecycle and the
// health check. policies (every heartbeat) reconciles the pins with the
// stored state and reports every status, with the error of whatever
// failed. pinned (right before the boot) lists what is pinned without
// changing it; it fails only when the pins cannot be read. lister (the
// post-boot check) is what is in force. Without trusted keys (verified
// false) the pins are reported but are no expectation: the agent could
// not pin them again after the boot.
func policyFuncs(mgr *mitigate.Manager, verified bool) (policies, pinned func(context.Context) ([]wire.PolicyStatus, error), lister health.PolicyLister) {
	if mgr == nil {
		return nil, nil, nil
	}
	policies = func(ctx context.Context) ([]wire.PolicyStatus, error) {
		sts, err := mgr.Reconcile(ctx)
		return mitigate.WireStatus(sts), err
	}
	if !verified {
		return policies, func(context.Context) ([]wire.PolicyStatus, error) { return nil, nil }, nil
	}
	pinned = func(ctx context.Context) ([]wire.PolicyStatus, error) {
		sts, err := mgr.List(ctx)
		if errors.Is(err, mitigate.ErrPins) {
			return nil, err
		}
		return mitigate.WireStatus(sts), nil
	}
	return policies, pinned, inForce{mgr}
}

// inForce adapts the mitigation manager to health.PolicyLister.
type inForce struct{ m *mitigate.Manager }

// InForce returns the ids of policies enforcing or auditing (from the
// pins; an error only when they cannot be read).
func (p inForce) InForce(ctx context.Context) (map[string]bool, error) {
	sts, err := p.m.List(ctx)
	if errors.Is(err, mitigate.ErrPins) {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range sts {
		if s.State.InForce() {
			out[s.ID] = true
		}
	}
	return out, nil
}

// newCoordinators returns a failover client over the configured
// coordinator URLs.
func newCoordinators(c *config) (*client.Failover, error) {
	tlsCfg, err := client.TLSConfig(c.caFile, c.certFile, c.keyFile)
	if err != nil {
		return nil, err
	}
	var cls []*client.Client
	for _, u := range c.coordURLs {
		cl, err := client.New(u, client.Options{Token: c.token, TLS: tlsCfg, Timeout: c.timeout})
		if err != nil {
			return nil, err
		}
		cls = append(cls, cl)
	}
	return client.NewFailover(cls...)
}
