package running

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/pkg/kversion"
)

const (
	testBootID   = "7d2e9a61-1c3b-4f0a-8e6d-2b5c4a3f1e09"
	debRelease   = "6.1.0-56-amd64"
	debVersion   = "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-10-02)\n"
	plainRel     = "6.12.9-kroll"
	plainVersion = "Linux version 6.12.9-kroll (builder@ci) (gcc 12.2.0) #3 SMP Tue Jan 1 00:00:00 UTC 2026\n"
)

// fakeProc writes files (path below the root → content) into a new
// directory and returns it; a nil-equivalent absent entry means no file.
func fakeProc(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// wantErr checks err against the expectation: "" no error; "notexist" a
// missing file; "malformed:<substring>" ErrMalformed with the substring.
func wantErr(t *testing.T, call string, err error, want string) {
	t.Helper()
	switch {
	case want == "":
		if err != nil {
			t.Fatalf("%s: unexpected error %v", call, err)
		}
	case want == "notexist":
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: error %v, want one wrapping fs.ErrNotExist", call, err)
		}
	default:
		sub, _ := strings.CutPrefix(want, "malformed:")
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), sub) {
			t.Fatalf("%s: error %v, want ErrMalformed containing %q", call, err, sub)
		}
	}
}

func TestRelease(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    string
		wantErr string
	}{
		{"debian", map[string]string{"sys/kernel/osrelease": debRelease + "\n"}, debRelease, ""},
		{"no-newline", map[string]string{"sys/kernel/osrelease": plainRel}, plainRel, ""},
		{"missing", map[string]string{}, "", "notexist"},
		{"empty", map[string]string{"sys/kernel/osrelease": "\n"}, "", "malformed:is empty"},
		{"space-inside", map[string]string{"sys/kernel/osrelease": "6.1.0 56\n"}, "", "malformed:white space"},
		{"control-char", map[string]string{"sys/kernel/osrelease": "6.1.0\x01\n"}, "", "malformed:unprintable"},
		{"too-long", map[string]string{"sys/kernel/osrelease": strings.Repeat("6", 65)}, "", "malformed:at most 64"},
		{"huge", map[string]string{"sys/kernel/osrelease": strings.Repeat("6", maxProcFile+1)}, "", "malformed:more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ProcFS{Dir: fakeProc(t, tc.files)}.Release()
			wantErr(t, "Release()", err, tc.wantErr)
			if got != tc.want {
				t.Fatalf("Release() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		name         string
		content      string // "" no file
		wantString   string
		wantUpstream string // "" unknown
		wantErr      string
	}{
		{"debian-abi", debVersion, debRelease, "6.1.192", ""},
		{"upstream-release", plainVersion, plainRel, "6.12.9", ""},
		{"debian-abi-without-package", "Linux version 6.1.0-56-amd64 (x) (gcc) #1 SMP\n", debRelease, "", ""},
		{"missing", "", "", "", "notexist"},
		{"garbage", "not a kernel\n", "", "", "malformed:Linux version"},
		{"inconsistent", "Linux version 6.1.0-56-amd64 (x) (gcc) #1 SMP Debian 6.12.9-1 (2026-01-01)\n", "", "", "malformed:line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			if tc.content != "" {
				files["version"] = tc.content
			}
			v, err := ProcFS{Dir: fakeProc(t, files)}.Version()
			wantErr(t, "Version()", err, tc.wantErr)
			if strings.HasPrefix(tc.wantErr, "malformed:") && !errors.Is(err, kversion.ErrUnknownFormat) {
				t.Fatalf("Version() error %v does not wrap kversion's", err)
			}
			if tc.wantErr != "" {
				return
			}
			up, known := v.Upstream()
			if v.String() != tc.wantString || (tc.wantUpstream != "") != known || up != tc.wantUpstream {
				t.Fatalf("Version() = %s, upstream %q (known %v); want %s, upstream %q", v.String(), up, known, tc.wantString, tc.wantUpstream)
			}
		})
	}
}

func TestBootID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string // "-" no file
		want    string
		wantErr string
	}{
		{"ok", testBootID + "\n", testBootID, ""},
		{"no-newline", testBootID, testBootID, ""},
		{"missing", "-", "", "notexist"},
		{"empty", "", "", "malformed:not a UUID"},
		{"uppercase", strings.ToUpper(testBootID), "", "malformed:not a UUID"},
		{"no-dashes", strings.ReplaceAll(testBootID, "-", "") + "abcd", "", "malformed:not a UUID"},
		{"not-hex", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg", "", "malformed:not a UUID"},
		{"dash-misplaced", "0f1e2d3c4-b5a-6978-8796-a5b4c3d2e1f0", "", "malformed:not a UUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			if tc.content != "-" {
				files["sys/kernel/random/boot_id"] = tc.content
			}
			got, err := ProcFS{Dir: fakeProc(t, files)}.BootID()
			wantErr(t, "BootID()", err, tc.wantErr)
			if got != tc.want {
				t.Fatalf("BootID() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCmdline(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string // "-" no file
		want    string
		wantErr string
	}{
		{"grub", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-47-amd64 root=UUID=abc ro quiet\n", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-47-amd64 root=UUID=abc ro quiet", ""},
		{"unfiltered", "ro single systemd.unit=rescue.target -- x\n", "ro single systemd.unit=rescue.target -- x", ""},
		{"spacing-kept", "  a   b\tc \n", "  a   b\tc ", ""},
		{"empty", "\n", "", ""},
		{"missing", "-", "", "notexist"},
		{"line-break-inside", "a\nb\n", "", "malformed:line break"},
		{"nul-inside", "a\x00b\n", "", "malformed:NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			if tc.content != "-" {
				files["cmdline"] = tc.content
			}
			got, err := ProcFS{Dir: fakeProc(t, files)}.Cmdline()
			wantErr(t, "Cmdline()", err, tc.wantErr)
			if got != tc.want {
				t.Fatalf("Cmdline() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReadsFresh checks nothing is cached: a new boot (files rewritten)
// shows at the next call.
func TestReadsFresh(t *testing.T) {
	const otherID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	dir := fakeProc(t, map[string]string{"sys/kernel/random/boot_id": testBootID, "sys/kernel/osrelease": debRelease})
	k := ProcFS{Dir: dir}
	for _, want := range []struct{ id, rel string }{{testBootID, debRelease}, {otherID, plainRel}} {
		if err := os.WriteFile(filepath.Join(dir, "sys/kernel/random/boot_id"), []byte(want.id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "sys/kernel/osrelease"), []byte(want.rel+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		id, err := k.BootID()
		if err != nil || id != want.id {
			t.Fatalf("BootID() = %q, %v; want %q", id, err, want.id)
		}
		rel, err := k.Release()
		if err != nil || rel != want.rel {
			t.Fatalf("Release() = %q, %v; want %q", rel, err, want.rel)
		}
	}
}

// TestThisHost reads the real /proc of the machine the test runs on and
// compares it with uname(2).
func TestThisHost(t *testing.T) {
	var k Kernel = ProcFS{}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	rel, err := k.Release()
	if err != nil || rel != unix.ByteSliceToString(uts.Release[:]) {
		t.Fatalf("Release() = %q, %v; uname says %q", rel, err, unix.ByteSliceToString(uts.Release[:]))
	}
	v, err := k.Version()
	if err != nil || v.String() != rel {
		t.Fatalf("Version() = %v, %v; want release %q", v, err, rel)
	}
	id, err := k.BootID()
	if err != nil || !isUUID(id) {
		t.Fatalf("BootID() = %q, %v", id, err)
	}
	again, err := k.BootID()
	if err != nil || again != id {
		t.Fatalf("BootID() changed within one boot: %q then %q (%v)", id, again, err)
	}
	if _, err := k.Cmdline(); err != nil {
		t.Fatalf("Cmdline(): %v", err)
	}
}
