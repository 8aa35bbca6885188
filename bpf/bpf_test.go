package bpf_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/bpf"
)

// These tests need no privileges and no VM; lsm_test.go loads the
// programs in VMs.

func TestKernelDev(t *testing.T) {
	for _, c := range []struct {
		major, minor uint32
		want         uint64
	}{
		{0, 23, 23},
		{7, 0, 7 << 20},
		{8, 1, 8<<20 | 1},
		{259, 0x12345, 259<<20 | 0x12345},
	} {
		if got := bpf.KernelDev(c.major, c.minor); got != c.want {
			t.Errorf("KernelDev(%d, %d) = %#x, want %#x", c.major, c.minor, got, c.want)
		}
		// stat's st_dev (new_encode_dev) round-trips through unix.Major/Minor.
		st := unix.Mkdev(c.major, c.minor)
		if got := bpf.KernelDev(unix.Major(st), unix.Minor(st)); got != c.want {
			t.Errorf("from st_dev %#x: %#x, want %#x", st, got, c.want)
		}
	}
}

// TestExeKeyMatchesProcMaps compares ExeKey of this test binary with the
// kernel's own view: /proc/self/maps prints MAJOR:MINOR of i_sb->s_dev and
// i_ino of each mapped file.
func TestExeKeyMatchesProcMaps(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	key, err := bpf.ExeKey(exe)
	if err != nil {
		var fs unix.Statfs_t
		if unix.Statfs(exe, &fs) == nil && (fs.Type == unix.BTRFS_SUPER_MAGIC || fs.Type == unix.OVERLAYFS_SUPER_MAGIC) {
			if !strings.Contains(err.Error(), "unsupported filesystem") {
				t.Fatalf("ExeKey on btrfs/overlayfs: %v, want an unsupported filesystem error", err)
			}
			return
		}
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe {
			continue
		}
		var major, minor uint32
		var ino uint64
		if _, err := fmt.Sscanf(fields[3]+" "+fields[4], "%x:%x %d", &major, &minor, &ino); err != nil {
			t.Fatalf("parse %q: %v", sc.Text(), err)
		}
		if want := (bpf.Key{Dev: bpf.KernelDev(major, minor), Ino: ino}); key != want {
			t.Fatalf("ExeKey(%s) = %v, /proc/self/maps says %v", exe, key, want)
		}
		return
	}
	t.Fatalf("%s not in /proc/self/maps", exe)
}

func TestExeKeyMissing(t *testing.T) {
	if _, err := bpf.ExeKey("/nonexistent/kroll"); err == nil {
		t.Fatal("ExeKey of a missing file succeeded")
	}
}

// TestParseEvent builds a record byte by byte from struct kroll_event's
// C layout (kroll.h) and decodes it.
func TestParseEvent(t *testing.T) {
	raw := make([]byte, bpf.EventSize)
	le := binary.LittleEndian
	le.PutUint64(raw[0:], 123456789)
	le.PutUint32(raw[8:], 4242)
	le.PutUint32(raw[12:], 65534)
	le.PutUint32(raw[16:], uint32(bpf.KindSocketFamily))
	le.PutUint32(raw[20:], uint32(bpf.OpSocketBind))
	le.PutUint32(raw[24:], 0xffffffff) // -EPERM
	le.PutUint64(raw[32:], 7<<20)
	le.PutUint64(raw[40:], 12)
	le.PutUint64(raw[48:], 38)
	copy(raw[56:], "exploit")
	copy(raw[72:], "authencesn(hmac(sha256),cbc(aes))")
	e, err := bpf.ParseEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := bpf.Event{Timestamp: 123456789, PID: 4242, UID: 65534, Kind: bpf.KindSocketFamily, Op: bpf.OpSocketBind,
		Verdict: -1, Exe: bpf.Key{Dev: 7 << 20, Ino: 12}, Arg: 38}
	copy(want.Comm[:], "exploit")
	copy(want.Name[:], "authencesn(hmac(sha256),cbc(aes))")
	if e != want {
		t.Fatalf("ParseEvent = %+v, want %+v", e, want)
	}
	if !e.Denied() || e.CommString() != "exploit" || e.NameString() != "authencesn(hmac(sha256),cbc(aes))" {
		t.Errorf("accessors: %v %q %q", e.Denied(), e.CommString(), e.NameString())
	}
	if binary.Size(e) != bpf.EventSize {
		t.Errorf("binary.Size(Event) = %d, want %d", binary.Size(e), bpf.EventSize)
	}
	if _, err := bpf.ParseEvent(raw[:100]); err == nil {
		t.Error("ParseEvent of a short record succeeded")
	}
}

func TestModuleName(t *testing.T) {
	n := bpf.ModuleName("algif-aead")
	if string(n[:10]) != "algif-aead" || n[10] != 0 || n[63] != 0 {
		t.Errorf("ModuleName = %q", n)
	}
	long := bpf.ModuleName(strings.Repeat("x", 100))
	if long[62] != 'x' || long[63] != 0 {
		t.Errorf("long ModuleName not truncated with a NUL: %q", long)
	}
}

func TestStrings(t *testing.T) {
	for got, want := range map[string]string{
		bpf.KindSocketFamily.String():             "socket-family",
		bpf.KindFileOpen.String():                 "file-open",
		bpf.Enforce.String():                      "enforce",
		bpf.KindSocketFamily.Ops().String():       "socket_create|socket_bind",
		bpf.OpModuleRequest.String():              "kernel_module_request",
		(bpf.Key{Dev: 7 << 20, Ino: 12}).String(): "7:0:12",
		bpf.Op(0).String():                        "none",
		bpf.Kind(9).String():                      "kind(9)",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestSpecs checks the committed objects against the Go side: every kind
// has its programs and the shared maps with the sizes of the Go types.
func TestSpecs(t *testing.T) {
	for _, kind := range bpf.Kinds {
		spec, err := bpf.Spec(kind)
		if err != nil {
			t.Fatal(err)
		}
		maps := map[string][2]uint32{ // key size, value size
			"kroll_config":   {4, uint32(binary.Size(bpf.Config{}))},
			"kroll_allow":    {uint32(binary.Size(bpf.Key{})), 1},
			"kroll_counters": {4, uint32(binary.Size(bpf.Counters{}))},
		}
		switch kind {
		case bpf.KindModuleRequest:
			maps["kroll_deny"] = [2]uint32{bpf.NameLen, 1}
		case bpf.KindFileOpen:
			maps["kroll_deny"] = [2]uint32{uint32(binary.Size(bpf.Key{})), 1}
		}
		for name, sizes := range maps {
			m := spec.Maps[name]
			if m == nil {
				t.Errorf("%s: no map %s", kind, name)
				continue
			}
			if m.KeySize != sizes[0] || m.ValueSize != sizes[1] {
				t.Errorf("%s: map %s key/value size %d/%d, want %d/%d", kind, name, m.KeySize, m.ValueSize, sizes[0], sizes[1])
			}
		}
		if m := spec.Maps["kroll_events"]; m == nil || m.Type != ebpf.RingBuf {
			t.Errorf("%s: no ring buffer kroll_events", kind)
		}
		var lsm int
		for _, p := range spec.Programs {
			if p.Type == ebpf.LSM {
				lsm++
			}
		}
		if want := len(strings.Split(kind.Ops().String(), "|")); lsm != want {
			t.Errorf("%s: %d LSM programs, want %d", kind, lsm, want)
		}
	}
}
