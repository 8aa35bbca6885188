package lifecycle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/anycast"
	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/bootloader"
	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/agent/stage"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// The fakes below replace the host steps (staging, routes, boot) for fast
// state-machine tests; the coordinator is the real replicated state
// machine (coordinator/fsm) without Raft, and health checks are the real
// agent/health checker reading a fake /proc.

const (
	oldKernel   = "6.1.0-47-amd64"
	oldUpstream = "6.1.158"
	newKernel   = "6.1.0-56-amd64"
	newUpstream = "6.1.192"
)

func procVersion(rel, upstream string) string {
	return fmt.Sprintf("Linux version %s (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian %s-1 (2025-11-09)\n", rel, upstream)
}

// fakeHost is the machine: its running kernel, boot id and routes survive
// agent "crashes"; a boot changes kernel and boot id.
type fakeHost struct {
	t    testing.TB
	mu   sync.Mutex
	proc string
	boot string // dir of installed kernels
	// kernels maps a vmlinuz path to its release and upstream version.
	kernels  map[string][2]string
	bootSeq  int
	reboots  []string // releases booted into, with method
	routes   map[string]anycast.Route
	badAfter map[string]bool // releases whose health check command fails
	// kexecBroken makes a kexec boot come back on the old kernel.
	kexecBroken bool
	// policies are the mitigations' states (enforcing, retired, ...); a
	// boot sets them to afterBoot (nil: unchanged).
	policies, afterBoot map[string]string
}

// policyStatus is the Config.Policies of a fakeHost.
func (h *fakeHost) policyStatus(context.Context) ([]wire.PolicyStatus, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []wire.PolicyStatus
	for id, st := range h.policies {
		out = append(out, wire.PolicyStatus{ID: id, Version: 1, State: wire.PolicyState(st)})
	}
	return out, nil
}

// policyLister is the health.PolicyLister of a fakeHost.
type policyLister struct{ h *fakeHost }

func (p policyLister) InForce(ctx context.Context) (map[string]bool, error) {
	ps, _ := p.h.policyStatus(ctx)
	out := map[string]bool{}
	for _, s := range ps {
		if s.State == "enforcing" || s.State == "auditing" {
			out[s.ID] = true
		}
	}
	return out, nil
}

func newFakeHost(t testing.TB) *fakeHost {
	dir := t.TempDir()
	h := &fakeHost{t: t, proc: filepath.Join(dir, "proc"), boot: filepath.Join(dir, "boot"),
		kernels: map[string][2]string{}, routes: map[string]anycast.Route{}, badAfter: map[string]bool{}}
	for _, d := range []string{filepath.Join(h.proc, "sys/kernel/random"), h.boot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.install(oldKernel, oldUpstream)
	h.run(oldKernel, oldUpstream)
	for _, p := range []string{"192.0.2.0/24", "198.51.100.0/24"} {
		r := anycast.Route{Dst: netip.MustParsePrefix(p), Table: 100, Type: "blackhole"}
		h.routes[r.String()] = r
	}
	return h
}

// install puts a kernel into /boot.
func (h *fakeHost) install(rel, upstream string) {
	p := filepath.Join(h.boot, "vmlinuz-"+rel)
	if err := os.WriteFile(p, []byte("kernel "+rel), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.boot, "initrd.img-"+rel), []byte("initrd "+rel), 0o644); err != nil {
		h.t.Fatal(err)
	}
	h.kernels[p] = [2]string{rel, upstream}
}

// run makes the host run rel with a fresh boot id.
func (h *fakeHost) run(rel, upstream string) {
	h.bootSeq++
	files := map[string]string{
		"sys/kernel/osrelease":      rel + "\n",
		"version":                   procVersion(rel, upstream),
		"sys/kernel/random/boot_id": fmt.Sprintf("00000000-0000-4000-8000-%012d\n", h.bootSeq),
		"cmdline":                   "BOOT_IMAGE=/vmlinuz console=ttyS0 quiet\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(h.proc, name), []byte(content), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *fakeHost) running() string {
	b, err := os.ReadFile(filepath.Join(h.proc, "sys/kernel/osrelease"))
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (h *fakeHost) routeSet() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for k := range h.routes {
		out = append(out, k)
	}
	return out
}

// fakeRoutes is the Announcer of a fakeHost.
type fakeRoutes struct{ h *fakeHost }

func (f fakeRoutes) List(context.Context) ([]anycast.Route, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	var out []anycast.Route
	for _, r := range f.h.routes {
		out = append(out, r)
	}
	return out, nil
}

func (f fakeRoutes) Withdraw(ctx context.Context) ([]anycast.Route, error) {
	out, _ := f.List(ctx)
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.routes = map[string]anycast.Route{}
	return out, nil
}

func (f fakeRoutes) Restore(_ context.Context, rs []anycast.Route) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	for _, r := range rs {
		f.h.routes[r.String()] = r
	}
	return nil
}

// fakeBooter boots the fake host.
type fakeBooter struct {
	h *fakeHost
	// kexecUnavailable makes Boot refuse kexec like a locked-down kernel.
	kexecUnavailable bool
	dryRun           bool
	// mode is the boot mode (ModeKexec when empty).
	mode boot.Mode
	// loader, when set, decides what a full reboot starts (as firmware
	// and boot loader do), whatever the image says.
	loader *fakeLoader
	// images are the images booted, in order.
	images []boot.Image
	// cmdline is the running command line ("console=ttyS0 quiet" when
	// empty).
	cmdline string
	// dies makes this many Boot calls kill the agent process (a panic
	// with errCrash) before anything boots: the process died between the
	// boot loader's one-shot entry and the reboot.
	dies int
}

func (b *fakeBooter) Mode() boot.Mode {
	switch {
	case b.dryRun:
		return boot.ModeDryRun
	case b.mode != "":
		return b.mode
	}
	return boot.ModeKexec
}

func (b *fakeBooter) Cmdline() (string, error) {
	if b.cmdline != "" {
		return b.cmdline, nil
	}
	return "console=ttyS0 quiet", nil
}

func (b *fakeBooter) KexecSupported() error { return nil }

func (b *fakeBooter) Boot(_ context.Context, m boot.Method, img boot.Image) (boot.Method, error) {
	if b.dryRun {
		return boot.MethodDryRun, nil
	}
	if b.mode == boot.ModeReboot {
		m = boot.MethodReboot
	}
	if m == boot.MethodKexec && b.kexecUnavailable {
		return "", fmt.Errorf("kexec_file_load: operation not permitted: %w", boot.ErrKexecUnavailable)
	}
	if b.dies > 0 {
		b.dies--
		panic(errCrash)
	}
	k, ok := b.h.kernels[img.Kernel]
	if !ok {
		return "", fmt.Errorf("no kernel image %s", img.Kernel)
	}
	if m == boot.MethodReboot && b.loader != nil {
		rel := b.loader.boot()
		ok = false
		for _, kk := range b.h.kernels {
			if kk[0] == rel {
				k, ok = kk, true
			}
		}
		if !ok {
			return "", fmt.Errorf("the boot loader starts %q, which is not installed", rel)
		}
	}
	b.images = append(b.images, img)
	b.h.mu.Lock()
	b.h.reboots = append(b.h.reboots, string(m)+":"+k[0])
	b.h.mu.Unlock()
	if m == boot.MethodKexec && b.h.kexecBroken {
		b.h.run(b.h.running(), oldUpstream)
	} else {
		b.h.run(k[0], k[1])
	}
	if b.h.afterBoot != nil {
		b.h.policies = b.h.afterBoot
	}
	// Boot-time network configuration announces the anycast routes again.
	for _, p := range []string{"192.0.2.0/24", "198.51.100.0/24"} {
		r := anycast.Route{Dst: netip.MustParsePrefix(p), Table: 100, Type: "blackhole"}
		b.h.routes[r.String()] = r
	}
	return m, nil
}

// fakeStager "stages" the new kernel by writing it into its directory.
type fakeStager struct {
	h     *fakeHost
	dir   string
	calls int
	fail  int // fail this many calls first
	// noInitrd stages the kernel without an initrd.
	noInitrd bool
	// onStage runs at every staging (e.g. a package hook changing the
	// boot loader's default).
	onStage func()
}

func (s *fakeStager) Verify(manifest, sig []byte) (release.Manifest, error) {
	return stage.VerifyManifest(manifest, sig, []ed25519.PublicKey{testReleaseKey().Public().(ed25519.PublicKey)})
}

func (s *fakeStager) Stage(_ context.Context, manifest, sig []byte) (*stage.Staged, error) {
	s.calls++
	if s.onStage != nil {
		s.onStage()
	}
	if s.calls <= s.fail {
		return nil, errors.New("stage: connection reset by peer")
	}
	m, err := release.Decode(manifest)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(s.dir, m.ID, "vmlinuz-"+m.KernelVersion)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, []byte("kernel"), 0o644); err != nil {
		return nil, err
	}
	s.h.kernels[p] = [2]string{m.KernelVersion, m.UpstreamVersion}
	st := &stage.Staged{Release: m, Dir: filepath.Dir(p), Vmlinuz: p, KernelRelease: m.KernelVersion}
	if !s.noInitrd {
		st.Initrd = filepath.Join(s.dir, m.ID, "initrd.img-"+m.KernelVersion)
		if err := os.WriteFile(st.Initrd, []byte("initrd"), 0o644); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// simpleEntry is, as a fakeLoader default, Debian's "simple" GRUB
// entry (gnulinux-simple-<uuid>): it boots the newest installed kernel.
const simpleEntry = "simple"

// fakeLoader is a boot loader with GRUB's semantics: a default entry and
// a one-shot entry that the next boot consumes. A default of "" (no
// saved_entry: entry 0) or simpleEntry starts the newest kernel in the
// host's /boot.
type fakeLoader struct {
	mu                sync.Mutex
	def, oneShot      string
	h                 *fakeHost // for the newest kernel
	unmanaged         bool      // like bootloader.None
	explicit          bool      // with unmanaged: the operator chose none
	failSetDefault    int       // fail this many SetDefault calls
	checkErr          error     // Check fails with it
	failSetOneShot    error     // SetOneShot fails with it
	calls             []string
	defaultsWhenBoots []string // the default entry at every boot
}

func (l *fakeLoader) Check(context.Context) error {
	if l.checkErr != nil {
		return l.checkErr
	}
	if l.unmanaged && !l.explicit {
		return fmt.Errorf("no supported boot loader found: %w", bootloader.ErrUnmanaged)
	}
	return nil
}

// resolve returns the kernel an entry starts.
func (l *fakeLoader) resolve(entry string) string {
	if entry != "" && entry != simpleEntry {
		return entry
	}
	newest := ""
	if l.h != nil {
		for p, k := range l.h.kernels {
			if filepath.Dir(p) == l.h.boot && k[0] > newest {
				newest = k[0]
			}
		}
	}
	return newest
}

// next returns what the next cold boot starts, without consuming it.
func (l *fakeLoader) next() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.oneShot != "" {
		return l.resolve(l.oneShot)
	}
	return l.resolve(l.def)
}

func (l *fakeLoader) Default(context.Context) (string, error) {
	if l.unmanaged {
		return "", bootloader.ErrUnmanaged
	}
	return l.next(), nil
}

func (l *fakeLoader) Pinned(_ context.Context, rel string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unmanaged {
		return false, bootloader.ErrUnmanaged
	}
	return l.oneShot == "" && l.def == rel, nil
}

func (l *fakeLoader) SetOneShot(_ context.Context, rel string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, "oneshot:"+rel)
	if l.unmanaged {
		return bootloader.ErrUnmanaged
	}
	if l.failSetOneShot != nil {
		return l.failSetOneShot
	}
	l.oneShot = rel
	return nil
}

func (l *fakeLoader) SetDefault(_ context.Context, rel string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, "default:"+rel)
	if l.unmanaged {
		return bootloader.ErrUnmanaged
	}
	if l.failSetDefault > 0 {
		l.failSetDefault--
		return errors.New("grub-set-default: cannot write /boot/grub/grubenv: read-only file system")
	}
	l.def, l.oneShot = rel, ""
	return nil
}

// boot returns what a cold boot starts, consuming the one-shot entry.
func (l *fakeLoader) boot() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.defaultsWhenBoots = append(l.defaultsWhenBoots, l.resolve(l.def))
	if l.oneShot != "" {
		rel := l.oneShot
		l.oneShot = ""
		return l.resolve(rel)
	}
	return l.resolve(l.def)
}

func (l *fakeLoader) history() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.calls, " ")
}

// fsmCoordinator serves the agent API from the real FSM.
type fsmCoordinator struct {
	mu     sync.Mutex
	f      *fsm.FSM
	now    time.Time
	timing fsm.Timing
	// down makes every call fail like an unreachable coordinator.
	down bool
}

func newFSMCoordinator(t testing.TB, rel *wire.SignedRelease, slots int) *fsmCoordinator {
	c := &fsmCoordinator{f: fsm.New(), now: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC),
		timing: fsm.Timing{Lease: time.Minute, RebootDeadline: 20 * time.Minute, AliveWithin: time.Hour}}
	if r := c.apply(fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra1", Update: wire.DatacenterUpdate{SlotLimit: &slots}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if rel != nil {
		m, err := release.Decode(rel.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		if r := c.apply(fsm.TypeAddRelease, fsm.AddRelease{Release: fsm.Release{ID: m.ID, Line: m.Line, KernelVersion: m.KernelVersion,
			Manifest: rel.Manifest, Signature: rel.Signature}}); r.Err != nil {
			t.Fatal(r.Err)
		}
		target := m.ID
		if r := c.apply(fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra1", Update: wire.DatacenterUpdate{TargetRelease: &target}}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	return c
}

func (c *fsmCoordinator) apply(t fsm.Type, payload any) fsm.Result {
	c.now = c.now.Add(time.Second)
	data, err := fsm.NewCommand(t, c.now, payload)
	if err != nil {
		panic(err)
	}
	return c.f.ApplyCommand(data)
}

func (c *fsmCoordinator) call(t fsm.Type, payload any) (fsm.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return fsm.Result{}, errors.New("dial tcp 127.0.0.1:8001: connection refused")
	}
	r := c.apply(t, payload)
	if r.Err != nil {
		return r, &client.APIError{Status: 409, Kind: r.Err.Kind, Value: r.Err.Value}
	}
	return r, nil
}

func (c *fsmCoordinator) Heartbeat(_ context.Context, hb wire.Heartbeat) (*wire.DesiredState, error) {
	r, err := c.call(fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: hb})
	if err != nil {
		return nil, err
	}
	return &wire.DesiredState{HeartbeatIntervalSeconds: 1, KernelLine: r.KernelLine, Slot: r.Slot, Release: r.Release, Policies: r.Policies, RetiredPolicies: r.RetiredPolicies, Datacenter: r.Limits}, nil
}

func (c *fsmCoordinator) AcquireSlot(_ context.Context, req wire.SlotRequest) (*wire.Slot, error) {
	r, err := c.call(fsm.TypeAcquire, fsm.Acquire{Datacenter: req.Datacenter, Host: req.HostID, Owner: fsm.OwnerAgent, Release: req.Release, Timing: c.timing})
	if err != nil {
		return nil, err
	}
	return r.Slot, nil
}

func (c *fsmCoordinator) RenewSlot(_ context.Context, req wire.SlotRequest) (*wire.Slot, error) {
	r, err := c.call(fsm.TypeRenew, fsm.Renew{Datacenter: req.Datacenter, Host: req.HostID, Token: req.Token, Owner: fsm.OwnerAgent, Release: req.Release, Timing: c.timing})
	if err != nil {
		return nil, err
	}
	return r.Slot, nil
}

func (c *fsmCoordinator) AgentRelease(_ context.Context, req wire.SlotRequest) error {
	_, err := c.call(fsm.TypeRelease, fsm.SlotRelease{Datacenter: req.Datacenter, Host: req.HostID, Token: req.Token, Owner: fsm.OwnerAgent, Reason: req.Reason})
	return err
}

func (c *fsmCoordinator) ReportHealth(_ context.Context, rep wire.HealthReport) error {
	_, err := c.call(fsm.TypeHealth, fsm.Health{HealthReport: rep})
	return err
}

// state returns a copy of what the coordinator knows.
func (c *fsmCoordinator) view(fn func(*fsm.State)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.f.View(fn)
}

// grants counts the slots ever granted in fra1 (fencing tokens are
// consecutive from 1).
func (c *fsmCoordinator) grants() int {
	var n int
	c.view(func(s *fsm.State) { n = int(s.Datacenters["fra1"].NextToken) - 1 })
	return n
}

func (c *fsmCoordinator) slotsHeld() int {
	var n int
	c.view(func(s *fsm.State) { n = len(s.Datacenters["fra1"].Slots) })
	return n
}

// testReleaseKey signs the test releases; the fake stager trusts it.
func testReleaseKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
}

// testManifest is the manifest of the test release of newKernel.
func testManifest() release.Manifest {
	return release.Manifest{ID: "6.1.192-kroll.1", Line: "6.1", KernelVersion: newKernel, UpstreamVersion: newUpstream, Kind: release.KindDeb,
		Artifacts: []release.Artifact{{Name: "linux-image.deb", URL: "http://127.0.0.1:1/k.deb", Size: 10,
			SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
}

// signedTestRelease returns a signed release of newKernel.
func signedTestRelease(t testing.TB) *wire.SignedRelease {
	return signRelease(t, testReleaseKey(), testManifest())
}

// signRelease signs m with priv.
func signRelease(t testing.TB, priv ed25519.PrivateKey, m release.Manifest) *wire.SignedRelease {
	canon, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := release.SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	return &wire.SignedRelease{ID: m.ID, Manifest: canon, Signature: sig.Marshal()}
}

// errCrash is what crashingStore returns after its crash write: the
// process "dies" right after the journal write reached the disk.
var errCrash = errors.New("simulated crash after a journal write")

// crashingStore wraps a journal store and crashes after write number
// crashAt (1-based; 0 never).
type crashingStore struct {
	*journal.Store
	writes  *int
	crashAt int
	// maxBoots, when set, records the most boot records ever written.
	maxBoots *int
}

func (s crashingStore) Save(j *journal.Journal, now time.Time) error {
	if err := s.Store.Save(j, now); err != nil {
		return err
	}
	*s.writes++
	if s.maxBoots != nil {
		*s.maxBoots = max(*s.maxBoots, len(j.Boots))
	}
	if *s.writes == s.crashAt {
		return errCrash
	}
	return nil
}

// rig is one host with its agent's dependencies.
type rig struct {
	t      testing.TB
	host   *fakeHost
	coord  *fsmCoordinator
	stager *fakeStager
	booter *fakeBooter
	state  string
	checks []health.CommandCheck
	writes int
	// maxBootRecords is the most boot records a journal write held.
	maxBootRecords int
	// policies and pinned, when set, replace the fake host's policy
	// status as Config.Policies and Config.PinnedPolicies.
	policies, pinned func(context.Context) ([]wire.PolicyStatus, error)
	// installer, when set, is Config.Installer.
	installer Installer
	// loader is the boot loader (nil: not managed, by choice).
	loader *fakeLoader
	// lsmFile lists the active LSMs.
	lsmFile string
	// line is the agent's configured kernel line ("": 6.1).
	line string
}

func newRig(t testing.TB) *rig {
	h := newFakeHost(t)
	return &rig{t: t, host: h, coord: newFSMCoordinator(t, signedTestRelease(t), 1),
		stager: &fakeStager{h: h, dir: t.TempDir()}, booter: &fakeBooter{h: h}, state: t.TempDir()}
}

// agent starts a new agent process (crashing after journal write crashAt
// counted over the rig's lifetime, 0 = never).
func (r *rig) agent(crashAt int) *Agent {
	st, err := journal.NewStore(r.state)
	if err != nil {
		r.t.Fatal(err)
	}
	checker, err := health.New(health.Config{ProcDir: r.host.proc, Commands: r.checks, Policies: policyLister{r.host}})
	if err != nil {
		r.t.Fatal(err)
	}
	policies := r.host.policyStatus
	if r.policies != nil {
		policies = r.policies
	}
	var loader BootLoader
	if r.loader != nil {
		loader = r.loader
	}
	a, err := New(Config{
		BootLoader: loader, LSMFile: r.lsmFile,
		Policies: policies, PinnedPolicies: r.pinned,
		HostID: "h1", Datacenter: "fra1", KernelLine: orLine(r.line, "6.1"),
		Coordinator: r.coord, Stager: r.stager, Routes: fakeRoutes{r.host}, Booter: r.booter, Verifier: checker, Installer: r.installer,
		Journal: crashingStore{Store: st, writes: &r.writes, crashAt: crashAt, maxBoots: &r.maxBootRecords},
		Kernel:  running.ProcFS{Dir: r.host.proc}, BootDir: r.host.boot, RetryInterval: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// drive runs agent processes until the journal is back in idle (or
// failed) with the release done, restarting after every crash and boot.
// It returns the number of agent processes used.
func (r *rig) drive(crashAt int, stopAt string) (processes int) {
	ctx := context.Background()
	for processes = 1; processes < 50; processes++ {
		a := r.agent(crashAt)
		for steps := 0; ; steps++ {
			if steps > 200 {
				r.t.Fatalf("no progress: journal %+v", a.Journal())
			}
			if _, err := a.Heartbeat(ctx); err != nil && !errors.Is(err, errCrash) {
				r.t.Fatalf("heartbeat: %v", err)
			}
			_, err := a.Step(ctx)
			if errors.Is(err, errCrash) || errors.Is(err, ErrRebooting) {
				break // the process dies (or the machine reboots)
			}
			if err != nil {
				r.t.Logf("step error (retried): %v", err)
			}
			j := a.Journal()
			if j.Phase == stopAt && j.Target == nil {
				return processes
			}
		}
	}
	r.t.Fatal("too many agent processes")
	return 0
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
