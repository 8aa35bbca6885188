package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/pkg/tomlfile"

	"github.com/kroll-dev/kroll/agent/boot"
	"github.com/kroll-dev/kroll/agent/bootloader"
	"github.com/kroll-dev/kroll/agent/health"
	"github.com/kroll-dev/kroll/agent/install"
	"github.com/kroll-dev/kroll/agent/lifecycle"
	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/pkg/signing"
)

// DefaultConfigPath is where the packaged configuration lives.
const DefaultConfigPath = "/etc/kroll/agent.toml"

// fileConfig is agent.toml; docs/examples/agent.toml documents every key.
type fileConfig struct {
	HostID     string `toml:"host_id"`
	Datacenter string `toml:"datacenter"`
	KernelLine string `toml:"kernel_line"`
	StateDir   string `toml:"state_dir"`

	Coordinator struct {
		URLs      []string          `toml:"urls"`
		TokenFile string            `toml:"token_file"`
		CAFile    string            `toml:"ca_file"`
		CertFile  string            `toml:"cert_file"`
		KeyFile   string            `toml:"key_file"`
		Timeout   tomlfile.Duration `toml:"timeout"`
	} `toml:"coordinator"`

	Trust struct {
		ReleaseKeys []string `toml:"release_keys"`
		PolicyKeys  []string `toml:"policy_keys"`
	} `toml:"trust"`

	Stage struct {
		Dir         string            `toml:"dir"`
		MinFreeMB   int64             `toml:"min_free_mb"`
		Modules     bool              `toml:"modules"`
		MaxRetries  int               `toml:"max_retries"`
		Backoff     tomlfile.Duration `toml:"backoff"`
		MaxEntryMB  int64             `toml:"max_entry_mb"`
		MaxTotalMB  int64             `toml:"max_total_mb"`
		DownloadCap tomlfile.Duration `toml:"download_timeout"`
	} `toml:"stage"`

	Install struct {
		Mode             string `toml:"mode"`
		Initramfs        string `toml:"initramfs"`
		MinFreeBootMB    int64  `toml:"min_free_boot_mb"`
		MinFreeModulesMB int64  `toml:"min_free_modules_mb"`
	} `toml:"install"`

	Anycast struct {
		Table    int      `toml:"table"`
		Prefixes []string `toml:"prefixes"`
	} `toml:"anycast"`

	Drain struct {
		Threshold int               `toml:"threshold"`
		Deadline  tomlfile.Duration `toml:"deadline"`
		Poll      tomlfile.Duration `toml:"poll"`
		OnTimeout string            `toml:"on_timeout"`
	} `toml:"drain"`

	Boot struct {
		Mode        string   `toml:"mode"`
		Loader      string   `toml:"loader"`
		BootDir     string   `toml:"boot_dir"`
		Initrd      string   `toml:"initrd"`
		MaxBoots    int      `toml:"max_boots"`
		StripParams []string `toml:"strip_params"`
	} `toml:"boot"`

	Health struct {
		RequiredUnits []string          `toml:"required_units"`
		SettleTimeout tomlfile.Duration `toml:"settle_timeout"`
		Commands      []struct {
			Name    string            `toml:"name"`
			Command []string          `toml:"command"`
			Timeout tomlfile.Duration `toml:"timeout"`
		} `toml:"commands"`
	} `toml:"health"`

	Mitigations struct {
		BPFFS    string `toml:"bpffs"`
		StateDir string `toml:"state_dir"`
	} `toml:"mitigations"`

	Metrics struct {
		// Listen is nil when not set (DefaultMetricsListen); "" turns
		// the endpoint off.
		Listen *string `toml:"listen"`
	} `toml:"metrics"`

	Gossip struct {
		Bind      string   `toml:"bind"`
		Advertise string   `toml:"advertise"`
		Seeds     []string `toml:"seeds"`
		KeyFiles  []string `toml:"key_files"`
	} `toml:"gossip"`

	Timing struct {
		RetryInterval     tomlfile.Duration `toml:"retry_interval"`
		HeartbeatInterval tomlfile.Duration `toml:"heartbeat_interval"`
		RenewInterval     tomlfile.Duration `toml:"renew_interval"`
		// ErrorBackoff and ErrorBackoffMax pace retries of failed
		// heartbeats and renewals (exponential, full jitter).
		ErrorBackoff    tomlfile.Duration `toml:"error_backoff"`
		ErrorBackoffMax tomlfile.Duration `toml:"error_backoff_max"`
	} `toml:"timing"`
}

// config is the resolved agent configuration.
type config struct {
	path        string
	kernel      running.Kernel // the running kernel, for every part of the agent
	hostID      string
	datacenter  string
	kernelLine  string
	stateDir    string
	coordURLs   []string
	token       string
	caFile      string
	certFile    string
	keyFile     string
	timeout     time.Duration
	releaseKeys []ed25519.PublicKey
	policyKeys  []ed25519.PublicKey
	stageDir    string
	minFree     uint64
	modules     bool
	maxRetries  int
	backoff     time.Duration
	maxEntry    int64
	maxTotal    int64
	table       int
	prefixes    []netip.Prefix
	// install is the [install] section (installMode "auto" or "off").
	install     install.Config
	installMode string
	drain       lifecycle.DrainPolicy
	bootMode    boot.Mode
	loader      bootloader.Kind
	bootDir     string
	initrd      string
	maxBoots    int
	strip       []string
	units       []string
	settle      time.Duration
	commands    []health.CommandCheck
	bpffs       string
	mitState    string
	metrics     string
	retry       time.Duration
	heartbeat   time.Duration
	renew       time.Duration
	errBackoff  time.Duration
	errMax      time.Duration

	gossip         bool
	gossipBindAddr string
	gossipBindPort int
	gossipAdvAddr  string
	gossipAdvPort  int
	gossipSeeds    []string
	gossipKeyFiles []string
}

// loadConfig reads and validates path; every problem is reported at once.
// kernel is the running kernel (the default kernel_line is its line).
func loadConfig(path string, kernel running.Kernel) (*config, error) {
	var fc fileConfig
	if err := tomlfile.Decode(path, &fc); err != nil {
		return nil, err
	}
	c, errs := resolve(fc, kernel)
	if len(errs) > 0 {
		return nil, fmt.Errorf("config %s: %w", path, errors.Join(errs...))
	}
	c.path = path
	return c, nil
}

func resolve(fc fileConfig, kernel running.Kernel) (*config, []error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c := &config{
		hostID: fc.HostID, datacenter: fc.Datacenter, kernelLine: fc.KernelLine, stateDir: fc.StateDir,
		coordURLs: fc.Coordinator.URLs, caFile: fc.Coordinator.CAFile, certFile: fc.Coordinator.CertFile, keyFile: fc.Coordinator.KeyFile,
		timeout: fc.Coordinator.Timeout.Duration, stageDir: fc.Stage.Dir, modules: fc.Stage.Modules,
		maxRetries: fc.Stage.MaxRetries, backoff: fc.Stage.Backoff.Duration, table: fc.Anycast.Table,
		bootMode: boot.Mode(fc.Boot.Mode), bootDir: fc.Boot.BootDir, initrd: fc.Boot.Initrd, maxBoots: fc.Boot.MaxBoots,
		strip: fc.Boot.StripParams, units: fc.Health.RequiredUnits, settle: fc.Health.SettleTimeout.Duration,
		bpffs: fc.Mitigations.BPFFS, mitState: fc.Mitigations.StateDir, metrics: DefaultMetricsListen,
		retry: fc.Timing.RetryInterval.Duration, heartbeat: fc.Timing.HeartbeatInterval.Duration, renew: fc.Timing.RenewInterval.Duration,
		errBackoff: fc.Timing.ErrorBackoff.Duration, errMax: fc.Timing.ErrorBackoffMax.Duration,
	}
	if c.errBackoff > 0 && c.errMax > 0 && c.errBackoff > c.errMax {
		bad("timing.error_backoff (%s) must not be longer than timing.error_backoff_max (%s)", c.errBackoff, c.errMax)
	}
	if c.hostID == "" {
		b, err := os.ReadFile("/etc/machine-id")
		if err != nil {
			bad("host_id: not set and /etc/machine-id unreadable: %v", err)
		}
		c.hostID = strings.TrimSpace(string(b))
	}
	if c.datacenter == "" {
		bad("datacenter: required")
	}
	for field, v := range map[string]string{"host_id": c.hostID, "datacenter": c.datacenter} {
		if v != "" && !validName(v) {
			bad("%s: %q is not a valid name (letters, digits, '.', '_', ':', '-'; at most 128)", field, v)
		}
	}
	c.kernel = kernel
	if c.kernelLine == "" {
		if v, err := kernel.Version(); err == nil {
			c.kernelLine = v.Line()
		} else {
			bad("kernel_line: not set and the running kernel's line is unknown: %v", err)
		}
	}
	if c.stateDir == "" {
		c.stateDir = defaultStateDir
	}
	if !filepath.IsAbs(c.stateDir) {
		bad("state_dir: %q is not an absolute path", c.stateDir)
	}
	if len(c.coordURLs) == 0 {
		bad("coordinator.urls: at least one coordinator URL is required")
	}
	if fc.Coordinator.TokenFile != "" {
		b, err := os.ReadFile(fc.Coordinator.TokenFile)
		if err != nil {
			bad("coordinator.token_file: %v", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	if (c.certFile == "") != (c.keyFile == "") {
		bad("coordinator.cert_file and coordinator.key_file: set both or neither")
	}
	loadKeys := func(field string, paths []string) []ed25519.PublicKey {
		var out []ed25519.PublicKey
		for i, p := range paths {
			k, err := signing.LoadPublicKey(p)
			if err != nil {
				bad("%s[%d]: %v", field, i, err)
				continue
			}
			out = append(out, k)
		}
		return out
	}
	c.releaseKeys = loadKeys("trust.release_keys", fc.Trust.ReleaseKeys)
	c.policyKeys = loadKeys("trust.policy_keys", fc.Trust.PolicyKeys)
	if len(fc.Trust.ReleaseKeys) == 0 {
		bad("trust.release_keys: at least one trusted release key is required")
	}
	if c.stageDir == "" {
		c.stageDir = filepath.Join(c.stateDir, "releases")
	}
	if fc.Stage.MinFreeMB < 0 || fc.Stage.MaxEntryMB < 0 || fc.Stage.MaxTotalMB < 0 {
		bad("stage: sizes must not be negative")
	}
	c.minFree = uint64(max(fc.Stage.MinFreeMB, 0)) << 20
	c.maxEntry, c.maxTotal = fc.Stage.MaxEntryMB<<20, fc.Stage.MaxTotalMB<<20
	if c.table < 0 || c.table > 0xffffffff {
		bad("anycast.table: %d out of range", c.table)
	}
	for i, s := range fc.Anycast.Prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			bad("anycast.prefixes[%d]: %v", i, err)
			continue
		}
		c.prefixes = append(c.prefixes, p.Masked())
	}
	if c.table == 0 && len(c.prefixes) > 0 {
		bad("anycast.prefixes need anycast.table (the kernel table your BGP daemon exports)")
	}
	c.drain = lifecycle.DrainPolicy{Threshold: fc.Drain.Threshold, Deadline: fc.Drain.Deadline.Duration, Poll: fc.Drain.Poll.Duration}
	if c.drain.Threshold < 0 {
		bad("drain.threshold: must not be negative")
	}
	switch fc.Drain.OnTimeout {
	case "", "proceed":
	case "abort":
		c.drain.AbortOnTimeout = true
	default:
		bad("drain.on_timeout: %q, want proceed or abort", fc.Drain.OnTimeout)
	}
	switch c.bootMode {
	case "":
		c.bootMode = boot.ModeDryRun
	case boot.ModeKexec, boot.ModeReboot, boot.ModeDryRun:
	default:
		bad("boot.mode: %q, want kexec, reboot or dry-run", c.bootMode)
	}
	if k, err := bootloader.ParseKind(fc.Boot.Loader); err != nil {
		bad("boot.loader: %q, want auto, grub, systemd-boot or none", fc.Boot.Loader)
	} else {
		c.loader = k
	}
	if c.bootDir != "" && !filepath.IsAbs(c.bootDir) {
		bad("boot.boot_dir: %q is not an absolute path", c.bootDir)
	}
	if c.maxBoots < 0 || c.maxBoots > 10 {
		bad("boot.max_boots: %d, want 1 to 10", c.maxBoots)
	}
	if c.initrd != "" && !filepath.IsAbs(c.initrd) {
		bad("boot.initrd: %q is not an absolute path", c.initrd)
	}
	resolveInstall(c, fc, bad)
	for i, cmd := range fc.Health.Commands {
		if cmd.Name == "" || len(cmd.Command) == 0 {
			bad("health.commands[%d]: name and command are required", i)
			continue
		}
		c.commands = append(c.commands, health.CommandCheck{Name: cmd.Name, Command: cmd.Command, Timeout: cmd.Timeout.Duration})
	}
	c.mitState, c.bpffs = mitigationDirs(fc)
	if fc.Metrics.Listen != nil {
		c.metrics = *fc.Metrics.Listen
	}
	if c.metrics != "" {
		if _, _, err := net.SplitHostPort(c.metrics); err != nil {
			bad("metrics.listen: %v", err)
		}
	}
	if g := fc.Gossip; g.Bind != "" {
		c.gossip = true
		ap, err := netip.ParseAddrPort(g.Bind)
		if err != nil {
			bad("gossip.bind: %v (want ip:port, e.g. 0.0.0.0:7946)", err)
		}
		c.gossipBindAddr, c.gossipBindPort = ap.Addr().String(), int(ap.Port())
		if g.Advertise != "" {
			ap, err := netip.ParseAddrPort(g.Advertise)
			if err != nil {
				bad("gossip.advertise: %v", err)
			}
			c.gossipAdvAddr, c.gossipAdvPort = ap.Addr().String(), int(ap.Port())
		}
		for i, s := range g.Seeds {
			if _, _, err := net.SplitHostPort(s); err != nil {
				bad("gossip.seeds[%d]: %v", i, err)
			}
		}
		c.gossipSeeds = g.Seeds
		if len(g.KeyFiles) == 0 {
			bad("gossip.key_files: the pool must be encrypted: give at least one key file (base64 of 16, 24 or 32 random bytes)")
		}
		c.gossipKeyFiles = g.KeyFiles
		if _, err := readKeys(g.KeyFiles); err != nil {
			bad("%v", err)
		}
	} else if len(fc.Gossip.Seeds) > 0 || len(fc.Gossip.KeyFiles) > 0 {
		bad("gossip: seeds or key_files without gossip.bind")
	}
	return c, errs
}

// The values of install.mode.
const (
	installAuto = "auto"
	installOff  = "off"
)

// maxFreeMB bounds the [install] free-space margins (1 TiB).
const maxFreeMB = 1 << 20

// resolveInstall checks the [install] section. Unset, the mode is "auto"
// when the boot step is real and "off" in dry-run (an agent nobody
// configured changes nothing on the host).
func resolveInstall(c *config, fc fileConfig, bad func(string, ...any)) {
	in := fc.Install
	c.installMode = in.Mode
	switch in.Mode {
	case "":
		c.installMode = installAuto
		if c.bootMode == boot.ModeDryRun {
			c.installMode = installOff
		}
	case installAuto, installOff:
	default:
		bad("install.mode: %q, want auto or off", in.Mode)
	}
	switch in.Initramfs {
	case "", install.InitramfsAuto:
	case install.InitramfsUpdateInitramfs, install.InitramfsDracut:
		if _, err := exec.LookPath(in.Initramfs); err != nil && c.installMode == installAuto {
			bad("install.initramfs: %q is not installed: %v", in.Initramfs, err)
		}
	default:
		bad("install.initramfs: %q, want auto, update-initramfs or dracut", in.Initramfs)
	}
	for _, v := range []struct {
		name string
		mb   int64
	}{{"install.min_free_boot_mb", in.MinFreeBootMB}, {"install.min_free_modules_mb", in.MinFreeModulesMB}} {
		if v.mb < 0 || v.mb > maxFreeMB {
			bad("%s: %d, want 0 to %d", v.name, v.mb, maxFreeMB)
		}
	}
	c.install = install.Config{StateDir: c.stateDir, Initramfs: in.Initramfs,
		MinFreeBoot: uint64(min(max(in.MinFreeBootMB, 0), maxFreeMB)) << 20, MinFreeModules: uint64(min(max(in.MinFreeModulesMB, 0), maxFreeMB)) << 20}
}

// DefaultMetricsListen is where the daemon serves Prometheus /metrics
// unless metrics.listen says otherwise: on by default, on localhost only.
const DefaultMetricsListen = "127.0.0.1:9465"

// defaultStateDir is the daemon's state directory when state_dir is not
// set.
const defaultStateDir = "/var/lib/kroll-agent"

// mitigationDirs returns the mitigations' state directory and bpffs pin
// directory of fc: mitigations.state_dir, else <state_dir>/mitigations;
// mitigations.bpffs, else mitigate.DefaultBPFFS. The daemon and the
// one-shot mitigations commands both use it, so that they share one
// state (and its lock) next to one set of pins.
func mitigationDirs(fc fileConfig) (stateDir, bpffs string) {
	stateDir, bpffs = fc.Mitigations.StateDir, fc.Mitigations.BPFFS
	if stateDir == "" {
		base := fc.StateDir
		if base == "" {
			base = defaultStateDir
		}
		stateDir = filepath.Join(base, "mitigations")
	}
	if bpffs == "" {
		bpffs = mitigate.DefaultBPFFS
	}
	return stateDir, bpffs
}

// validName mirrors the coordinator's host and datacenter id rule.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._:-", rune(ch))) {
			return false
		}
	}
	return true
}
