// Package health verifies a host after it booted a new kernel (DESIGN §4
// "Verify"), before the agent restores its anycast routes: the running
// kernel is the target one, the boot id changed (the reboot really
// happened), systemd reached the "running" state where it is PID 1, the
// required units are active, the expected mitigation policies are in force
// and the configured check commands succeed.
//
// A Checker runs every check and records each outcome as a Check in a
// Result; a failed check never aborts the others, so the Result explains
// everything that is wrong with the host. Check returns an error only for
// misuse (an empty expected kernel release, an unparsable upstream version)
// or when its context ends.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/pkg/kversion"
)

// Defaults used when the corresponding field is zero.
const (
	// DefaultProcDir is the procfs mount read by the kernel, boot-id and
	// systemd detection checks.
	DefaultProcDir = "/proc"
	// DefaultSettleTimeout bounds how long Check waits for systemd to
	// leave the "initializing" and "starting" states.
	DefaultSettleTimeout = 2 * time.Minute
	// DefaultCommandTimeout bounds a CommandCheck without a Timeout.
	DefaultCommandTimeout = 30 * time.Second
)

// defaultPollInterval is how often SystemState is polled while systemd
// settles.
const defaultPollInterval = time.Second

// maxProcFile bounds how much of a procfs file is read.
const maxProcFile = 64 << 10

// Expect describes the host the agent expects after the reboot.
type Expect struct {
	// KernelRelease is the release (uname -r) the host must run, e.g.
	// "6.1.0-56-amd64". It is required.
	KernelRelease string
	// UpstreamVersion, when set, is the upstream version (e.g. "6.1.192")
	// that the running kernel must report in /proc/version. Debian ABI
	// names such as "6.1.0-56-amd64" do not carry it; /proc/version does
	// ("Debian 6.1.192-2"), and it is parsed with kversion.ParseProcVersion.
	UpstreamVersion string
	// PreviousBootID is the boot id recorded before the reboot; the current
	// one must differ. "" disables the check.
	PreviousBootID string
	// Policies are the ids of the mitigation policies that must be in
	// force (enforcing or auditing).
	Policies []string
}

// Check is the outcome of one health check.
type Check struct {
	// Name identifies the check: "kernel", "boot-id", "systemd",
	// "unit:<name>", "policy:<id>" or "command:<name>".
	Name string `json:"name"`
	// OK reports whether the check passed.
	OK bool `json:"ok"`
	// Detail is a one-line explanation of the outcome.
	Detail string `json:"detail"`
	// Duration is how long the check took.
	Duration time.Duration `json:"duration"`
}

// Result is the outcome of Checker.Check.
type Result struct {
	// Healthy is true when every check passed.
	Healthy bool `json:"healthy"`
	// Checks lists every check in the order it ran.
	Checks []Check `json:"checks"`
}

// Summary returns a one-line description of r: the number of passed checks
// when healthy, otherwise every failed check with its detail.
func (r Result) Summary() string {
	var failed []string
	for _, c := range r.Checks {
		if !c.OK {
			failed = append(failed, c.Name+" ("+oneLine(c.Detail)+")")
		}
	}
	switch {
	case r.Healthy && len(failed) == 0:
		return fmt.Sprintf("healthy: all %d checks passed", len(r.Checks))
	case len(failed) == 0:
		return "unhealthy: no check recorded a failure"
	default:
		return fmt.Sprintf("unhealthy: %d of %d checks failed: %s",
			len(failed), len(r.Checks), strings.Join(failed, "; "))
	}
}

// oneLine replaces line breaks so that s fits on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// CommandCheck is a command that must exit with status 0.
type CommandCheck struct {
	// Name identifies the check in the Result ("command:<Name>").
	Name string
	// Command is the argv to run, without a shell; Command[0] is looked up
	// in PATH when it contains no slash.
	Command []string
	// Timeout bounds the command; when it passes, the command's whole
	// process group is killed. Zero means DefaultCommandTimeout.
	Timeout time.Duration
}

// PolicyLister reports the mitigation policies currently in force.
type PolicyLister interface {
	// InForce returns the ids of the policies currently enforcing or
	// auditing.
	InForce(ctx context.Context) (map[string]bool, error)
}

// Systemd is the part of the systemd manager the checks need.
type Systemd interface {
	// SystemState returns the manager's SystemState property
	// ("initializing", "starting", "running", "degraded", ...).
	SystemState(ctx context.Context) (string, error)
	// UnitActiveState returns the ActiveState property of unit
	// ("active", "inactive", "failed", ...).
	UnitActiveState(ctx context.Context, unit string) (string, error)
}

// Config configures a Checker.
type Config struct {
	// ProcDir is the procfs root; "" means DefaultProcDir. The checks read
	// 1/comm below it.
	ProcDir string
	// Kernel is the running kernel the kernel and boot-id checks read;
	// running.ProcFS{Dir: ProcDir} when nil.
	Kernel running.Kernel
	// Systemd is the systemd manager to query. When nil, each Check looks
	// at <ProcDir>/1/comm: if PID 1 is "systemd" it connects with
	// NewSystemd, otherwise the "systemd" check passes with the detail
	// "systemd not running" (and any RequiredUnits fail, as they cannot be
	// verified).
	Systemd Systemd
	// RequiredUnits are systemd units whose ActiveState must be "active".
	RequiredUnits []string
	// Commands are run in order; each must exit with status 0.
	Commands []CommandCheck
	// Policies reports the mitigation policies in force. When nil, every
	// policy in Expect.Policies is a failed check.
	Policies PolicyLister
	// SettleTimeout bounds how long Check waits for systemd to leave the
	// "initializing" and "starting" states (and for its D-Bus API to
	// answer); zero means DefaultSettleTimeout.
	SettleTimeout time.Duration
}

// Checker verifies a host's health. It is safe for concurrent use.
type Checker struct {
	procDir       string
	kernel        running.Kernel
	systemd       Systemd
	units         []string
	commands      []CommandCheck
	policies      PolicyLister
	settleTimeout time.Duration

	// pollInterval is how often SystemState is polled while systemd
	// settles; tests shorten it.
	pollInterval time.Duration
	// newSystemd connects to systemd when Config.Systemd is nil and
	// systemd is PID 1; tests replace it.
	newSystemd func(ctx context.Context) (Systemd, error)
}

// New validates cfg and returns a Checker.
func New(cfg Config) (*Checker, error) {
	c := &Checker{
		procDir:       cfg.ProcDir,
		kernel:        cfg.Kernel,
		systemd:       cfg.Systemd,
		policies:      cfg.Policies,
		settleTimeout: cfg.SettleTimeout,
		pollInterval:  defaultPollInterval,
		newSystemd:    NewSystemd,
	}
	if c.procDir == "" {
		c.procDir = DefaultProcDir
	}
	if c.kernel == nil {
		c.kernel = running.ProcFS{Dir: c.procDir}
	}
	if c.settleTimeout < 0 {
		return nil, fmt.Errorf("health: negative settle timeout %v", cfg.SettleTimeout)
	}
	if c.settleTimeout == 0 {
		c.settleTimeout = DefaultSettleTimeout
	}
	seen := make(map[string]bool)
	for _, u := range cfg.RequiredUnits {
		if strings.TrimSpace(u) == "" {
			return nil, errors.New("health: empty required unit name")
		}
		if seen[u] {
			return nil, fmt.Errorf("health: required unit %q listed twice", u)
		}
		seen[u] = true
		c.units = append(c.units, u)
	}
	names := make(map[string]bool)
	for i, cc := range cfg.Commands {
		if cc.Name == "" {
			return nil, fmt.Errorf("health: command check %d has no name", i)
		}
		if names[cc.Name] {
			return nil, fmt.Errorf("health: command check name %q used twice", cc.Name)
		}
		names[cc.Name] = true
		if len(cc.Command) == 0 || cc.Command[0] == "" {
			return nil, fmt.Errorf("health: command check %q has no command", cc.Name)
		}
		if cc.Timeout < 0 {
			return nil, fmt.Errorf("health: command check %q has a negative timeout %v", cc.Name, cc.Timeout)
		}
		if cc.Timeout == 0 {
			cc.Timeout = DefaultCommandTimeout
		}
		cc.Command = append([]string(nil), cc.Command...)
		c.commands = append(c.commands, cc)
	}
	return c, nil
}

// Check runs every check against want and returns their outcomes, in the
// order "kernel", "boot-id", "systemd", "unit:<name>" per required unit,
// "policy:<id>" per expected policy and "command:<name>" per command. A
// failed check is recorded in the Result, never returned as an error. The
// error is non-nil only when want is invalid (the Result is then empty) or
// ctx ends (the Result then holds the checks completed so far and is not
// healthy).
func (c *Checker) Check(ctx context.Context, want Expect) (Result, error) {
	if strings.TrimSpace(want.KernelRelease) == "" {
		return Result{}, errors.New("health: expected kernel release is empty")
	}
	var wantUpstream string
	if want.UpstreamVersion != "" {
		v, err := kversion.Parse(want.UpstreamVersion)
		if err != nil {
			return Result{}, fmt.Errorf("health: expected upstream version: %w", err)
		}
		u, ok := v.Upstream()
		if !ok {
			return Result{}, fmt.Errorf("health: expected upstream version %q does not name an upstream version", want.UpstreamVersion)
		}
		wantUpstream = u
	}
	seen := make(map[string]bool)
	for _, p := range want.Policies {
		if p == "" {
			return Result{}, errors.New("health: empty expected policy id")
		}
		if seen[p] {
			return Result{}, fmt.Errorf("health: expected policy %q listed twice", p)
		}
		seen[p] = true
	}

	var res Result
	record := func(name string, start time.Time, ok bool, detail string) {
		res.Checks = append(res.Checks, Check{Name: name, OK: ok, Detail: detail, Duration: time.Since(start)})
	}
	abort := func(err error) (Result, error) {
		res.Healthy = false
		return res, fmt.Errorf("health: check interrupted: %w", err)
	}

	start := time.Now()
	ok, detail := c.checkKernel(strings.TrimSpace(want.KernelRelease), wantUpstream)
	record("kernel", start, ok, detail)

	start = time.Now()
	ok, detail = c.checkBootID(want.PreviousBootID)
	record("boot-id", start, ok, detail)

	start = time.Now()
	sd, ok, detail, err := c.checkSystemd(ctx)
	if err != nil {
		return abort(err)
	}
	record("systemd", start, ok, detail)

	for _, u := range c.units {
		start = time.Now()
		ok, detail, err := c.checkUnit(ctx, sd, u)
		if err != nil {
			return abort(err)
		}
		record("unit:"+u, start, ok, detail)
	}

	if len(want.Policies) > 0 {
		start = time.Now()
		inForce, listErr := c.listPolicies(ctx)
		if err := ctx.Err(); err != nil {
			return abort(err)
		}
		for _, p := range want.Policies {
			ok, detail := policyOutcome(inForce, listErr, p)
			record("policy:"+p, start, ok, detail)
			start = time.Now()
		}
	}

	for _, cc := range c.commands {
		start = time.Now()
		ok, detail := runCommand(ctx, cc)
		if err := ctx.Err(); err != nil {
			return abort(err)
		}
		record("command:"+cc.Name, start, ok, detail)
	}

	res.Healthy = true
	for _, ch := range res.Checks {
		res.Healthy = res.Healthy && ch.OK
	}
	return res, nil
}

// readProc reads a (small) file below the proc dir, trimmed of surrounding
// white space.
func (c *Checker) readProc(rel string) (string, error) {
	path := filepath.Join(c.procDir, filepath.FromSlash(rel))
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("health: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcFile))
	if err != nil {
		return "", fmt.Errorf("health: reading %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// checkKernel compares the running release with want and, when
// wantUpstream is set, the upstream version /proc/version reports.
func (c *Checker) checkKernel(want, wantUpstream string) (bool, string) {
	release, err := c.kernel.Release()
	if err != nil {
		return false, "health: " + err.Error()
	}
	if release != want {
		return false, fmt.Sprintf("running kernel %q, want %q", release, want)
	}
	if wantUpstream == "" {
		return true, fmt.Sprintf("running kernel %q", release)
	}
	v, err := c.kernel.Version()
	if errors.Is(err, running.ErrMalformed) {
		return false, fmt.Sprintf("running kernel %q, but /proc/version cannot be parsed: %v", release, err)
	}
	if err != nil {
		return false, "health: " + err.Error()
	}
	if v.String() != release {
		return false, fmt.Sprintf("/proc/version names release %q but osrelease is %q", v.String(), release)
	}
	got, known := v.Upstream()
	if !known {
		return false, fmt.Sprintf("running kernel %q, but /proc/version does not reveal its upstream version, want %s", release, wantUpstream)
	}
	if got != wantUpstream {
		return false, fmt.Sprintf("running kernel %q is upstream %s, want %s", release, got, wantUpstream)
	}
	return true, fmt.Sprintf("running kernel %q, upstream %s", release, got)
}

// checkBootID verifies the boot id differs from previous.
func (c *Checker) checkBootID(previous string) (bool, string) {
	current, err := c.kernel.BootID()
	if err != nil {
		return false, "health: " + err.Error()
	}
	previous = strings.TrimSpace(previous)
	if previous == "" {
		return true, fmt.Sprintf("boot id %s (no previous boot id to compare)", current)
	}
	if strings.EqualFold(current, previous) {
		return false, fmt.Sprintf("boot id %s unchanged: the host did not reboot", current)
	}
	return true, fmt.Sprintf("boot id %s, was %s", current, previous)
}

// pid1IsSystemd reports whether PID 1 in the proc dir is systemd.
func (c *Checker) pid1IsSystemd() (bool, string) {
	comm, err := c.readProc("1/comm")
	if err != nil {
		return false, err.Error()
	}
	return comm == "systemd", "PID 1 is " + strconv.Quote(comm)
}

// checkSystemd waits up to the settle timeout for systemd to leave the
// "initializing" and "starting" states and checks it is "running". It
// returns the Systemd to query units with (nil when there is none), the
// outcome, and an error only when ctx ends.
func (c *Checker) checkSystemd(ctx context.Context) (Systemd, bool, string, error) {
	sd := c.systemd
	if sd == nil {
		if ok, why := c.pid1IsSystemd(); !ok {
			return nil, true, "systemd not running (" + why + ")", nil
		}
	}
	settle, cancel := context.WithTimeout(ctx, c.settleTimeout)
	defer cancel()
	tick := time.NewTicker(c.pollInterval)
	defer tick.Stop()
	var last string
	for {
		var state string
		var err error
		if sd == nil {
			sd, err = c.newSystemd(settle)
		}
		if err == nil {
			state, err = sd.SystemState(settle)
		}
		switch {
		case err != nil:
			last = err.Error()
		case state == "running":
			return sd, true, `system state "running"`, nil
		case state == "initializing" || state == "starting":
			last = fmt.Sprintf("system state still %q", state)
		default:
			return sd, false, fmt.Sprintf("system state %q, want \"running\"", state), nil
		}
		select {
		case <-tick.C:
			continue
		case <-settle.Done():
		}
		if err := ctx.Err(); err != nil {
			return nil, false, "", err
		}
		return sd, false, fmt.Sprintf("%s after %v, want \"running\"", last, c.settleTimeout), nil
	}
}

// checkUnit checks that unit is active; the error is non-nil only when ctx
// ended.
func (c *Checker) checkUnit(ctx context.Context, sd Systemd, unit string) (bool, string, error) {
	if sd == nil {
		if c.systemd == nil {
			if ok, _ := c.pid1IsSystemd(); !ok {
				return false, "systemd not running: cannot verify the unit", nil
			}
		}
		return false, "no connection to systemd: cannot verify the unit", nil
	}
	state, err := sd.UnitActiveState(ctx, unit)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return false, "", ctxErr
	}
	if err != nil {
		return false, err.Error(), nil
	}
	if state != "active" {
		return false, fmt.Sprintf("unit %q, want \"active\"", state), nil
	}
	return true, `unit "active"`, nil
}

// listPolicies asks the PolicyLister for the policies in force.
func (c *Checker) listPolicies(ctx context.Context) (map[string]bool, error) {
	if c.policies == nil {
		return nil, errors.New("no policy lister configured: cannot verify the policy")
	}
	m, err := c.policies.InForce(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing policies in force: %w", err)
	}
	return m, nil
}

// policyOutcome is the outcome of the check of policy id.
func policyOutcome(inForce map[string]bool, listErr error, id string) (bool, string) {
	if listErr != nil {
		return false, listErr.Error()
	}
	if !inForce[id] {
		return false, "policy not in force"
	}
	return true, "policy in force"
}
