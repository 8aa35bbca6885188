package vm

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/test/vm/guest"
)

// DefaultLSM is the lsm= boot parameter that turns the bpf LSM on.
const DefaultLSM = "lockdown,capability,landlock,yama,bpf"

// HostAddr is the address under which a guest with Network set reaches the
// host's loopback interface (qemu user networking).
const HostAddr = "10.0.2.2"

// GuestProgram is where the test program is placed inside the guest.
const GuestProgram = "/kroll/test"

// DataDir is where /init mounts the disk of a run with Config.DiskMB set.
const DataDir = "/data"

const (
	exitMarker   = "KROLL-EXIT "
	bootedMarker = "KROLL-BOOTED"
	initErrorTag = "KROLL-INIT-ERROR "
)

// Config describes one VM run.
type Config struct {
	// Kernel to boot.
	Kernel *Kernel
	// Program is the host path of a static binary (see BuildGo) that /init
	// runs as GuestProgram with Args; its exit status becomes
	// Result.ExitCode. Without a Program, /init runs Script.
	Program string
	// Args are passed to Program.
	Args []string
	// Script is a busybox sh script run when there is no Program.
	Script string
	// Modules are kernel modules to load before the program runs; their
	// dependencies are added and loaded first, built-in ones are skipped.
	Modules []string
	// Files maps guest paths to host files copied into the initramfs.
	Files map[string]string
	// Cmdline holds extra kernel command line parameters.
	Cmdline []string
	// LSM is the lsm= parameter; DefaultLSM when empty.
	LSM string
	// Network gives the guest a virtio NIC on qemu user networking, with
	// address 10.0.2.15/24 and the host's loopback reachable as HostAddr.
	Network bool
	// MemoryMB is the guest memory; 512 when zero.
	MemoryMB int
	// Timeout bounds the VM's run, from qemu's start (waiting for a VM
	// slot is bounded only by the caller's context); 2 minutes when zero.
	Timeout time.Duration
	// Console, when set, receives a copy of the serial console.
	Console io.Writer
	// Extra are further kernels this run may boot into (by kexec): their
	// modules (Modules plus the automatic ones) are included too, under
	// lib/modules/<release>/, and /init loads the set matching `uname -r`.
	Extra []*Kernel
	// DiskMB, when > 0, attaches a fresh ext4 disk (virtio-blk, created on
	// the host with mke2fs -t ext4 -d) that /init mounts at DataDir in every
	// boot of this run; virtio_blk, ext4 and their dependencies are loaded
	// automatically. The disk holds boot/vmlinuz-<release> and
	// boot/initrd.img-<release> for Kernel and every Extra (the initrd being
	// the very initramfs this run boots), so a guest can kexec into any of
	// them.
	DiskMB int
	// DiskFiles maps paths relative to DataDir to host files copied onto
	// the disk.
	DiskFiles map[string]string
	// Unqueued starts the VM at once, outside the $KROLL_VM_PARALLEL slots
	// shared by every process: for a fleet whose VMs only make progress
	// together (a demo rollout), where a queued VM would wait for a slot
	// held by another process while its peers wait for it.
	Unqueued bool
}

// Report is one result line the guest printed with guest.Report.
type Report struct {
	Key   string
	Value json.RawMessage
}

// Result is what a VM run produced.
type Result struct {
	// Reports in the order the guest printed them.
	Reports []Report
	// ExitCode of the guest program (-1 if it never finished).
	ExitCode int
	// Boots counts how often /init started (more than one after a kexec).
	Boots int
	// Console holds every console line.
	Console []string
	// Duration of the qemu process.
	Duration time.Duration
}

// Get returns the value of the last report with key.
func (r *Result) Get(key string) (json.RawMessage, bool) {
	for i := len(r.Reports) - 1; i >= 0; i-- {
		if r.Reports[i].Key == key {
			return r.Reports[i].Value, true
		}
	}
	return nil, false
}

// Decode unmarshals the last report with key into v.
func (r *Result) Decode(key string, v any) error {
	raw, ok := r.Get(key)
	if !ok {
		return fmt.Errorf("vm: guest reported no %q (last console lines:\n%s)", key, r.Tail(20))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("vm: report %q: %w", key, err)
	}
	return nil
}

// Tail returns the last n console lines joined by newlines.
func (r *Result) Tail(n int) string {
	lines := r.Console
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Run boots cfg.Kernel with an initramfs holding the program, waits for it
// to finish and returns what it reported. A kernel panic, a timeout or a
// guest that never reports its exit status is an error; the Result is
// returned with it for diagnosis. VMs are limited to $KROLL_VM_PARALLEL
// (default: number of CPUs) at once across all processes of this user.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Kernel == nil {
		return nil, errors.New("vm: Config.Kernel is nil")
	}
	if (cfg.Program == "") == (cfg.Script == "") {
		return nil, errors.New("vm: set exactly one of Config.Program and Config.Script")
	}
	for i, k := range cfg.Extra {
		if k == nil {
			return nil, fmt.Errorf("vm: Config.Extra[%d] is nil", i)
		}
	}
	if cfg.DiskMB < 0 || (cfg.DiskMB == 0 && len(cfg.DiskFiles) > 0) {
		return nil, fmt.Errorf("vm: Config.DiskMB = %d: want > 0 for a disk (DiskFiles needs one)", cfg.DiskMB)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}

	work, err := os.MkdirTemp("", "kroll-vm-")
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer os.RemoveAll(work)
	initrd := filepath.Join(work, "initrd.gz")
	if err := buildInitramfs(cfg, initrd); err != nil {
		return nil, err
	}
	var disk string
	if cfg.DiskMB > 0 {
		disk = filepath.Join(work, "data.img")
		if err := buildDisk(ctx, cfg, initrd, filepath.Join(work, "disk"), disk); err != nil {
			return nil, err
		}
	}

	if !cfg.Unqueued {
		release, err := AcquireSlot(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return runQEMU(ctx, cfg, initrd, disk)
}

func buildInitramfs(cfg Config, out string) error {
	r := NewInitramfs()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("vm: busybox not found (Debian package busybox-static; 'make deps' installs it): %w", err)
	}
	if err := r.AddHostFile("bin/busybox", bb); err != nil {
		return err
	}
	if err := checkStatic(bb); err != nil {
		return fmt.Errorf("vm: busybox: %w (install busybox-static)", err)
	}
	if cfg.Program != "" {
		if err := checkStatic(cfg.Program); err != nil {
			return fmt.Errorf("vm: program: %w (build it with BuildGo)", err)
		}
		if err := r.AddHostFile(GuestProgram, cfg.Program); err != nil {
			return err
		}
	}
	for g, h := range cfg.Files {
		if err := r.AddHostFile(g, h); err != nil {
			return err
		}
	}
	sets, err := moduleSets(cfg)
	if err != nil {
		return err
	}
	for _, set := range sets {
		for i, m := range set.mods {
			if err := r.AddFile(set.paths[i], m.obj, 0o644); err != nil {
				return err
			}
		}
	}
	if err := r.AddFile("init", []byte(initScript(cfg, sets)), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	if _, err := r.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkStatic verifies that path is an x86-64 ELF executable without a
// program interpreter: the guest has no dynamic loader.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%s is built for %s, not x86-64", path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

func initScript(cfg Config, sets []moduleSet) string {
	var b strings.Builder
	b.WriteString(`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
fail() { echo "` + initErrorTag + `$*"; }
mount -t proc proc /proc || fail mount proc
mount -t sysfs sysfs /sys || fail mount sysfs
mount -t devtmpfs devtmpfs /dev || fail mount devtmpfs
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t securityfs securityfs /sys/kernel/security || fail mount securityfs
mount -t bpf bpffs /sys/fs/bpf || fail mount bpffs
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
`)
	b.WriteString(loadScript(sets))
	if cfg.Network {
		b.WriteString(`ip link set lo up
ip link set eth0 up || fail eth0
ip addr add 10.0.2.15/24 dev eth0
ip route add default via ` + HostAddr + `
`)
	}
	if cfg.DiskMB > 0 {
		b.WriteString(`mkdir -p ` + DataDir + `
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 /dev/vda ` + DataDir + ` || fail mount ` + DataDir + `
`)
	}
	b.WriteString("echo " + bootedMarker + "\n")
	if cfg.Program != "" {
		b.WriteString(GuestProgram)
		for _, a := range cfg.Args {
			b.WriteString(" " + shellQuote(a))
		}
		b.WriteString("\n")
	} else {
		b.WriteString("(\n" + cfg.Script + "\n)\n")
	}
	b.WriteString(`echo "` + exitMarker + `$?"
sync
`)
	if cfg.DiskMB > 0 {
		b.WriteString("umount " + DataDir + " 2>/dev/null\n")
	}
	b.WriteString("poweroff -f\n")
	return b.String()
}

func runQEMU(ctx context.Context, cfg Config, initrd, disk string) (*Result, error) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("vm: qemu-system-x86_64 not found (Debian package qemu-system-x86; 'make deps' installs it): %w", err)
	}
	lsm := cfg.LSM
	if lsm == "" {
		lsm = DefaultLSM
	}
	cmdline := append([]string{"console=ttyS0", "panic=-1", "oops=panic", "loglevel=4", "lsm=" + lsm}, cfg.Cmdline...)
	mem := cfg.MemoryMB
	if mem == 0 {
		mem = 512
	}
	args := []string{
		"-accel", "tcg", "-nodefaults", "-no-reboot", "-display", "none",
		"-m", strconv.Itoa(mem), "-smp", "1", "-cpu", "max",
		"-serial", "stdio", "-monitor", "none",
		"-kernel", cfg.Kernel.Vmlinuz, "-initrd", initrd,
		"-append", strings.Join(cmdline, " "),
	}
	if cfg.Network {
		args = append(args, "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0")
	}
	if disk != "" {
		args = append(args, "-drive", "file="+disk+",format=raw,if=none,id=data", "-device", "virtio-blk-pci,drive=data")
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.Stdin = nil
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	res := &Result{ExitCode: -1}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vm: start qemu: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res.parseConsole(stdout, cfg.Console)
	}()
	wg.Wait()
	waitErr := cmd.Wait()
	res.Duration = time.Since(start)

	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("vm: %s: timed out after %s; last console lines:\n%s", cfg.Kernel.Release, time.Since(start).Round(time.Second), res.Tail(30))
	case res.panicked():
		return res, fmt.Errorf("vm: %s: kernel panic; last console lines:\n%s", cfg.Kernel.Release, res.Tail(40))
	case waitErr != nil:
		return res, fmt.Errorf("vm: qemu: %w: %s; last console lines:\n%s", waitErr, bytes.TrimSpace(stderr.Bytes()), res.Tail(30))
	case res.ExitCode < 0:
		return res, fmt.Errorf("vm: %s: guest powered off without reporting an exit status; last console lines:\n%s", cfg.Kernel.Release, res.Tail(30))
	}
	for _, l := range res.Console {
		if i := strings.Index(l, initErrorTag); i >= 0 {
			return res, fmt.Errorf("vm: %s: /init: %s", cfg.Kernel.Release, l[i+len(initErrorTag):])
		}
	}
	return res, nil
}

func (r *Result) panicked() bool {
	for _, l := range r.Console {
		if strings.Contains(l, "Kernel panic - not syncing") {
			return true
		}
	}
	return false
}

func (r *Result) parseConsole(rd io.Reader, copyTo io.Writer) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if copyTo != nil {
			fmt.Fprintln(copyTo, line)
		}
		r.Console = append(r.Console, line)
		switch {
		case strings.Contains(line, guest.Marker):
			rest := line[strings.Index(line, guest.Marker)+len(guest.Marker):]
			key, val, _ := strings.Cut(rest, " ")
			if json.Valid([]byte(val)) {
				r.Reports = append(r.Reports, Report{Key: key, Value: json.RawMessage(val)})
			}
		case strings.HasPrefix(line, exitMarker):
			if n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, exitMarker))); err == nil {
				r.ExitCode = n
			}
		case strings.Contains(line, bootedMarker):
			r.Boots++
		}
	}
}

// AcquireSlot waits for one of $KROLL_VM_PARALLEL VM slots, shared by all
// processes through lock files in the cache directory.
func AcquireSlot(ctx context.Context) (release func(), err error) {
	n := runtime.NumCPU()
	if v := os.Getenv("KROLL_VM_PARALLEL"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return nil, fmt.Errorf("vm: KROLL_VM_PARALLEL=%q: want a positive integer", v)
		}
	}
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "slots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	for {
		for i := 0; i < n; i++ {
			unlock, ok, err := tryLock(filepath.Join(dir, strconv.Itoa(i)))
			if err != nil {
				return nil, err
			}
			if ok {
				return unlock, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vm: waiting for a VM slot: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
