//go:build (386 || amd64 || arm64) && linux

package mitigate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/policy"
)

// securityFS is where the availability check reads the active LSMs.
const securityFS = "/sys/kernel/security"

// BPFEnforcer installs policies as bpf-lsm programs pinned under Root:
// <Root>/<id>/map_<name>, prog_<hook> and link_<hook>.
type BPFEnforcer struct {
	Root string
}

// NewBPFEnforcer returns the production Enforcer pinning under root.
func NewBPFEnforcer(root string) *BPFEnforcer { return &BPFEnforcer{Root: root} }

// Available proves that bpf-lsm works: bpf is an active LSM (mounting
// securityfs if needed) and bpf.Probe's program is loaded, attached and
// actually runs.
func (e *BPFEnforcer) Available(ctx context.Context) error {
	lsmFile := filepath.Join(securityFS, "lsm")
	if _, err := os.Stat(lsmFile); errors.Is(err, os.ErrNotExist) {
		if err := unix.Mount("securityfs", securityFS, "securityfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%w: cannot mount securityfs on %s to read the active LSMs: %w", bpf.ErrUnavailable, securityFS, err)
		}
	}
	b, err := os.ReadFile(lsmFile)
	if err != nil {
		return fmt.Errorf("%w: reading the active LSMs: %w", bpf.ErrUnavailable, err)
	}
	active := strings.TrimSpace(string(b))
	if !slices.Contains(strings.Split(active, ","), "bpf") {
		return fmt.Errorf("%w: bpf is not an active LSM (%s lists %q): add bpf to the lsm= kernel command line, e.g. lsm=%s,bpf, and reboot", bpf.ErrUnavailable, lsmFile, active, active)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("%w: %w", bpf.ErrUnavailable, err)
	}
	if err := bpf.Probe(); err != nil {
		hint := ""
		if errors.Is(err, unix.EPERM) {
			hint = " (this kernel or its environment refuses LSM program loads: run as root with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN outside a restricting container or lockdown, on a kernel booted with bpf in lsm=)"
		}
		return fmt.Errorf("%w%s", err, hint)
	}
	if err := e.ensureBPFFS(); err != nil {
		return fmt.Errorf("%w: %w", bpf.ErrUnavailable, err)
	}
	return nil
}

// ensureBPFFS makes sure Root lies on a bpf filesystem, mounting one on
// Root's parent if that is not one.
func (e *BPFEnforcer) ensureBPFFS() error {
	parent := filepath.Dir(e.Root)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(parent, &fs); err != nil {
		return fmt.Errorf("statfs %s: %w", parent, err)
	}
	if fs.Type != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpf", parent, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs on %s: %w", parent, err)
		}
	}
	return os.MkdirAll(e.Root, 0o700)
}

func (e *BPFEnforcer) dir(id string) string { return filepath.Join(e.Root, id) }

func kindOf(k policy.Kind) (bpf.Kind, error) {
	for _, bk := range bpf.Kinds {
		if bk.String() == string(k) {
			return bk, nil
		}
	}
	return 0, fmt.Errorf("mitigate: unknown policy kind %q", k)
}

// hooks lists the single-bit operations of a set.
func hooks(ops bpf.Op) []bpf.Op {
	var out []bpf.Op
	for b := bpf.Op(1); b != 0 && b <= ops; b <<= 1 {
		if ops&b != 0 {
			out = append(out, b)
		}
	}
	return out
}

// configure maps a policy onto its program's settings.
func configure(p policy.Policy) (bk bpf.Kind, cfg bpf.Config, allow []bpf.Key, warns []string, err error) {
	bk, err = kindOf(p.Kind)
	if err != nil {
		return
	}
	cfg.Mode = bpf.Audit
	if p.Mode == policy.ModeEnforce {
		cfg.Mode = bpf.Enforce
	}
	switch bk {
	case bpf.KindSocketFamily:
		fam, ok := policy.SocketFamily(p.Params.Family)
		if !ok {
			err = fmt.Errorf("mitigate: unknown address family %q", p.Params.Family)
			return
		}
		cfg.Family = uint32(fam)
		for _, op := range p.Params.Operations {
			switch op {
			case policy.OpCreate:
				cfg.Ops |= bpf.OpSocketCreate
			case policy.OpBind:
				cfg.Ops |= bpf.OpSocketBind
			}
		}
	default:
		cfg.Ops = bk.Ops()
	}
	for _, path := range p.Params.AllowExe {
		k, kerr := bpf.ExeKey(path)
		if kerr != nil {
			warns = append(warns, fmt.Sprintf("allow_exe %s not allow-listed: %v", path, kerr))
			continue
		}
		allow = append(allow, k)
	}
	return
}

// Install implements Enforcer.
func (e *BPFEnforcer) Install(ctx context.Context, v policy.Verified) ([]string, error) {
	if v.IsZero() {
		return nil, fmt.Errorf("mitigate: install: %w: not a verified policy", ErrRejected)
	}
	p := v.Policy()
	bk, cfg, allow, warns, err := configure(p)
	if err != nil {
		return nil, err
	}
	var denyFiles []bpf.Key
	if bk == bpf.KindFileOpen {
		for _, path := range p.Params.Paths {
			k, kerr := bpf.ExeKey(path)
			if kerr != nil {
				warns = append(warns, fmt.Sprintf("path %s not denied: %v", path, kerr))
				continue
			}
			denyFiles = append(denyFiles, k)
		}
	}
	if err := e.ensureBPFFS(); err != nil {
		return warns, fmt.Errorf("mitigate: %w", err)
	}
	dir := e.dir(p.ID)
	o, err := e.adopt(dir, bk)
	if err != nil {
		return warns, err
	}
	fresh := o == nil
	if fresh {
		if err := os.RemoveAll(dir); err != nil {
			return warns, fmt.Errorf("mitigate: %w", err)
		}
		if o, err = bpf.Load(bk, nil); err != nil {
			return warns, fmt.Errorf("mitigate: %w", err)
		}
	}
	defer o.Close()
	fail := func(err error) ([]string, error) {
		if fresh {
			os.RemoveAll(dir)
		}
		return warns, fmt.Errorf("mitigate: %s: %w", p.ID, err)
	}
	if err := o.SetAllowed(allow); err != nil {
		return fail(err)
	}
	switch bk {
	case bpf.KindModuleRequest:
		err = o.SetDeniedModules(p.Params.Modules)
	case bpf.KindFileOpen:
		err = o.SetDeniedFiles(denyFiles)
	}
	if err != nil {
		return fail(err)
	}
	if err := o.SetConfig(cfg); err != nil {
		return fail(err)
	}
	if fresh {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fail(err)
		}
		for name, m := range o.Maps() {
			if err := m.Pin(filepath.Join(dir, "map_"+name)); err != nil {
				return fail(err)
			}
		}
		for op, prog := range o.Programs {
			if err := prog.Pin(filepath.Join(dir, "prog_"+op.String())); err != nil {
				return fail(err)
			}
		}
	}
	// Attach the hooks the policy uses and detach the others.
	for _, op := range hooks(bk.Ops()) {
		lpath := filepath.Join(dir, "link_"+op.String())
		_, statErr := os.Stat(lpath)
		pinned := statErr == nil
		switch {
		case cfg.Ops&op != 0 && !pinned:
			links, err := o.Attach(op)
			if err != nil {
				return fail(err)
			}
			l := links[op]
			err = l.Pin(lpath)
			l.Close()
			if err != nil {
				return fail(err)
			}
		case cfg.Ops&op == 0 && pinned:
			if err := unpinLink(lpath); err != nil {
				return fail(err)
			}
		}
	}
	return warns, nil
}

// adopt rebuilds the Objects of a pinned policy of kind bk, or returns nil
// if there is none (removing pins of another kind).
func (e *BPFEnforcer) adopt(dir string, bk bpf.Kind) (*bpf.Objects, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mitigate: %w", err)
	}
	o := &bpf.Objects{Kind: bk, Programs: map[bpf.Op]*ebpf.Program{}}
	progs := 0
	for _, ent := range ents {
		name := ent.Name()
		path := filepath.Join(dir, name)
		if rest, ok := strings.CutPrefix(name, "prog_"); ok {
			progs++
			op, ok := opByName(rest, bk)
			if !ok {
				// Pins of another kind: start over.
				o.Close()
				return nil, e.uninstallDir(dir)
			}
			prog, err := ebpf.LoadPinnedProgram(path, nil)
			if err != nil {
				o.Close()
				return nil, fmt.Errorf("mitigate: adopt %s: %w", path, err)
			}
			o.Programs[op] = prog
		}
	}
	if progs == 0 {
		return nil, e.uninstallDir(dir)
	}
	maps := map[string]**ebpf.Map{
		"kroll_config": &o.Config, "kroll_allow": &o.Allow, "kroll_events": &o.Events, "kroll_counters": &o.Counters,
	}
	if bk == bpf.KindModuleRequest || bk == bpf.KindFileOpen {
		maps["kroll_deny"] = &o.Deny
	}
	for name, dst := range maps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+name), nil)
		if err != nil {
			o.Close()
			return nil, fmt.Errorf("mitigate: adopt %s: %w", dir, err)
		}
		*dst = m
	}
	return o, nil
}

func opByName(name string, bk bpf.Kind) (bpf.Op, bool) {
	for _, op := range hooks(bk.Ops()) {
		if op.String() == name {
			return op, true
		}
	}
	return 0, false
}

func unpinLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return os.Remove(path)
	}
	defer l.Close()
	return l.Unpin()
}

// Read implements Enforcer.
func (e *BPFEnforcer) Read(id string) (bpf.Mode, bpf.Counters, error) {
	dir := e.dir(id)
	links, _ := filepath.Glob(filepath.Join(dir, "link_*"))
	if len(links) == 0 {
		return 0, bpf.Counters{}, fmt.Errorf("mitigate: %s: %w", id, ErrNotInstalled)
	}
	cm, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_kroll_config"), nil)
	if err != nil {
		return 0, bpf.Counters{}, fmt.Errorf("mitigate: %s: %w", id, err)
	}
	defer cm.Close()
	ctr, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_kroll_counters"), nil)
	if err != nil {
		return 0, bpf.Counters{}, fmt.Errorf("mitigate: %s: %w", id, err)
	}
	defer ctr.Close()
	o := &bpf.Objects{Config: cm, Counters: ctr}
	cfg, err := o.ReadConfig()
	if err != nil {
		return 0, bpf.Counters{}, err
	}
	c, err := o.ReadCounters()
	return cfg.Mode, c, err
}

// Uninstall implements Enforcer.
func (e *BPFEnforcer) Uninstall(id string) error {
	return e.uninstallDir(e.dir(id))
}

func (e *BPFEnforcer) uninstallDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mitigate: %w", err)
	}
	var errs []error
	// Links first: the programs stop running before their maps go.
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), "link_") {
			errs = append(errs, unpinLink(filepath.Join(dir, ent.Name())))
		}
	}
	for _, ent := range ents {
		name := filepath.Join(dir, ent.Name())
		switch {
		case strings.HasPrefix(ent.Name(), "prog_"):
			if p, err := ebpf.LoadPinnedProgram(name, nil); err == nil {
				errs = append(errs, p.Unpin(), p.Close())
			}
		case strings.HasPrefix(ent.Name(), "map_"):
			if m, err := ebpf.LoadPinnedMap(name, nil); err == nil {
				errs = append(errs, m.Unpin(), m.Close())
			}
		}
	}
	errs = append(errs, os.RemoveAll(dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mitigate: remove %s: %w", dir, err)
	}
	return nil
}
