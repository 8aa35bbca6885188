package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/release"
)

// need fails the test when a program the test runs is missing (make deps
// installs it).
func need(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Fatalf("%s is required (make deps): %v", prog, err)
	}
	return p
}

// call is one recorded command.
type call struct {
	name string
	args []string
}

func (c call) String() string { return c.name + " " + strings.Join(c.args, " ") }

// recRunner records every command; dpkg, dpkg-deb, dpkg-query and depmod
// run for real, the initramfs tools are faked (they write the file named
// on their command line), and fail makes a command fail.
type recRunner struct {
	mu    sync.Mutex
	calls []call
	fail  map[string]error
}

func (r *recRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, call{name, args})
	err := r.fail[name]
	r.mu.Unlock()
	if err != nil {
		return []byte(name + " failed on purpose"), err
	}
	switch name {
	case "update-initramfs":
		var k, b string
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "-k":
				k = args[i+1]
			case "-b":
				b = args[i+1]
			}
		}
		return nil, os.WriteFile(filepath.Join(b, "initrd.img-"+k), []byte("generated initrd"), 0o644)
	case "dracut":
		return nil, os.WriteFile(args[len(args)-1], []byte("dracut initrd"), 0o644)
	}
	return ExecRunner{}.Run(ctx, env, name, args...)
}

// ran returns the recorded command lines of name.
func (r *recRunner) ran(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		if c.name == name {
			out = append(out, c.String())
		}
	}
	return out
}

// newRoot returns a temporary root with an empty dpkg database and a
// static busybox as /bin/sh (dpkg --root runs maintainer scripts
// chrooted into it).
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log", "bin", "boot", "lib/modules", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bb := need(t, "busybox")
	if !static(t, bb) {
		t.Fatalf("%s is not statically linked (install busybox-static)", bb)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "cat", "echo", "test", "touch", "mkdir", "rm"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// static reports whether the ELF executable p has no program interpreter.
func static(t *testing.T, p string) bool {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// debSpec describes a linux-image-style test package.
type debSpec struct {
	release, version string
	pkg              string // default linux-image-<release>
	depends          string
	// postinst is the body of the postinst script (after set -e); the
	// default records its run and writes the initrd like the
	// initramfs-tools hook does.
	postinst string
	noKernel bool
}

// buildDeb builds the package with dpkg-deb --build and returns its path.
func buildDeb(t *testing.T, s debSpec) string {
	t.Helper()
	need(t, "dpkg-deb")
	dir := t.TempDir()
	pkg := s.pkg
	if pkg == "" {
		pkg = "linux-image-" + s.release
	}
	files := map[string]string{
		"DEBIAN/control": fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: kroll tests <tests@kroll.invalid>\nDescription: test kernel %s\n",
			pkg, s.version, s.release),
	}
	if s.depends != "" {
		files["DEBIAN/control"] += "Depends: " + s.depends + "\n"
	}
	if !s.noKernel {
		files["boot/vmlinuz-"+s.release] = "kernel image " + s.release + " " + s.version
		files["boot/config-"+s.release] = "CONFIG_X=y\n"
		files["lib/modules/"+s.release+"/kernel/fs/a.ko"] = strings.Repeat("m", 4096)
		files["lib/modules/"+s.release+"/modules.order"] = "kernel/fs/a.ko\n"
	}
	body := s.postinst
	if body == "" {
		body = fmt.Sprintf("echo \"postinst %s $*\" >> /var/log/kroll-test-scripts\nif [ -e /boot/vmlinuz-%s ]; then echo initrd > /boot/initrd.img-%s; fi\n", s.release, s.release, s.release)
	}
	files["DEBIAN/postinst"] = "#!/bin/sh\nset -e\n" + body
	files["DEBIAN/postrm"] = fmt.Sprintf("#!/bin/sh\nset -e\necho \"postrm %s $*\" >> /var/log/kroll-test-scripts\nrm -f /boot/initrd.img-%s\n", s.release, s.release)
	for name, content := range files {
		p := filepath.Join(dir, "pkg", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "DEBIAN/post") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, pkg+"_"+s.version+"_all.deb")
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", filepath.Join(dir, "pkg"), out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v: %s", err, b)
	}
	return out
}

// stageFiles puts files into a new staging directory and returns a
// manifest of kind naming them with their sizes and digests.
func stageFiles(t *testing.T, kind release.Kind, rel string, files ...string) (release.Manifest, string) {
	t.Helper()
	dir := t.TempDir()
	m := release.Manifest{ID: rel + "-r1", Line: "9.9", KernelVersion: rel, Kind: kind, Created: time.Unix(0, 0)}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		m.Artifacts = append(m.Artifacts, release.Artifact{Name: name, URL: "http://127.0.0.1/" + name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	return m, dir
}

// bundleArchive writes a .tar.gz holding entries (name → content; a name
// ending in / is a directory, content "->x" a symlink to x).
func bundleArchive(t *testing.T, entries map[string]string, order ...string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range order {
		c := entries[name]
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(c)), ModTime: time.Unix(0, 0)}
		switch {
		case strings.HasSuffix(name, "/"):
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		case strings.HasPrefix(c, "->"):
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, c[2:]
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kernel.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// newInstaller returns an installer on root with a recording runner and
// small margins.
func newInstaller(t *testing.T, root string, mod func(*Config)) (*Installer, *recRunner) {
	t.Helper()
	r := &recRunner{fail: map[string]error{}}
	cfg := Config{Root: root, StateDir: filepath.Join(t.TempDir(), "state"), Runner: r, MinFreeBoot: 1, MinFreeModules: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in, r
}

// dpkgStatus returns pkg's status and version in root's dpkg database.
func dpkgStatus(t *testing.T, root, pkg string) string {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "--root="+root, "-W", "-f", "${db:Status-Status} ${Version}", pkg).CombinedOutput()
	return strings.TrimSpace(string(out))
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
