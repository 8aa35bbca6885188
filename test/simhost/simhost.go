// Package simhost provides SIMULATED host steps — timed fakes of staging,
// anycast drain, boot and the running kernel — so that many real agents
// (agent/lifecycle, with its real journal, coordinator client, slot
// handling and health checker) can run in one process against a real
// coordinator: for end-to-end rollout tests and `make demo-sim`. Nothing
// here touches the machine: the "kernel" is a fake /proc directory, a
// "boot" is a sleep that swaps it and restarts the agent, and routes are a
// list in memory.
package simhost

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/agent/anycast"
	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/lifecycle"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/agent/stage"
	"github.com/kroll-dev/kroll/pkg/release"
)

// Durations are the simulated step times; each is drawn uniformly from
// [d/2, 3d/2].
type Durations struct {
	Stage, Drain, Boot time.Duration
}

// Host is one simulated machine.
type Host struct {
	id        string
	dir       string
	durations Durations
	trusted   []ed25519.PublicKey

	mu       sync.Mutex
	rng      *rand.Rand
	kernel   string
	upstream string
	// upstreams are the upstream versions of the kernels it ran, by
	// release: a rollback boots the previous one with its own.
	upstreams map[string]string
	bootSeq   int
	routes    []anycast.Route
	// unhealthyOn makes health fail while this kernel runs.
	unhealthyOn string
	// down is closed when the simulated machine goes down for a boot.
	down chan struct{}
	// Boots counts simulated boots.
	boots int
	// ran records every kernel the host ran.
	ran map[string]bool
}

// New creates a simulated host running kernel (uname -r) with the given
// upstream version, its fake /proc under dir.
func New(id, dir, kernel, upstream string, d Durations, trusted []ed25519.PublicKey, seed uint64) (*Host, error) {
	h := &Host{id: id, dir: dir, durations: d, trusted: trusted, rng: rand.New(rand.NewPCG(seed, 7)),
		routes: []anycast.Route{{Dst: netip.MustParsePrefix("192.0.2.0/24"), Table: 100, Type: "blackhole"}}}
	if err := os.MkdirAll(filepath.Join(h.proc(), "sys/kernel/random"), 0o755); err != nil {
		return nil, fmt.Errorf("simhost: %w", err)
	}
	if err := h.run(kernel, upstream); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Host) proc() string { return filepath.Join(h.dir, "proc") }

// ProcDir is the simulated host's /proc.
func (h *Host) ProcDir() string { return h.proc() }

// SetUnhealthyOn makes health checks fail while kernel runs.
func (h *Host) SetUnhealthyOn(kernel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unhealthyOn = kernel
}

// Kernel returns the running simulated kernel and the number of boots.
func (h *Host) Kernel() (string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.kernel, h.boots
}

// ID is the host's id.
func (h *Host) ID() string { return h.id }

// Ran reports whether the host ever ran kernel.
func (h *Host) Ran(kernel string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ran[kernel]
}

// run switches the fake /proc to kernel with a new boot id.
func (h *Host) run(kernel, upstream string) error {
	h.kernel, h.upstream = kernel, upstream
	if h.ran == nil {
		h.ran = map[string]bool{}
	}
	h.ran[kernel] = true
	if h.upstreams == nil {
		h.upstreams = map[string]string{}
	}
	h.upstreams[kernel] = upstream
	h.bootSeq++
	files := map[string]string{
		"sys/kernel/osrelease":      kernel + "\n",
		"version":                   fmt.Sprintf("Linux version %s (sim@kroll) (gcc 12) #1 SMP PREEMPT_DYNAMIC Debian %s-1 (2026-11-01)\n", kernel, upstream),
		"sys/kernel/random/boot_id": fmt.Sprintf("%08x-0000-4000-8000-%012d\n", fnv(h.id), h.bootSeq),
		"cmdline":                   "console=ttyS0 simulated\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(h.proc(), name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("simhost: %w", err)
		}
	}
	return nil
}

func fnv(s string) uint32 {
	x := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		x = (x ^ uint32(s[i])) * 16777619
	}
	return x
}

// sleep waits a duration drawn around d, or until ctx ends.
func (h *Host) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	h.mu.Lock()
	j := d/2 + time.Duration(h.rng.Int64N(int64(d)+1))
	h.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(j):
		return nil
	}
}

// Verify checks the signed manifest for real.
func (h *Host) Verify(manifest, sig []byte) (release.Manifest, error) {
	return stage.VerifyManifest(manifest, sig, h.trusted)
}

// Stage is the simulated staging: it verifies the signed manifest for
// real, then "downloads" for Durations.Stage.
func (h *Host) Stage(ctx context.Context, manifest, sig []byte) (*stage.Staged, error) {
	m, err := h.Verify(manifest, sig)
	if err != nil {
		return nil, err
	}
	if err := h.sleep(ctx, h.durations.Stage); err != nil {
		return nil, err
	}
	// The kernel's initrd, as installing it would leave it.
	initrd := filepath.Join(h.dir, "boot", "initrd.img-"+m.KernelVersion)
	if err := os.MkdirAll(filepath.Dir(initrd), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(initrd, []byte("simulated initrd"), 0o644); err != nil {
		return nil, err
	}
	return &stage.Staged{Release: m, Vmlinuz: "sim://" + m.KernelVersion + "#" + m.UpstreamVersion, Initrd: initrd, KernelRelease: m.KernelVersion}, nil
}

// List, Withdraw and Restore simulate the anycast routes.
func (h *Host) List(context.Context) ([]anycast.Route, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]anycast.Route(nil), h.routes...), nil
}

// Withdraw removes the simulated routes.
func (h *Host) Withdraw(ctx context.Context) ([]anycast.Route, error) {
	rs, _ := h.List(ctx)
	h.mu.Lock()
	h.routes = nil
	h.mu.Unlock()
	return rs, nil
}

// Restore re-adds simulated routes.
func (h *Host) Restore(_ context.Context, rs []anycast.Route) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routes = append(h.routes[:0], rs...)
	return nil
}

// Announced reports whether the host announces its anycast routes.
func (h *Host) Announced() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.routes) > 0
}

// Wait simulates the drain wait.
func (h *Host) Wait(ctx context.Context, _ int, _, _ time.Duration) (anycast.DrainResult, error) {
	start := time.Now()
	err := h.sleep(ctx, h.durations.Drain)
	return anycast.DrainResult{Drained: true, Reason: anycast.ReasonThreshold, Elapsed: time.Since(start)}, err
}

// Cmdline is the simulated command line.
func (h *Host) Cmdline() (string, error) { return "console=ttyS0 simulated", nil }

// Mode: the simulated host kexecs.
func (h *Host) Mode() boot.Mode { return boot.ModeKexec }

// KexecSupported: simulated kexec always works.
func (h *Host) KexecSupported() error { return nil }

// Boot simulates a boot: the machine goes down (the running agent is
// stopped), Durations.Boot later it runs the image's kernel.
func (h *Host) Boot(_ context.Context, m boot.Method, img boot.Image) (boot.Method, error) {
	rel, up, ok := strings.Cut(strings.TrimPrefix(img.Kernel, "sim://"), "#")
	if !strings.HasPrefix(img.Kernel, "sim://") {
		// The rollback target: the previous kernel, recorded by the
		// agent as <boot dir>/vmlinuz-<release>.
		rel, up, ok = strings.TrimPrefix(filepath.Base(img.Kernel), "vmlinuz-"), "", true
	}
	if !ok || rel == "" {
		return "", fmt.Errorf("simhost: unknown image %q", img.Kernel)
	}
	h.mu.Lock()
	if up == "" {
		up = h.upstreams[rel]
	}
	if up == "" {
		up = h.upstream
	}
	down := h.down
	h.mu.Unlock()
	go func() {
		_ = h.sleep(context.Background(), h.durations.Boot)
		h.mu.Lock()
		_ = h.run(rel, up)
		h.boots++
		h.mu.Unlock()
		if down != nil {
			close(down)
		}
	}()
	return m, nil
}

// Check is health: the real checker on the fake /proc, failing while an
// injected unhealthy kernel runs.
type checker struct {
	h    *Host
	real *health.Checker
}

// Check runs the real checks, then the injected failure.
func (c checker) Check(ctx context.Context, want health.Expect) (health.Result, error) {
	res, err := c.real.Check(ctx, want)
	if err != nil {
		return res, err
	}
	c.h.mu.Lock()
	bad := c.h.unhealthyOn != "" && c.h.unhealthyOn == c.h.kernel
	c.h.mu.Unlock()
	if bad {
		res.Healthy = false
		res.Checks = append(res.Checks, health.Check{Name: "simulated-service", Detail: "injected failure on " + want.KernelRelease})
	}
	return res, nil
}

// Agent runs the real agent (agent/lifecycle) on the simulated host until
// ctx ends: each simulated boot stops the agent process and starts a new
// one from the journal in stateDir, as a real reboot would.
func (h *Host) Agent(ctx context.Context, cfg lifecycle.Config, stateDir string, log *slog.Logger) error {
	js, err := journal.NewStore(stateDir)
	if err != nil {
		return err
	}
	kernel := running.ProcFS{Dir: h.proc()}
	real, err := health.New(health.Config{ProcDir: h.proc(), Kernel: kernel})
	if err != nil {
		return err
	}
	cfg.Stager, cfg.Routes, cfg.Drainer, cfg.Booter = h, h, h, h
	cfg.Verifier, cfg.Journal, cfg.Kernel = checker{h: h, real: real}, js, kernel
	cfg.BootDir = filepath.Join(h.dir, "boot")
	if err := os.MkdirAll(cfg.BootDir, 0o755); err != nil {
		return err
	}
	cfg.Logger = log
	for ctx.Err() == nil {
		// The running kernel is "installed": the rollback target.
		k, _ := h.Kernel()
		if err := os.WriteFile(filepath.Join(cfg.BootDir, "vmlinuz-"+k), nil, 0o644); err != nil {
			return err
		}
		down := make(chan struct{})
		h.mu.Lock()
		h.down = down
		h.mu.Unlock()
		a, err := lifecycle.New(cfg)
		if err != nil {
			return err
		}
		bootCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(bootCtx) }()
		select {
		case <-ctx.Done():
			stop()
			<-done
			return nil
		case <-down: // the machine rebooted under the agent
			stop()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		}
	}
	return nil
}
