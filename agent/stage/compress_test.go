package stage

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/release"
)

// dpkgDeb builds a linux-image-like package with the real dpkg-deb,
// compressing its members with comp (dpkg-deb -Z), and returns it.
func dpkgDeb(t *testing.T, comp string, modules []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Fatalf("dpkg-deb (package dpkg, essential on Debian) is needed: %v", err)
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	files := map[string][]byte{
		"DEBIAN/control": []byte("Package: linux-image-test\nVersion: 6.12.117-1\nArchitecture: amd64\n" +
			"Maintainer: kroll tests <tests@example.invalid>\nDescription: synthetic kernel\n"),
		"boot/vmlinuz-" + testKernel:                      []byte("MZ kernel image bytes"),
		"boot/config-" + testKernel:                       []byte("CONFIG_X=y\n"),
		"boot/System.map-" + testKernel:                   []byte("map"),
		"lib/modules/" + testKernel + "/kernel/foo.ko.xz": modules,
		"usr/share/doc/linux-image-test/copyright":        []byte("none"),
	}
	for name, body := range files {
		p := filepath.Join(tree, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "k.deb")
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Z"+comp, "--build", tree, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -Z%s --build: %v\n%s", comp, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// arNames lists the member names of the ar archive b.
func arNames(t *testing.T, b []byte) []string {
	t.Helper()
	ar := newArReader(bytes.NewReader(b))
	var names []string
	for {
		m, err := ar.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m.Name)
	}
}

// stageDeb stages deb as the single artifact of a .deb release with the
// limits of TestMaliciousArchives; it returns the staged kernel or the
// error, and checks that a failure leaves nothing behind.
func stageDeb(t *testing.T, deb []byte, modules bool) (*Staged, error) {
	t.Helper()
	srv := newServer(t, map[string][]byte{"k.deb": deb}, nil)
	k := newSigner(t)
	m, sig := k.manifest(t, "r1", release.KindDeb, testKernel, artifact(srv.URL, "k.deb", deb))
	top := t.TempDir()
	s, err := New(Config{Dir: filepath.Join(top, "staging"), Trusted: []ed25519.PublicKey{k.pub}, Modules: modules, MaxEntrySize: 1 << 20, MaxTotalSize: 1500000})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stage(t.Context(), m, sig)
	assertConfined(t, top, "staging")
	if err != nil {
		if _, serr := os.Stat(filepath.Join(s.cfg.Dir, "r1", rootName)); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("half-unpacked root left behind: %v", serr)
		}
	}
	return st, err
}

// TestStageDpkgDebCompressions stages packages built by the real dpkg-deb
// with each compression it writes: zstd (Ubuntu's kernels), xz (Debian's),
// gzip and none.
func TestStageDpkgDebCompressions(t *testing.T) {
	tests := []struct {
		comp    string
		members []string
	}{
		{"zstd", []string{"debian-binary", "control.tar.zst", "data.tar.zst"}},
		{"xz", []string{"debian-binary", "control.tar.xz", "data.tar.xz"}},
		{"gzip", []string{"debian-binary", "control.tar.gz", "data.tar.gz"}},
		{"none", []string{"debian-binary", "control.tar", "data.tar"}},
	}
	for _, tt := range tests {
		t.Run(tt.comp, func(t *testing.T) {
			deb := dpkgDeb(t, tt.comp, []byte("module"))
			if got := arNames(t, deb); strings.Join(got, " ") != strings.Join(tt.members, " ") {
				t.Fatalf("dpkg-deb -Z%s members = %q, want %q", tt.comp, got, tt.members)
			}
			for _, modules := range []bool{false, true} {
				st, err := stageDeb(t, deb, modules)
				if err != nil {
					t.Fatalf("modules=%v: %v", modules, err)
				}
				if st.KernelRelease != testKernel {
					t.Errorf("KernelRelease = %q", st.KernelRelease)
				}
				if b, err := os.ReadFile(st.Vmlinuz); err != nil || string(b) != "MZ kernel image bytes" {
					t.Errorf("vmlinuz = %q, %v", b, err)
				}
				root := filepath.Join(st.Dir, rootName)
				if b, err := os.ReadFile(filepath.Join(root, "boot", "config-"+testKernel)); err != nil || string(b) != "CONFIG_X=y\n" {
					t.Errorf("config = %q, %v", b, err)
				}
				b, err := os.ReadFile(filepath.Join(root, "lib/modules", testKernel, "kernel/foo.ko.xz"))
				if modules && (err != nil || string(b) != "module") {
					t.Errorf("module = %q, %v", b, err)
				}
				if !modules && err == nil {
					t.Errorf("module extracted without Modules")
				}
			}
		})
	}
}

// dataMember returns the offset and size of the body of the ar member
// whose name starts with "data.tar" in the .deb b.
func dataMember(t *testing.T, b []byte) (off, size int) {
	t.Helper()
	off = len(arMagic)
	for off+arHeaderSize <= len(b) {
		h := b[off : off+arHeaderSize]
		name := strings.TrimRight(string(h[:16]), " /")
		var n int
		for _, c := range strings.TrimRight(string(h[48:58]), " ") {
			n = n*10 + int(c-'0')
		}
		if strings.HasPrefix(name, "data.tar") {
			return off + arHeaderSize, n
		}
		off += arHeaderSize + n + n%2
	}
	t.Fatal("no data.tar member")
	return 0, 0
}

// bigWindowZst compresses b as one zstd frame whose header asks for a
// window of 1<<log bytes (the largest valid descriptor has log 41),
// holding b as a single raw block: what an encoder at --ultra or --long
// levels writes, without allocating the window to write it.
func bigWindowZst(b []byte, log byte) []byte {
	out := []byte{0x28, 0xb5, 0x2f, 0xfd} // magic
	out = append(out, 0x00)               // no checksum, no content size, not single segment
	out = append(out, (log-10)<<3)        // window descriptor: exponent, mantissa 0
	bh := uint32(len(b))<<3 | 1           // last block, raw
	out = append(out, byte(bh), byte(bh>>8), byte(bh>>16))
	return append(out, b...)
}

// TestCorruptCompressedData refuses broken data members with one error
// naming the compression, and leaves nothing behind.
func TestCorruptCompressedData(t *testing.T) {
	tarball := buildTar(t, kernelEntries())
	zst := zstBytes(t, tarball)
	flipped := bytes.Clone(zst)
	for i := len(flipped) / 3; i < len(flipped)/3+8; i++ {
		flipped[i] ^= 0xa5
	}
	badMagic := bytes.Clone(zst)
	binary.LittleEndian.PutUint32(badMagic, 0xdeadbeef)
	real := dpkgDeb(t, "zstd", []byte("module"))
	off, size := dataMember(t, real)
	realFlipped := bytes.Clone(real)
	for i := off + size/2; i < off+size/2+16; i++ {
		realFlipped[i] ^= 0xff
	}
	tests := []struct {
		name string
		deb  []byte
		want string
	}{
		{"zstd truncated stream", debBytes(t, ".zst", zst[:len(zst)*2/3]), "data.tar.zst: tar: first entry: zstd: truncated archive"},
		{"zstd stream cut before the first block", debBytes(t, ".zst", zst[:6]), "zstd: truncated archive"},
		{"zstd empty member", debBytes(t, ".zst", nil), "data.tar.zst: zstd: truncated archive"},
		{"zstd corrupt block", debBytes(t, ".zst", flipped), "zstd: corrupt stream"},
		{"zstd bad magic", debBytes(t, ".zst", badMagic), "zstd: corrupt stream"},
		{"zstd window over the limit", debBytes(t, ".zst", bigWindowZst(tarball, 27)), "zstd: window of 134217728 bytes exceeds the limit of 67108864 bytes"},
		{"zstd window at 2 TiB", debBytes(t, ".zst", bigWindowZst(tarball, 41)), "zstd: window of 2199023255552 bytes exceeds the limit"},
		{"real dpkg-deb zstd, truncated file", real[:off+size/2], "truncated archive"},
		{"real dpkg-deb zstd, corrupt", realFlipped, "zstd: corrupt stream"},
		{"xz truncated stream", debBytes(t, ".xz", xzBytes(t, tarball)[:100]), "xz: truncated archive"},
		{"gzip truncated stream", debBytes(t, ".gz", gzBytes(t, tarball)[:100]), "gzip: truncated archive"},
		{"bzip2 data", debBytes(t, ".bz2", []byte("BZh9")), `data.tar.bz2: unsupported compression ".bz2" (want .zst, .xz, .gz or none)`},
		{"lzma data", debBytes(t, ".lzma", []byte("]")), `data.tar.lzma: unsupported compression ".lzma"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := stageDeb(t, tt.deb, true)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
			t.Logf("rejected: %v", err)
		})
	}
}

// TestZstdWindowAtLimit accepts a stream whose window is exactly the limit:
// the bound refuses only what is larger.
func TestZstdWindowAtLimit(t *testing.T) {
	deb := debBytes(t, ".zst", bigWindowZst(buildTar(t, kernelEntries()), 26))
	if zstdMaxWindow != 1<<26 {
		t.Fatalf("zstdMaxWindow = %d; adjust the window of this test", zstdMaxWindow)
	}
	if _, err := stageDeb(t, deb, true); err != nil {
		t.Fatal(err)
	}
}

// TestStageBundleCompressions stages bundles made by the real tar with
// each compression the stager reads.
func TestStageBundleCompressions(t *testing.T) {
	tests := []struct {
		name string
		flag string // tar's compression option
	}{
		{"b.tar.gz", "--gzip"},
		{"b.tgz", "--gzip"},
		{"b.tar.xz", "--xz"},
		{"b.tar.zst", "--zstd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range map[string]string{"vmlinuz": "kernel", "initrd.img": "initrd", "README": "ignored"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(t.TempDir(), tt.name)
			if b, err := exec.Command("tar", "-C", dir, tt.flag, "-cf", out, "vmlinuz", "initrd.img", "README").CombinedOutput(); err != nil {
				t.Fatalf("tar %s (make deps installs the compressors): %v\n%s", tt.flag, err, b)
			}
			body, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			srv := newServer(t, map[string][]byte{tt.name: body}, nil)
			k := newSigner(t)
			m, sig := k.manifest(t, "6.12.117-kroll.2", release.KindBundle, "6.12.117", artifact(srv.URL, tt.name, body))
			st, err := newStager(t, nil, k.pub).Stage(t.Context(), m, sig)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(st.Vmlinuz); err != nil || string(b) != "kernel" {
				t.Errorf("vmlinuz = %q, %v", b, err)
			}
			if b, err := os.ReadFile(st.Initrd); err != nil || string(b) != "initrd" {
				t.Errorf("initrd = %q, %v", b, err)
			}
			// A corrupt copy is one error naming the compression.
			bad := bytes.Clone(body)
			bad = bad[:len(bad)/2]
			srv2 := newServer(t, map[string][]byte{tt.name: bad}, nil)
			m, sig = k.manifest(t, "6.12.117-kroll.3", release.KindBundle, "6.12.117", artifact(srv2.URL, tt.name, bad))
			_, err = newStager(t, nil, k.pub).Stage(t.Context(), m, sig)
			if err == nil || !strings.Contains(err.Error(), "truncated archive") {
				t.Fatalf("truncated %s: err = %v, want a truncated archive", tt.name, err)
			}
			t.Logf("rejected: %v", err)
		})
	}
}

// TestZstdLargeStream decodes a stream larger than zstdMaxWindow: the
// bound limits the window (memory), never the size of a data.tar (a
// modules package decompresses to hundreds of MiB).
func TestZstdLargeStream(t *testing.T) {
	raw := bytes.Repeat([]byte("kernel modules "), 2*zstdMaxWindow/15)
	r, done, err := decompressor(".zst", bytes.NewReader(zstBytes(t, raw)))
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != int64(len(raw)) {
		t.Fatalf("decoded %d of %d bytes: %v", n, len(raw), err)
	}
}
