package bpf_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/test/vm"
)

var kernelLines = []struct {
	name    string
	pattern *regexp.Regexp
}{
	{"6.1", vm.Line61},
	{"6.12", vm.Line612},
}

// Modules the guest needs: AF_ALG with the Copy Fail algorithm's
// templates (cbc, aes, hmac and sha256 are built into Debian's kernels),
// and ext4 (driving an ext2 image) on a loop device for a filesystem with a
// real device number.
// algif_skcipher is deliberately absent: the module-request test makes the
// kernel ask for it.
var guestModules = []string{"af_alg", "algif_aead", "authenc", "authencesn", "loop", "ext4", "crc32c_generic"}

const copyFail = "authencesn(hmac(sha256),cbc(aes))"

// step and event mirror what test/vm/guests/lsmcheck reports.
type step struct {
	Result   string
	Events   []event
	Modprobe []string
	Counters bpf.Counters
}

type event struct {
	Kind, Op string
	Verdict  int32
	UID      uint32
	PIDMatch bool
	Exe      string
	Comm     string
	Name     string
	Arg      uint64
}

// comms are the comm of each executable label (its file name).
var comms = map[string]string{"main": "test", "allowed": "allowed", "other": "other", "ext": "helper"}

const eperm = -1

// TestLSMPrograms boots Debian 6.1 and 6.12 and runs lsmcheck, which
// loads every kind of program with package bpf and exercises it with
// unprivileged helper processes; see each case below for what it proves.
func TestLSMPrograms(t *testing.T) {
	prog := vm.TestProgram(t, "github.com/kroll-dev/kroll/test/vm/guests/lsmcheck")
	for _, line := range kernelLines {
		t.Run(line.name, func(t *testing.T) {
			t.Parallel()
			k := vm.TestKernel(t, line.pattern)
			res, err := vm.Run(t.Context(), vm.Config{
				Kernel: k, Program: prog, Modules: guestModules,
				MemoryMB: 1024, Timeout: 6 * time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 0 {
				t.Fatalf("%s: guest exit %d; console:\n%s", k.Release, res.ExitCode, res.Tail(40))
			}
			t.Logf("%s: ran in %s", k.Release, res.Duration.Round(100*time.Millisecond))
			checkGuest(t, k.Release, res)
		})
	}
}

// TestProbeWithoutBPFLSM proves bpf.Probe's reason for existing: with bpf
// missing from lsm=, the kernel loads and attaches an LSM program but
// never runs it, and Probe says so instead of succeeding.
func TestProbeWithoutBPFLSM(t *testing.T) {
	prog := vm.TestProgram(t, "github.com/kroll-dev/kroll/test/vm/guests/lsmcheck")
	for _, line := range kernelLines {
		t.Run(line.name, func(t *testing.T) {
			t.Parallel()
			k := vm.TestKernel(t, line.pattern)
			res, err := vm.Run(t.Context(), vm.Config{
				Kernel: k, Program: prog, Args: []string{"-probe-only"},
				LSM: "lockdown,capability,landlock,yama",
			})
			if err != nil {
				t.Fatal(err)
			}
			var lsm, probe string
			decode(t, res, "lsm", &lsm)
			decode(t, res, "probe", &probe)
			if slices.Contains(strings.Split(lsm, ","), "bpf") {
				t.Fatalf("active LSMs %q contain bpf", lsm)
			}
			if !strings.Contains(probe, bpf.ErrUnavailable.Error()) || !strings.Contains(probe, "never ran") {
				t.Errorf("%s without bpf LSM: Probe() = %q, want the program-never-ran error", k.Release, probe)
			}
			t.Logf("%s, lsm=%s: Probe() = %s", k.Release, lsm, probe)
		})
	}
}

func decode(t *testing.T, res *vm.Result, key string, v any) {
	t.Helper()
	if err := res.Decode(key, v); err != nil {
		t.Fatal(err)
	}
}

func checkGuest(t *testing.T, release string, res *vm.Result) {
	var lsm, probe string
	decode(t, res, "lsm", &lsm)
	decode(t, res, "probe", &probe)
	if !slices.Contains(strings.Split(lsm, ","), "bpf") {
		t.Fatalf("bpf not among active LSMs %q", lsm)
	}
	if probe != "ok" {
		t.Errorf("Probe() = %q, want ok", probe)
	}

	// bpf.ExeKey against the kernel's own view: every event below names
	// its executable by looking the kernel's (s_dev, i_ino) up among
	// these keys. "ext" lives on ext2 on /dev/loop0 (major 7), where the
	// kernel's dev_t (7<<20) differs from stat's st_dev (7<<8).
	var keys map[string]bpf.Key
	decode(t, res, "keys", &keys)
	var extStat struct {
		StDev        uint64 `json:"st_dev"`
		Major, Minor uint64
	}
	decode(t, res, "ext_stat_dev", &extStat)
	if want := bpf.KernelDev(7, 0); keys["ext"].Dev != want || extStat.Major != 7 || extStat.StDev == want {
		t.Errorf("ext key %v (stat %+v), want dev %#x", keys["ext"], extStat, want)
	}
	if keys["other"] == keys["allowed"] || keys["other"] == keys["main"] {
		t.Errorf("helper keys not distinct: %v", keys)
	}

	t.Run("module-request", func(t *testing.T) { checkModuleRequest(t, res) })
	t.Run("socket-family", func(t *testing.T) { checkSocketFamily(t, res) })
	t.Run("userns-create", func(t *testing.T) { checkUsernsCreate(t, res) })
	t.Run("file-open", func(t *testing.T) { checkFileOpen(t, res) })

	var load map[string]any
	decode(t, res, "load_attach_ms", &load)
	var bench map[string]float64
	decode(t, res, "bench", &bench)
	t.Logf("%s: socket-family load+configure+attach: %.1f ms (load %.1f + attach %.1f) first in the process (parses kernel BTF), median of 5 after: %.1f ms (load %.1f + attach %.1f)",
		release, load["first"], load["first_load"], load["first_attach"], load["warm_median"], load["warm_load_median"], load["warm_attach_median"])
	t.Logf("%s: socket(AF_INET)+bind+close, %.0f iterations per state in batches of 50, p10 (median): "+
		"no program %.1f µs (%.1f); enforcing AF_ALG on create+bind %.1f µs (%.1f), ratio %.3f (%.3f); on bind only %.1f µs (%.1f), ratio %.3f (%.3f)",
		release, bench["iterations"], bench["none_p10_ns"]/1000, bench["none_median_ns"]/1000,
		bench["create_bind_p10_ns"]/1000, bench["create_bind_median_ns"]/1000, bench["create_bind_ratio_p10"], bench["create_bind_ratio_median"],
		bench["bind_p10_ns"]/1000, bench["bind_median_ns"]/1000, bench["bind_ratio_p10"], bench["bind_ratio_median"])
	t.Logf("%s: the programs' own run time (bpf_stats_enabled, not matching): socket_create %.0f ns, socket_bind %.0f ns",
		release, bench["prog_ns_socket_create"], bench["prog_ns_socket_bind"])
}

// want is the expected outcome of one guest step.
type want struct {
	key      string
	result   string
	events   []event
	modprobe []string // checked for module-request steps only
	// modprobeSubset: the kernel may request more than modprobe.
	modprobeSubset bool
	counters       *bpf.Counters
}

func ev(op bpf.Op, verdict int32, uid uint32, exe, name string, arg uint64) event {
	return event{Op: op.String(), Verdict: verdict, UID: uid, PIDMatch: true, Exe: exe, Comm: comms[exe], Name: name, Arg: arg}
}

func checkSteps(t *testing.T, res *vm.Result, kind bpf.Kind, steps []want) {
	t.Helper()
	for _, w := range steps {
		var got step
		decode(t, res, kind.String()+"/"+w.key, &got)
		if got.Result != w.result {
			t.Errorf("%s: result %q, want %q", w.key, got.Result, w.result)
		}
		for i := range w.events {
			w.events[i].Kind = kind.String()
		}
		if !slices.Equal(got.Events, w.events) {
			t.Errorf("%s: events\n got %s\nwant %s", w.key, fmtEvents(got.Events), fmtEvents(w.events))
		}
		if kind == bpf.KindModuleRequest && !w.modprobeSubset && !slices.Equal(got.Modprobe, w.modprobe) {
			t.Errorf("%s: modprobe ran for %q, want %q", w.key, got.Modprobe, w.modprobe)
		}
		if kind == bpf.KindModuleRequest && w.modprobeSubset && !isSubset(w.modprobe, got.Modprobe) {
			t.Errorf("%s: modprobe ran for %q, want %q", w.key, got.Modprobe, w.modprobe)
		}
		if w.counters != nil && got.Counters != *w.counters {
			t.Errorf("%s: counters %+v, want %+v", w.key, got.Counters, *w.counters)
		}
	}
}

func isSubset(sub, set []string) bool {
	for _, s := range sub {
		if !slices.Contains(set, s) {
			return false
		}
	}
	return true
}

func fmtEvents(evs []event) string {
	if len(evs) == 0 {
		return "none"
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %+v", e)
	}
	return b.String()
}

// checkModuleRequest: a fake /sbin/modprobe records the kernel's requests.
// Binding AF_ALG to type "skcipher" (algif_skcipher not loaded) requests
// "algif-skcipher"; type T requests "algif-T". The deny list is
// algif-skcipher, algif-kroll, crypto-authencesn; the allowed exe is
// allow-listed.
func checkModuleRequest(t *testing.T, res *vm.Result) {
	const op = bpf.OpModuleRequest
	checkSteps(t, res, bpf.KindModuleRequest, []want{
		// Without a program the request reaches modprobe.
		{key: "none", result: "bind: ENOENT", modprobe: []string{"algif-skcipher"}},
		// Enforce: denied before modprobe runs; event with the name.
		{key: "enforce", result: "bind: ENOENT", events: []event{ev(op, eperm, 65534, "other", "algif-skcipher", 0)}},
		// The '(' rule: "algif-kroll(x)" matches the entry "algif-kroll" (arg 1)...
		{key: "enforce-paren", result: "bind: ENOENT", events: []event{ev(op, eperm, 65534, "other", "algif-kroll(x)", 1)}},
		// ...but there is no plain prefix match.
		{key: "enforce-nomatch", result: "bind: ENOENT", modprobe: []string{"algif-krollx"}},
		// An allow-listed executable's request goes through, uncounted as a denial.
		{key: "enforce-allowed", result: "bind: ENOENT", modprobe: []string{"algif-skcipher"}},
		// Audit: goes through, with an event.
		{key: "audit", result: "bind: ENOENT", modprobe: []string{"algif-skcipher"},
			events: []event{ev(op, 0, 65534, "other", "algif-skcipher", 0)}},
		// What the Copy Fail bind itself requests (first bind in the boot):
		// "crypto-<algorithm>" and "crypto-<algorithm>-all", both matched
		// by the entry "crypto-authencesn".
		{key: "audit-copyfail", result: "ok", modprobeSubset: true,
			modprobe: []string{"crypto-" + copyFail, "crypto-" + copyFail + "-all"},
			events: []event{
				ev(op, 0, 65534, "other", "crypto-"+copyFail, 1),
				ev(op, 0, 65534, "other", "crypto-"+copyFail+"-all", 1),
			}},
		// Detached: back to normal, counters final.
		{key: "detached", result: "bind: ENOENT", modprobe: []string{"algif-skcipher"},
			counters: &bpf.Counters{Allowed: 1, Audited: 3, Denied: 2}},
	})
}

// checkSocketFamily is Copy Fail (CVE-2026-31431) and its mitigation: an
// unprivileged process (uid 65534) creates an AF_ALG socket and binds it
// to authencesn(hmac(sha256),cbc(aes)). Policy: family AF_ALG, operations
// create+bind, the allowed exe allow-listed.
func checkSocketFamily(t *testing.T, res *vm.Result) {
	const cr, bd = bpf.OpSocketCreate, bpf.OpSocketBind
	checkSteps(t, res, bpf.KindSocketFamily, []want{
		// No program: the exploit's first steps work.
		{key: "none", result: "ok"},
		{key: "none-inet", result: "ok"},
		// Audit: still works; events name the executable (by its kernel
		// inode key), the uid and the algorithm.
		{key: "audit", result: "ok", events: []event{ev(cr, 0, 65534, "other", "", 38), ev(bd, 0, 65534, "other", copyFail, 38)}},
		// The same from ext2 on a block device: ExeKey's dev_t matches the kernel's.
		{key: "audit-ext", result: "ok", events: []event{ev(cr, 0, 65534, "ext", "", 38), ev(bd, 0, 65534, "ext", copyFail, 38)}},
		// Other families are untouched.
		{key: "audit-inet", result: "ok"},
		// Enforce (a map update, same program): EPERM at socket().
		{key: "enforce", result: "socket: EPERM", events: []event{ev(cr, eperm, 65534, "other", "", 38)}},
		// Root is not exempt; only the allow-list is.
		{key: "enforce-root", result: "socket: EPERM", events: []event{ev(cr, eperm, 0, "main", "", 38)}},
		{key: "enforce-allowed", result: "ok"},
		{key: "enforce-ext", result: "socket: EPERM", events: []event{ev(cr, eperm, 65534, "ext", "", 38)}},
		// Allow-listing by ExeKey on the ext2 file works.
		{key: "enforce-ext-allowed", result: "ok"},
		{key: "enforce-inet", result: "ok"},
		// The production mitigation: bind only. socket() works, bind() is denied.
		{key: "enforce-bind-only", result: "bind: EPERM", events: []event{ev(bd, eperm, 65534, "other", copyFail, 38)}},
		// Kernel sockets are never denied: with AF_INET creation enforced,
		// a new network namespace (the kernel creates AF_INET sockets for
		// it) still works, while a process' AF_INET socket is denied.
		{key: "inet-enforce-netns", result: "ok"},
		{key: "inet-enforce", result: "socket: EPERM", events: []event{ev(cr, eperm, 65534, "other", "", 2)}},
		// Detached: works again.
		{key: "detached", result: "ok", counters: &bpf.Counters{Allowed: 4, Audited: 4, Denied: 5}},
	})
}

// checkUsernsCreate: unprivileged user namespaces (enabled in the guest)
// are denied to tasks without CAP_SYS_ADMIN in the initial namespace.
func checkUsernsCreate(t *testing.T, res *vm.Result) {
	const op = bpf.OpUsernsCreate
	checkSteps(t, res, bpf.KindUsernsCreate, []want{
		{key: "none", result: "ok"},
		{key: "enforce", result: "EPERM", events: []event{ev(op, eperm, 65534, "other", "", 0)}},
		// Root in the initial namespace keeps the right.
		{key: "enforce-root", result: "ok"},
		{key: "enforce-allowed", result: "ok"},
		{key: "audit", result: "ok", events: []event{ev(op, 0, 65534, "other", "", 0)}},
		{key: "detached", result: "ok", counters: &bpf.Counters{Allowed: 1, Audited: 1, Denied: 2}},
	})
	// Root of a child user namespace has all capabilities there, but not
	// CAP_SYS_ADMIN in the initial one: its nested namespace is denied.
	var nested step
	decode(t, res, "userns-create/enforce-nested", &nested)
	if nested.Result != "EPERM" || len(nested.Events) != 1 {
		t.Fatalf("enforce-nested: %+v, want EPERM and one event", nested)
	}
	if e := nested.Events[0]; e.Verdict != eperm || e.UID != 0 || e.Exe != "other" || e.Arg&(1<<21) == 0 {
		t.Errorf("enforce-nested: event %+v, want a denial of uid 0 with CAP_SYS_ADMIN in its (child) namespace", e)
	}
}

// checkFileOpen: /tmp/secret (tmpfs) and /mnt/ext/secret (ext2 on loop0)
// are denied by (dev, ino).
func checkFileOpen(t *testing.T, res *vm.Result) {
	var deny []bpf.Key
	decode(t, res, "file-open/keys", &deny)
	if len(deny) != 2 || deny[1].Dev != bpf.KernelDev(7, 0) {
		t.Fatalf("file-open keys %v", deny)
	}
	tmp, ext := deny[0].Ino, deny[1].Ino
	const op = bpf.OpFileOpen
	checkSteps(t, res, bpf.KindFileOpen, []want{
		{key: "none", result: "ok"},
		{key: "enforce", result: "EPERM", events: []event{ev(op, eperm, 65534, "other", "secret", tmp)}},
		// A hard link is the same inode: denied too.
		{key: "enforce-link", result: "EPERM", events: []event{ev(op, eperm, 65534, "other", "secret-link", tmp)}},
		{key: "enforce-public", result: "ok"},
		{key: "enforce-ext", result: "EPERM", events: []event{ev(op, eperm, 65534, "other", "secret", ext)}},
		{key: "enforce-root", result: "EPERM", events: []event{ev(op, eperm, 0, "main", "secret", tmp)}},
		{key: "enforce-allowed", result: "ok"},
		{key: "audit", result: "ok", events: []event{ev(op, 0, 65534, "other", "secret", tmp)}},
		{key: "detached", result: "ok", counters: &bpf.Counters{Allowed: 1, Audited: 1, Denied: 4}},
	})
}
