package install

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/release"
)

// TestInstallDeb installs real linux-image-style packages with real dpkg
// into a temporary root: fresh, again (idempotent), after a failed
// postinst left the package half-configured, and refused for unmet
// dependencies.
func TestInstallDeb(t *testing.T) {
	need(t, "dpkg")
	const rel = "9.9.1-1-kroll"
	ctx := context.Background()

	t.Run("fresh then idempotent", func(t *testing.T) {
		root := newRoot(t)
		deb := buildDeb(t, debSpec{release: rel, version: "9.9.1-1"})
		m, dir := stageFiles(t, release.KindDeb, rel, deb)
		in, r := newInstaller(t, root, nil)
		for i := range 2 {
			res, err := in.Install(ctx, Request{Manifest: m, Dir: dir, Running: "9.9.0-1-kroll"})
			if err != nil {
				t.Fatalf("install %d: %v", i, err)
			}
			if want := filepath.Join(root, "boot/vmlinuz-"+rel); res.Vmlinuz != want || res.Initrd != filepath.Join(root, "boot/initrd.img-"+rel) {
				t.Fatalf("result %+v, want vmlinuz %s and its initrd", res, want)
			}
		}
		if got := dpkgStatus(t, root, "linux-image-"+rel); got != "installed 9.9.1-1" {
			t.Fatalf("dpkg status %q", got)
		}
		if got := readFile(t, filepath.Join(root, "var/log/kroll-test-scripts")); got != "postinst "+rel+" configure \n" {
			t.Fatalf("maintainer scripts ran %q, want one postinst configure", got)
		}
		if got := r.ran("dpkg"); len(got) != 1 || !strings.Contains(got[0], "--force-confold --install "+filepath.Join(dir, filepath.Base(deb))) ||
			!strings.Contains(got[0], "--root="+root) {
			t.Fatalf("dpkg ran %q, want one --install of the staged file", got)
		}
		// Nothing that touches the boot loader's default is ever run.
		for _, c := range r.calls {
			if !slices.Contains([]string{"dpkg", "dpkg-deb", "dpkg-query"}, c.name) {
				t.Errorf("ran %s", c)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "lib/modules", rel, "kernel/fs/a.ko")); err != nil {
			t.Fatal(err)
		}
		st, err := in.loadState()
		if err != nil {
			t.Fatal(err)
		}
		if r := st.Kernels[rel]; r == nil || !r.Complete || r.Package != "linux-image-"+rel || r.RunningAtInstall != "9.9.0-1-kroll" {
			t.Fatalf("record %+v", r)
		}
	})

	t.Run("half-configured is configured on retry", func(t *testing.T) {
		root := newRoot(t)
		// The first postinst fails (like an initramfs hook out of space),
		// the second succeeds.
		deb := buildDeb(t, debSpec{release: rel, version: "9.9.1-1", postinst: `if [ ! -e /var/log/failed-once ]; then touch /var/log/failed-once; echo "update-initramfs: failed for /boot/initrd.img-` + rel + `" >&2; exit 1; fi
echo ok > /boot/initrd.img-` + rel + "\n"})
		m, dir := stageFiles(t, release.KindDeb, rel, deb)
		in, r := newInstaller(t, root, nil)
		_, err := in.Install(ctx, Request{Manifest: m, Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "update-initramfs: failed for /boot/initrd.img-"+rel) {
			t.Fatalf("first install: %v, want the postinst's error", err)
		}
		if got := dpkgStatus(t, root, "linux-image-"+rel); got != "half-configured 9.9.1-1" {
			t.Fatalf("after the failure dpkg status %q", got)
		}
		if _, err := in.Install(ctx, Request{Manifest: m, Dir: dir}); err != nil {
			t.Fatalf("retry: %v", err)
		}
		got := r.ran("dpkg")
		if len(got) != 2 || !strings.HasSuffix(got[1], "--configure linux-image-"+rel) {
			t.Fatalf("dpkg ran %q, want --install then --configure", got)
		}
		if got := dpkgStatus(t, root, "linux-image-"+rel); got != "installed 9.9.1-1" {
			t.Fatalf("dpkg status %q", got)
		}
	})

	t.Run("unmet dependencies", func(t *testing.T) {
		root := newRoot(t)
		base := buildDeb(t, debSpec{release: "0.0.1", pkg: "kroll-test-base", version: "1.0", noKernel: true, postinst: "true\n"})
		if out, err := (ExecRunner{}).Run(ctx, nil, "dpkg", "--root="+root, "--install", base); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		deb := buildDeb(t, debSpec{release: rel, version: "9.9.1-1", depends: "kroll-test-base (>= 0.9), kroll-test-missing | kroll-test-other, kroll-test-base (>= 2.0)"})
		m, dir := stageFiles(t, release.KindDeb, rel, deb)
		in, r := newInstaller(t, root, nil)
		_, err := in.Install(ctx, Request{Manifest: m, Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "depends on kroll-test-missing | kroll-test-other, kroll-test-base (>= 2.0), not installed") {
			t.Fatalf("install: %v, want the unmet dependencies named", err)
		}
		if len(r.ran("dpkg")) != 0 && strings.Contains(strings.Join(r.ran("dpkg"), "\n"), "--install") {
			t.Fatalf("dpkg ran %q", r.ran("dpkg"))
		}
		if got := dpkgStatus(t, root, "linux-image-"+rel); strings.Contains(got, "installed") || strings.Contains(got, "unpacked") {
			t.Fatalf("dpkg status %q, want nothing installed", got)
		}
	})

	t.Run("staged file changed", func(t *testing.T) {
		root := newRoot(t)
		deb := buildDeb(t, debSpec{release: rel, version: "9.9.1-1"})
		m, dir := stageFiles(t, release.KindDeb, rel, deb)
		p := filepath.Join(dir, filepath.Base(deb))
		if err := os.WriteFile(p, []byte("tampered"), 0o644); err != nil {
			t.Fatal(err)
		}
		in, r := newInstaller(t, root, nil)
		_, err := in.Install(ctx, Request{Manifest: m, Dir: dir})
		if !errors.Is(err, ErrStagedChanged) {
			t.Fatalf("install: %v, want ErrStagedChanged", err)
		}
		if _, serr := os.Stat(p); !os.IsNotExist(serr) {
			t.Fatalf("the tampered file is still there: %v", serr)
		}
		if len(r.calls) != 0 {
			t.Fatalf("commands ran: %v", r.calls)
		}
	})

	t.Run("not a kernel package", func(t *testing.T) {
		root := newRoot(t)
		deb := buildDeb(t, debSpec{release: rel, pkg: "linux-headers-" + rel, version: "9.9.1-1"})
		m, dir := stageFiles(t, release.KindDeb, rel, deb)
		in, _ := newInstaller(t, root, nil)
		if _, err := in.Install(ctx, Request{Manifest: m, Dir: dir}); err == nil || !strings.Contains(err.Error(), "not a linux-image package") {
			t.Fatalf("install: %v", err)
		}
	})
}

// TestSpaceRefused checks the free-space gate names the file system and
// the numbers, and that nothing is installed.
func TestSpaceRefused(t *testing.T) {
	const rel = "9.9.1-1-kroll"
	ctx := context.Background()
	root := newRoot(t)
	deb := buildDeb(t, debSpec{release: rel, version: "9.9.1-1"})
	m, dir := stageFiles(t, release.KindDeb, rel, deb)
	in, r := newInstaller(t, root, func(c *Config) { c.MinFreeBoot = 1 << 60 })
	_, err := in.Install(ctx, Request{Manifest: m, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "not enough free space on the file system of "+filepath.Join(root, "boot")) ||
		!strings.Contains(err.Error(), "MiB available, need") {
		t.Fatalf("install: %v", err)
	}
	for _, c := range r.ran("dpkg") {
		if strings.Contains(c, "--install") {
			t.Fatalf("dpkg ran: %s", c)
		}
	}
}

// TestParseRelation covers the dependency syntax dpkg uses.
func TestParseRelation(t *testing.T) {
	for _, tc := range []struct{ in, name, op, ver string }{
		{"kmod", "kmod", "", ""},
		{" linux-base (>= 4.3~) ", "linux-base", ">=", "4.3~"},
		{"initramfs-tools (>= 0.120+deb8u2)", "initramfs-tools", ">=", "0.120+deb8u2"},
		{"libc6:any (<< 3)", "libc6", "<<", "3"},
		{"foo (= 1.0) [amd64]", "foo", "=", "1.0"},
		{"foo (< 2)", "foo", "<=", "2"},
		{"foo <!nocheck>", "foo", "", ""},
	} {
		n, op, v := parseRelation(tc.in)
		if n != tc.name || op != tc.op || v != tc.ver {
			t.Errorf("parseRelation(%q) = %q %q %q, want %q %q %q", tc.in, n, op, v, tc.name, tc.op, tc.ver)
		}
	}
}

// TestCheckRelease refuses releases that are not plain file-name parts.
func TestCheckRelease(t *testing.T) {
	for _, tc := range []struct {
		rel string
		ok  bool
	}{
		{"6.1.0-56-amd64", true}, {"6.12.117+deb12-amd64", true}, {"amd64", false}, {"", false},
		{"6.1/../../etc", false}, {"6.1 x", false}, {"6.1.0\n", false},
	} {
		if err := checkRelease(tc.rel); (err == nil) != tc.ok {
			t.Errorf("checkRelease(%q) = %v, want ok=%v", tc.rel, err, tc.ok)
		}
	}
}
