package stage

import (
	"archive/tar"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/signing"
)

// newStager returns a Stager for a fresh directory trusting keys.
func newStager(t *testing.T, mod func(*Config), keys ...ed25519.PublicKey) *Stager {
	t.Helper()
	cfg := Config{Dir: filepath.Join(t.TempDir(), "staging"), Trusted: keys, Backoff: time.Millisecond, MaxRetries: 3}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStageDeb(t *testing.T) {
	for _, modules := range []bool{false, true} {
		t.Run(map[bool]string{false: "kernel", true: "modules"}[modules], func(t *testing.T) {
			deb := buildDeb(t, kernelEntries())
			name := "linux-image-" + testKernel + "_6.12.117-1_amd64.deb"
			srv := newServer(t, map[string][]byte{name: deb}, nil)
			k := newSigner(t)
			m, sig := k.manifest(t, "6.12.117-kroll.1", release.KindDeb, testKernel, artifact(srv.URL, name, deb))
			s := newStager(t, func(c *Config) { c.Modules = modules }, k.pub)
			st, err := s.Stage(t.Context(), m, sig)
			if err != nil {
				t.Fatal(err)
			}
			if st.KernelRelease != testKernel || st.Initrd != "" {
				t.Errorf("Staged = %+v", st)
			}
			b, err := os.ReadFile(st.Vmlinuz)
			if err != nil || string(b) != "MZ kernel image bytes" {
				t.Fatalf("vmlinuz = %q, %v", b, err)
			}
			root := filepath.Join(st.Dir, rootName)
			if _, err := os.Stat(filepath.Join(root, "boot", "config-"+testKernel)); err != nil {
				t.Error(err)
			}
			for _, p := range []string{"boot/System.map-" + testKernel, "usr"} {
				if _, err := os.Stat(filepath.Join(root, p)); err == nil {
					t.Errorf("%s extracted", p)
				}
			}
			_, err = os.Stat(filepath.Join(root, "lib/modules", testKernel, "kernel/foo.ko.xz"))
			if (err == nil) != modules {
				t.Errorf("modules extracted = %v, want %v", err == nil, modules)
			}
			// Idempotent: no further download.
			n := len(srv.requests())
			st2, err := s.Stage(t.Context(), m, sig)
			if err != nil {
				t.Fatal(err)
			}
			if st2.Vmlinuz != st.Vmlinuz || st2.KernelRelease != st.KernelRelease || len(srv.requests()) != n {
				t.Errorf("second Stage = %+v after %d requests, want %+v after %d", st2, len(srv.requests()), st, n)
			}
			// An artifact removed since (the installer found it changed) is
			// downloaded again.
			if err := os.Remove(filepath.Join(st.Dir, name)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Stage(t.Context(), m, sig); err != nil {
				t.Fatal(err)
			}
			if len(srv.requests()) == n {
				t.Errorf("a removed artifact was not downloaded again")
			}
			if _, err := os.Stat(filepath.Join(st.Dir, name)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestStageBundle(t *testing.T) {
	tgz := gzBytes(t, buildTar(t, []entry{
		{name: "vmlinuz", body: "kernel"},
		{name: "initrd.img", body: "initrd"},
		{name: "README", body: "ignored"},
	}))
	srv := newServer(t, map[string][]byte{"b.tar.gz": tgz}, nil)
	k := newSigner(t)
	m, sig := k.manifest(t, "6.12.117-kroll.2", release.KindBundle, "6.12.117", artifact(srv.URL, "b.tar.gz", tgz))
	st, err := newStager(t, nil, k.pub).Stage(t.Context(), m, sig)
	if err != nil {
		t.Fatal(err)
	}
	if st.KernelRelease != "6.12.117" || filepath.Base(st.Vmlinuz) != "vmlinuz" || filepath.Base(st.Initrd) != "initrd.img" {
		t.Fatalf("Staged = %+v", st)
	}
	if b, _ := os.ReadFile(st.Initrd); string(b) != "initrd" {
		t.Errorf("initrd = %q", b)
	}
}

func TestSignatureFailure(t *testing.T) {
	deb := buildDeb(t, kernelEntries())
	srv := newServer(t, map[string][]byte{"k.deb": deb}, nil)
	k, other := newSigner(t), newSigner(t)
	m, sig := k.manifest(t, "r1", release.KindDeb, testKernel, artifact(srv.URL, "k.deb", deb))
	_, otherSig := other.manifest(t, "r1", release.KindDeb, testKernel, artifact(srv.URL, "k.deb", deb))
	tampered := []byte(strings.Replace(string(m), `"r1"`, `"r2"`, 1))
	tests := []struct {
		name     string
		manifest []byte
		sig      []byte
		want     error
	}{
		{"untrusted key", m, otherSig, signing.ErrUnknownKey},
		{"tampered manifest", tampered, sig, signing.ErrBadSignature},
		{"malformed signature", m, []byte("{}"), signing.ErrMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStager(t, nil, k.pub)
			_, err := s.Stage(t.Context(), tt.manifest, tt.sig)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if n := len(srv.requests()); n != 0 {
				t.Errorf("%d requests made", n)
			}
			if _, err := os.Stat(s.cfg.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("staging dir created: %v", err)
			}
		})
	}
}

func TestDownload(t *testing.T) {
	body := []byte(strings.Repeat("0123456789abcdef", 4096))
	tests := []struct {
		name       string
		handler    func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool
		retries    int
		wantErr    string
		wantRanges []string
	}{
		{
			name: "resume after cut connection",
			handler: func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool {
				if n == 0 {
					cutHalf(w, body)
					return true
				}
				return false
			},
			wantRanges: []string{"", "bytes=32768-"},
		},
		{
			name: "200 to a range request restarts",
			handler: func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool {
				if n == 0 {
					cutHalf(w, body)
					return true
				}
				w.Write(body) // ignores Range
				return true
			},
			wantRanges: []string{"", "bytes=32768-"},
		},
		{
			name: "5xx retried",
			handler: func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool {
				if n < 2 {
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return true
				}
				return false
			},
			wantRanges: []string{"", "", ""},
		},
		{
			name: "5xx beyond MaxRetries",
			handler: func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool {
				http.Error(w, "broken", http.StatusBadGateway)
				return true
			},
			retries:    2,
			wantErr:    "502 Bad Gateway",
			wantRanges: []string{"", "", ""},
		},
		{
			name: "404 not retried",
			handler: func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool {
				http.NotFound(w, r)
				return true
			},
			wantErr:    "404 Not Found",
			wantRanges: []string{""},
		},
		{
			name: "body longer than declared",
			handler: func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool {
				w.Write(append(body, "extra"...))
				return true
			},
			wantErr:    "exceeds the declared size",
			wantRanges: []string{""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, map[string][]byte{"a.bin": body}, tt.handler)
			k := newSigner(t)
			// A bundle release whose only artifact is not an archive
			// stops at findKernel; the download is what is tested here.
			m, sig := k.manifest(t, "r1", release.KindBundle, "6.12.117", artifact(srv.URL, "a.bin", body))
			s := newStager(t, func(c *Config) {
				if tt.retries != 0 {
					c.MaxRetries = tt.retries
				}
			}, k.pub)
			_, err := s.Stage(t.Context(), m, sig)
			final := filepath.Join(s.cfg.Dir, "r1", "a.bin")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), "want exactly one vmlinuz") {
					t.Fatalf("err = %v, want the missing-vmlinuz error after the download", err)
				}
				b, rerr := os.ReadFile(final)
				if rerr != nil || string(b) != string(body) {
					t.Fatalf("downloaded file differs (%d bytes, %v)", len(b), rerr)
				}
			}
			if got := srv.requests(); strings.Join(got, "|") != strings.Join(tt.wantRanges, "|") {
				t.Errorf("Range headers = %q, want %q", got, tt.wantRanges)
			}
		})
	}
}

func TestSHAMismatch(t *testing.T) {
	body := []byte("artifact content")
	srv := newServer(t, map[string][]byte{"a.deb": body}, nil)
	k := newSigner(t)
	a := artifact(srv.URL, "a.deb", body)
	a.SHA256 = strings.Repeat("0", 64)
	m, sig := k.manifest(t, "r1", release.KindDeb, testKernel, a)
	s := newStager(t, nil, k.pub)
	_, err := s.Stage(t.Context(), m, sig)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("err = %v, want a sha256 mismatch", err)
	}
	for _, p := range []string{"a.deb", "a.deb.part"} {
		if _, err := os.Stat(filepath.Join(s.cfg.Dir, "r1", p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
}

func TestFreeSpace(t *testing.T) {
	body := []byte("artifact content")
	srv := newServer(t, map[string][]byte{"a.deb": body}, nil)
	k := newSigner(t)
	m, sig := k.manifest(t, "r1", release.KindDeb, testKernel, artifact(srv.URL, "a.deb", body))
	s := newStager(t, func(c *Config) { c.MinFreeBytes = 1 << 62 }, k.pub)
	_, err := s.Stage(t.Context(), m, sig)
	if err == nil || !strings.Contains(err.Error(), "not enough free space") {
		t.Fatalf("err = %v, want a free space refusal", err)
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests made", n)
	}
}

func TestContextCancel(t *testing.T) {
	body := []byte("artifact content")
	srv := newServer(t, map[string][]byte{"a.deb": body}, func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	k := newSigner(t)
	m, sig := k.manifest(t, "r1", release.KindDeb, testKernel, artifact(srv.URL, "a.deb", body))
	s := newStager(t, func(c *Config) { c.Backoff = time.Hour }, k.pub)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Stage(ctx, m, sig)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}

func TestMaliciousArchives(t *testing.T) {
	vm := entry{name: "./boot/vmlinuz-" + testKernel, body: "kernel"}
	good := buildDeb(t, kernelEntries())
	tests := []struct {
		name string
		deb  []byte
		want string
	}{
		{"dotdot path", buildDeb(t, []entry{vm, {name: "./boot/../../../outside", body: "x"}}), `entry "./boot/../../../outside": path traversal`},
		{"dotdot in skipped entry", buildDeb(t, []entry{{name: "usr/../../x", body: "x"}, vm}), `entry "usr/../../x": path traversal`},
		{"absolute path", buildDeb(t, []entry{{name: "/boot/vmlinuz-" + testKernel, body: "x"}}), `entry "/boot/vmlinuz-6.12.117+deb12-amd64": absolute path`},
		{"symlink to /etc", buildDeb(t, []entry{{name: "./boot/vmlinuz-x", typ: tar.TypeSymlink, link: "/etc"}}), `entry "./boot/vmlinuz-x": symlink to "/etc" points outside the tree`},
		{"relative symlink out", buildDeb(t, []entry{{name: "./boot/config-x", typ: tar.TypeSymlink, link: "../../etc/passwd"}}), `entry "./boot/config-x": symlink to "../../etc/passwd" points outside the tree`},
		{"hardlink outside", buildDeb(t, []entry{vm, {name: "./boot/config-x", typ: tar.TypeLink, link: "../../../etc/shadow"}}), `entry "./boot/config-x": hardlink to "../../../etc/shadow" points outside the tree`},
		{"char device", buildDeb(t, []entry{{name: "./boot/vmlinuz-x", typ: tar.TypeChar}}), `entry "./boot/vmlinuz-x": device file refused`},
		{"block device", buildDeb(t, []entry{{name: "./dev/sda", typ: tar.TypeBlock}}), `entry "./dev/sda": device file refused`},
		{"oversize entry", buildDeb(t, []entry{{name: "./boot/vmlinuz-" + testKernel, size: 2 << 20}}), `entry "./boot/vmlinuz-6.12.117+deb12-amd64": 2097152 bytes exceeds the limit of 1048576 bytes per entry`},
		{"total over limit", buildDeb(t, []entry{
			{name: "./boot/vmlinuz-" + testKernel, body: strings.Repeat("k", 800<<10)},
			{name: "./boot/config-" + testKernel, body: strings.Repeat("c", 800<<10)},
		}), `entry "./boot/config-6.12.117+deb12-amd64": extracted size exceeds the limit of 1500000 bytes`},
		{"truncated tar", buildDeb(t, []entry{{name: "./boot/vmlinuz-" + testKernel, body: "short", truncate: true}}), `entry "./boot/vmlinuz-6.12.117+deb12-amd64": truncated archive`},
		{"truncated ar", good[:len(good)-100], "truncated archive"},
		{"truncated ar header", good[:len(arMagic)+30], "truncated archive"},
		{"not a deb", []byte("PK\x03\x04 zip"), "not an ar archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, map[string][]byte{"k.deb": tt.deb}, nil)
			k := newSigner(t)
			m, sig := k.manifest(t, "r1", release.KindDeb, testKernel, artifact(srv.URL, "k.deb", tt.deb))
			top := t.TempDir()
			s, err := New(Config{Dir: filepath.Join(top, "staging"), Trusted: []ed25519.PublicKey{k.pub}, MaxEntrySize: 1 << 20, MaxTotalSize: 1500000})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Stage(t.Context(), m, sig)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
			t.Logf("rejected: %v", err)
			assertConfined(t, top, "staging")
			if _, err := os.Stat(filepath.Join(s.cfg.Dir, "r1", rootName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("half-unpacked root left behind: %v", err)
			}
			if _, err := os.Stat(filepath.Join(s.cfg.Dir, "r1", markerName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("marker written for a failed staging: %v", err)
			}
		})
	}
}

// assertConfined fails unless top holds nothing but the entry inside.
func assertConfined(t testing.TB, top, inside string) {
	t.Helper()
	ents, err := os.ReadDir(top)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != inside {
			t.Errorf("%s written outside %s", filepath.Join(top, e.Name()), inside)
		}
	}
}
