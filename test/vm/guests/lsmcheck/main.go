// Command lsmcheck runs inside a VM (see bpf/lsm_test.go) as root: it
// loads each kind of kroll's bpf-lsm programs with package bpf, configures
// and attaches them, and exercises them through copies of itself that run
// as an unprivileged user ("helpers"), reporting every result and the
// events and counters the programs produced with guest.Report. The host
// test asserts.
//
// Executables (their bpf.Key is reported under "keys"):
//
//	main     /kroll/test, this program as root
//	allowed  /tmp/allowed, a copy on tmpfs that policies allow-list
//	other    /tmp/other, a copy on tmpfs that they do not
//	ext      /mnt/ext/helper, a copy on an ext2 filesystem (ext4 driver) on a loop
//	         device (a real major number, to prove bpf.ExeKey's dev_t)
//
// With -probe-only it only reports bpf.Probe's result.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/test/vm/guest"
)

// Nobody is the unprivileged user the helpers run as.
const nobody = 65534

// CopyFail is the algorithm of CVE-2026-31431's AF_ALG bind.
const copyFail = "authencesn(hmac(sha256),cbc(aes))"

var (
	exes = map[string]string{} // label → path
	keys = map[string]bpf.Key{}
)

func main() {
	helper := flag.String("helper", "", "run one action as a helper and print its result")
	probeOnly := flag.Bool("probe-only", false, "only report bpf.Probe")
	benchOnly := flag.Bool("bench-only", false, "only measure load time and overhead (BenchmarkLSMOverhead)")
	flag.Parse()
	if *helper != "" {
		runAction(*helper, flag.Args())
		return
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		guest.Fail("memlock: %v", err)
	}
	guest.Report("lsm", readTrim("/sys/kernel/security/lsm"))
	if *probeOnly {
		guest.Report("probe", errString(bpf.Probe()))
		return
	}
	setup()
	loadTiming()
	if *benchOnly {
		p := load(bpf.KindSocketFamily, bpf.Config{Mode: bpf.Enforce, Ops: bpf.OpSocketCreate | bpf.OpSocketBind, Family: unix.AF_ALG}, "allowed")
		benchmark(p)
		p.close()
		return
	}
	guest.Report("probe", errString(bpf.Probe()))
	moduleRequest()
	socketFamily()
	usernsCreate()
	fileOpen()
}

// setup copies this program to the helper paths and reports their keys.
func setup() {
	self, err := os.Executable()
	check(err, "executable")
	exes["main"] = self
	check(os.MkdirAll("/mnt/ext", 0o755), "mkdir")
	sh("truncate -s 48M /tmp/ext.img && mke2fs -q -F /tmp/ext.img >/dev/null && mount -t ext4 -o loop /tmp/ext.img /mnt/ext")
	for label, path := range map[string]string{"allowed": "/tmp/allowed", "other": "/tmp/other", "ext": "/mnt/ext/helper"} {
		copyFile(self, path)
		exes[label] = path
	}
	for label, path := range exes {
		k, err := bpf.ExeKey(path)
		check(err, "ExeKey")
		keys[label] = k
	}
	var st unix.Stat_t
	check(unix.Stat("/mnt/ext/helper", &st), "stat")
	guest.Report("keys", keys)
	guest.Report("ext_stat_dev", map[string]uint64{"st_dev": st.Dev, "major": uint64(unix.Major(st.Dev)), "minor": uint64(unix.Minor(st.Dev))})
	// Debian kernels gate unprivileged user namespaces with this sysctl.
	if v, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil {
		guest.Report("unprivileged_userns_clone", strings.TrimSpace(string(v)))
		check(os.WriteFile("/proc/sys/kernel/unprivileged_userns_clone", []byte("1"), 0o644), "sysctl")
	}
}

// loadTiming measures Load + configure + Attach of the socket-family
// program (both hooks): first in this process (includes parsing the
// kernel's BTF, which package bpf then keeps) and then five more times.
func loadTiming() {
	var total, load, attach []float64
	since := func(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
	for i := 0; i < 6; i++ {
		start := time.Now()
		o, err := bpf.Load(bpf.KindSocketFamily, nil)
		check(err, "load socket-family")
		check(o.SetAllowed([]bpf.Key{keys["allowed"]}), "allow")
		check(o.SetConfig(bpf.Config{Mode: bpf.Enforce, Ops: bpf.OpSocketCreate | bpf.OpSocketBind, Family: unix.AF_ALG}), "config")
		load = append(load, since(start))
		t := time.Now()
		links, err := o.Attach(bpf.KindSocketFamily.Ops())
		check(err, "attach")
		attach = append(attach, since(t))
		total = append(total, since(start))
		detach(links)
		o.Close()
		// Detaching finishes asynchronously (RCU grace periods); on 6.1
		// an attach right after a detach of the same hook waits for it.
		// Measure attaching as an agent applying a new policy does.
		time.Sleep(time.Second)
	}
	guest.Report("load_attach_ms", map[string]any{
		"first": total[0], "first_load": load[0], "first_attach": attach[0],
		"warm_median": median(total[1:]), "warm_load_median": median(load[1:]), "warm_attach_median": median(attach[1:]),
		"all": total,
	})
}

// Step is what one exercised operation produced.
type Step struct {
	Result   string
	Events   []Event `json:",omitempty"`
	Modprobe []string
	Counters bpf.Counters
}

// Event is a bpf.Event with the executable named by label.
type Event struct {
	Kind, Op string
	Verdict  int32
	UID      uint32
	PIDMatch bool // the event's pid is the helper's (or this process')
	Exe      string
	Comm     string
	Name     string
	Arg      uint64
}

// policy is one loaded kind under test.
type policy struct {
	o     *bpf.Objects
	links map[bpf.Op]link.Link
	rd    *ringbuf.Reader
}

func load(kind bpf.Kind, cfg bpf.Config, allowed ...string) *policy {
	o, err := bpf.Load(kind, nil)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			guest.Fail("load %s: %+v", kind, ve)
		}
		guest.Fail("load %s: %v", kind, err)
	}
	var ks []bpf.Key
	for _, a := range allowed {
		ks = append(ks, keys[a])
	}
	check(o.SetAllowed(ks), "allow")
	check(o.SetConfig(cfg), "config")
	rd, err := ringbuf.NewReader(o.Events)
	check(err, "ringbuf")
	return &policy{o: o, rd: rd}
}

func (p *policy) attach() { p.attachOps(p.o.Kind.Ops()) }

func (p *policy) attachOps(ops bpf.Op) {
	links, err := p.o.Attach(ops)
	check(err, "attach")
	p.links = links
}

func (p *policy) detach() {
	detach(p.links)
	p.links = nil
}

func detach(links map[bpf.Op]link.Link) {
	for _, l := range links {
		check(l.Close(), "detach")
	}
}

// step runs a helper (or, with exe "main", fn in this process) and reports
// the result with the events and counters it produced.
func (p *policy) step(key, exe string, args ...string) Step {
	var s Step
	var pid int
	logBefore := modprobeLog()
	if exe == "main" {
		s.Result = runAction(args[0], args[1:])
		pid = os.Getpid()
	} else {
		s.Result, pid = runHelper(exe, nobody, false, args...)
	}
	s.Modprobe = modprobeLog()[len(logBefore):]
	if p != nil {
		s.Events = p.drain(pid)
		c, err := p.o.ReadCounters()
		check(err, "counters")
		s.Counters = c
	}
	guest.Report(key, s)
	return s
}

func (p *policy) drain(pid int) []Event {
	var evs []Event
	for {
		p.rd.SetDeadline(time.Now())
		rec, err := p.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return evs
		}
		check(err, "ringbuf read")
		e, err := bpf.ParseEvent(rec.RawSample)
		check(err, "parse event")
		exe := e.Exe.String()
		for label, k := range keys {
			if k == e.Exe {
				exe = label
			}
		}
		evs = append(evs, Event{
			Kind: e.Kind.String(), Op: e.Op.String(), Verdict: e.Verdict, UID: e.UID,
			PIDMatch: int(e.PID) == pid, Exe: exe, Comm: e.CommString(), Name: e.NameString(), Arg: e.Arg,
		})
	}
}

func (p *policy) close() {
	p.detach()
	p.rd.Close()
	p.o.Close()
}

// moduleRequest: a fake /sbin/modprobe logs what the kernel asks for.
// algif_skcipher is not loaded, so binding an AF_ALG socket to type
// "skcipher" makes the kernel request "algif-skcipher" (and type T
// "algif-T").
func moduleRequest() {
	check(os.WriteFile("/sbin/modprobe", []byte("#!/bin/sh\necho \"$*\" >> /tmp/modprobe.log\nexit 1\n"), 0o755), "modprobe")
	var nop *policy
	nop.step("module-request/none", "other", "alg", "skcipher", "cbc(aes)")

	p := load(bpf.KindModuleRequest, bpf.Config{Mode: bpf.Enforce, Ops: bpf.OpModuleRequest}, "allowed")
	check(p.o.SetDeniedModules([]string{"algif-skcipher", "algif-kroll", "crypto-authencesn"}), "deny")
	p.attach()
	p.step("module-request/enforce", "other", "alg", "skcipher", "cbc(aes)")
	p.step("module-request/enforce-paren", "other", "alg", "kroll(x)", "x")
	p.step("module-request/enforce-nomatch", "other", "alg", "krollx", "x")
	p.step("module-request/enforce-allowed", "allowed", "alg", "skcipher", "cbc(aes)")
	check(p.o.SetMode(bpf.Audit), "mode")
	p.step("module-request/audit", "other", "alg", "skcipher", "cbc(aes)")
	// The first bind to the Copy Fail algorithm in this boot: the crypto
	// API requests "crypto-<algorithm>" before instantiating the template.
	p.step("module-request/audit-copyfail", "other", "alg", "aead", copyFail)
	p.detach()
	p.step("module-request/detached", "other", "alg", "skcipher", "cbc(aes)")
	p.close()
}

// socketFamily: Copy Fail (CVE-2026-31431) and its mitigation.
func socketFamily() {
	var nop *policy
	nop.step("socket-family/none", "other", "alg", "aead", copyFail)
	nop.step("socket-family/none-inet", "other", "inet")

	p := load(bpf.KindSocketFamily, bpf.Config{Mode: bpf.Audit, Ops: bpf.OpSocketCreate | bpf.OpSocketBind, Family: unix.AF_ALG}, "allowed")
	p.attach()
	p.step("socket-family/audit", "other", "alg", "aead", copyFail)
	p.step("socket-family/audit-ext", "ext", "alg", "aead", copyFail)
	p.step("socket-family/audit-inet", "other", "inet")
	check(p.o.SetMode(bpf.Enforce), "mode")
	p.step("socket-family/enforce", "other", "alg", "aead", copyFail)
	p.step("socket-family/enforce-root", "main", "alg", "aead", copyFail)
	p.step("socket-family/enforce-allowed", "allowed", "alg", "aead", copyFail)
	p.step("socket-family/enforce-ext", "ext", "alg", "aead", copyFail)
	check(p.o.SetAllowed([]bpf.Key{keys["allowed"], keys["ext"]}), "allow")
	p.step("socket-family/enforce-ext-allowed", "ext", "alg", "aead", copyFail)
	p.step("socket-family/enforce-inet", "other", "inet")
	check(p.o.SetConfig(bpf.Config{Mode: bpf.Enforce, Ops: bpf.OpSocketBind, Family: unix.AF_ALG}), "config")
	p.step("socket-family/enforce-bind-only", "other", "alg", "aead", copyFail)
	// Sockets the kernel creates for itself are never denied: a new
	// network namespace gets kernel AF_INET sockets (igmp's, for one)
	// while AF_INET is denied to processes.
	check(p.o.SetConfig(bpf.Config{Mode: bpf.Enforce, Ops: bpf.OpSocketCreate, Family: unix.AF_INET}), "config")
	p.step("socket-family/inet-enforce-netns", "main", "netns")
	p.step("socket-family/inet-enforce", "other", "inet")

	p.detach()
	benchmark(p)
	p.step("socket-family/detached", "other", "alg", "aead", copyFail)
	p.close()
}

// benchmark times socket(AF_INET)+bind+close with no program attached,
// with the socket-family program enforcing AF_ALG on create and bind (both
// hooks attached), and on bind only (only socket_bind attached). Under
// TCG, with other VMs and processes on the host, timings vary by tens of
// percent from run to run, so it rotates through the states over many
// rounds, times batches of 50 iterations, and compares low percentiles
// (the batches least disturbed from outside) as well as medians.
func benchmark(p *policy) {
	const rounds, batches, batch = 16, 25, 50 // 20000 iterations per state
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	states := []struct {
		name string
		ops  bpf.Op
	}{{"none", 0}, {"create_bind", bpf.OpSocketCreate | bpf.OpSocketBind}, {"bind", bpf.OpSocketBind}}
	samples := make([][]float64, len(states))
	benchBatches(5, batch) // warm up
	for r := 0; r < rounds; r++ {
		for i := range states {
			i := (i + r) % len(states) // rotate the order
			if states[i].ops != 0 {
				check(p.o.SetConfig(bpf.Config{Mode: bpf.Enforce, Ops: states[i].ops, Family: unix.AF_ALG}), "config")
				p.attachOps(states[i].ops)
			}
			// Attaching and detaching rewrite kernel text (the hook's
			// call into the trampoline), after which TCG retranslates
			// code: let that settle before measuring.
			benchBatches(5, batch)
			samples[i] = append(samples[i], benchBatches(batches, batch)...)
			if states[i].ops != 0 {
				p.detach()
			}
		}
	}
	q := func(v []float64, f float64) float64 { return v[int(f*float64(len(v)-1))] }
	out := map[string]any{"iterations": rounds * batches * batch}
	for i, st := range states {
		v := samples[i]
		sort.Float64s(v)
		out[st.name+"_p10_ns"] = q(v, 0.1)
		out[st.name+"_median_ns"] = q(v, 0.5)
		if i > 0 {
			out[st.name+"_ratio_p10"] = q(v, 0.1) / q(samples[0], 0.1)
			out[st.name+"_ratio_median"] = q(v, 0.5) / q(samples[0], 0.5)
		}
	}
	// The programs' own share: with bpf_stats_enabled the kernel times
	// each run (this adds its own overhead, so it is measured apart).
	check(p.o.SetConfig(bpf.Config{Mode: bpf.Enforce, Ops: bpf.OpSocketCreate | bpf.OpSocketBind, Family: unix.AF_ALG}), "config")
	check(os.WriteFile("/proc/sys/kernel/bpf_stats_enabled", []byte("1"), 0o644), "bpf_stats_enabled")
	p.attach()
	benchBatches(batches, batch)
	for op, prog := range p.o.Programs {
		st, err := prog.Stats()
		check(err, "program stats")
		if st.RunCount > 0 {
			out["prog_ns_"+op.String()] = float64(st.Runtime.Nanoseconds()) / float64(st.RunCount)
		}
	}
	p.detach()
	check(os.WriteFile("/proc/sys/kernel/bpf_stats_enabled", []byte("0"), 0o644), "bpf_stats_enabled")
	guest.Report("bench", out)
	check(p.o.SetConfig(bpf.Config{Mode: bpf.Enforce, Ops: bpf.OpSocketCreate | bpf.OpSocketBind, Family: unix.AF_ALG}), "config")
}

// benchBatches returns the mean ns of socket(AF_INET)+bind+close in each
// of k batches of n iterations.
func benchBatches(k, n int) []float64 {
	var per []float64
	for b := 0; b < k; b++ {
		start := time.Now()
		for i := 0; i < n; i++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
			if err != nil {
				guest.Fail("bench socket: %v", err)
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
				guest.Fail("bench bind: %v", err)
			}
			unix.Close(fd)
		}
		per = append(per, float64(time.Since(start).Nanoseconds())/float64(n))
	}
	return per
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func usernsCreate() {
	var nop *policy
	nop.step("userns-create/none", "other", "userns")
	p := load(bpf.KindUsernsCreate, bpf.Config{Mode: bpf.Enforce, Ops: bpf.OpUsernsCreate}, "allowed")
	p.attach()
	p.step("userns-create/enforce", "other", "userns")
	p.step("userns-create/enforce-root", "main", "userns")
	p.step("userns-create/enforce-allowed", "allowed", "userns")
	// Root of a new user namespace has every capability there, but not
	// in the initial namespace: its nested unshare is denied.
	var s Step
	var pid int
	s.Result, pid = runHelper("other", 0, true, "userns")
	s.Events = p.drain(pid)
	s.Counters, _ = p.o.ReadCounters()
	guest.Report("userns-create/enforce-nested", s)
	check(p.o.SetMode(bpf.Audit), "mode")
	p.step("userns-create/audit", "other", "userns")
	p.detach()
	p.step("userns-create/detached", "other", "userns")
	p.close()
}

func fileOpen() {
	for _, f := range []string{"/tmp/secret", "/tmp/public", "/mnt/ext/secret"} {
		check(os.WriteFile(f, []byte("x"), 0o644), "write")
	}
	check(os.Link("/tmp/secret", "/tmp/secret-link"), "link")
	var deny []bpf.Key
	for _, f := range []string{"/tmp/secret", "/mnt/ext/secret"} {
		k, err := bpf.ExeKey(f)
		check(err, "ExeKey")
		deny = append(deny, k)
	}
	guest.Report("file-open/keys", deny)

	var nop *policy
	nop.step("file-open/none", "other", "open", "/tmp/secret")
	p := load(bpf.KindFileOpen, bpf.Config{Mode: bpf.Enforce, Ops: bpf.OpFileOpen}, "allowed")
	check(p.o.SetDeniedFiles(deny), "deny")
	p.attach()
	p.step("file-open/enforce", "other", "open", "/tmp/secret")
	p.step("file-open/enforce-link", "other", "open", "/tmp/secret-link")
	p.step("file-open/enforce-public", "other", "open", "/tmp/public")
	p.step("file-open/enforce-ext", "other", "open", "/mnt/ext/secret")
	p.step("file-open/enforce-root", "main", "open", "/tmp/secret")
	p.step("file-open/enforce-allowed", "allowed", "open", "/tmp/secret")
	check(p.o.SetMode(bpf.Audit), "mode")
	p.step("file-open/audit", "other", "open", "/tmp/secret")
	p.detach()
	p.step("file-open/detached", "other", "open", "/tmp/secret")
	p.close()
}

// helperOut is what a helper prints.
type helperOut struct {
	Result string
}

// runHelper runs the executable labelled exe with -helper as uid (and gid)
// and returns its result. With newUserns it runs in a new user namespace
// in which uid maps to itself.
func runHelper(exe string, uid int, newUserns bool, args ...string) (result string, pid int) {
	cmd := exec.Command(exes[exe], append([]string{"-helper", args[0]}, args[1:]...)...)
	cmd.Stderr = os.Stderr
	attr := &syscall.SysProcAttr{}
	if newUserns {
		attr.Cloneflags = unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
	} else {
		attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	cmd.SysProcAttr = attr
	out, err := cmd.Output()
	if cmd.Process != nil {
		pid = cmd.Process.Pid
	}
	if err != nil {
		return "helper: " + err.Error(), pid
	}
	var h helperOut
	if err := json.Unmarshal(out, &h); err != nil {
		return fmt.Sprintf("helper output %q: %v", out, err), pid
	}
	return h.Result, pid
}

// runAction performs one action; as a helper it prints the result as JSON.
func runAction(action string, args []string) string {
	var res helperOut
	switch action {
	case "alg":
		res.Result = algBind(args[0], args[1])
	case "inet":
		res.Result = inetBind()
	case "userns":
		res.Result = newUserns()
	case "netns":
		cmd := exec.Command("/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET}
		res.Result = errString(cmd.Run())
	case "open":
		f, err := os.Open(args[0])
		res.Result = errString(err)
		if err == nil {
			f.Close()
		}
	default:
		res.Result = "unknown action " + action
	}
	if flag.Lookup("helper").Value.String() != "" {
		b, _ := json.Marshal(res)
		os.Stdout.Write(b)
	}
	return res.Result
}

// algBind creates an AF_ALG socket and binds it to typ/name: the first
// two steps of Copy Fail. It returns "ok" or which step failed and how.
func algBind(typ, name string) string {
	fd, err := unix.Socket(unix.AF_ALG, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "socket: " + errString(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrALG{Type: typ, Name: name}); err != nil {
		return "bind: " + errString(err)
	}
	return "ok"
}

func inetBind() string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "socket: " + errString(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
		return "bind: " + errString(err)
	}
	return "ok"
}

// newUserns starts /bin/true in a new user namespace (clone with
// CLONE_NEWUSER: a Go process is multithreaded, so it cannot unshare one).
func newUserns() string {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
	return errString(cmd.Run())
}

// errString returns "ok" for nil, the errno name for an errno, else the
// error text.
func errString(err error) string {
	if err == nil {
		return "ok"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
	}
	return err.Error()
}

// modprobeLog returns the module names the fake modprobe was asked for.
func modprobeLog() []string {
	b, err := os.ReadFile("/tmp/modprobe.log")
	if err != nil {
		return nil
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[len(f)-1])
		}
	}
	return names
}

func sh(script string) {
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		guest.Fail("%s: %v: %s", script, err, out)
	}
}

func copyFile(from, to string) {
	src, err := os.Open(from)
	check(err, "copy")
	defer src.Close()
	check(os.MkdirAll(filepath.Dir(to), 0o755), "copy")
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	check(err, "copy")
	_, err = io.Copy(dst, src)
	check(err, "copy")
	check(dst.Close(), "copy")
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(string(b))
}

func check(err error, what string) {
	if err != nil {
		guest.Fail("%s: %v", what, err)
	}
}
