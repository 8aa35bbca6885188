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
			res, err := in.Install(ctx, Request{Manifest: m, Dir: dir, Vmlinuz: stagedVmlinuz(dir, rel), Running: "9.9.0-1-kroll"})
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
		_, err := in.Install(ctx, Request{Manifest: m, Dir: dir, Vmlinuz: stagedVmlinuz(dir, rel)})
		if err == nil || !strings.Contains(err.Error(), "update-initramfs: failed for /boot/initrd.img-"+rel) {
			t.Fatalf("first install: %v, want the postinst's error", err)
		}
		if got := dpkgStatus(t, root, "linux-image-"+rel); got != "half-configured 9.9.1-1" {
			t.Fatalf("after the failure dpkg status %q", got)
		}
		if _, err := in.Install(ctx, Request{Manifest: m, Dir: dir, Vmlinuz: stagedVmlinuz(dir, rel)}); err != nil {
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
			t.Fatalf("%v: %s", err, out.Combined)
		}
		deb := buildDeb(t, debSpec{release: rel, version: "9.9.1-1", depends: "kroll-test-base (>= 0.9), kroll-test-missing | kroll-test-other, kroll-test-base (>= 2.0)"})
		m, dir := stageFiles(t, release.KindDeb, rel, deb)
		in, r := newInstaller(t, root, nil)
		_, err := in.Install(ctx, Request{Manifest: m, Dir: dir, Vmlinuz: stagedVmlinuz(dir, rel)})
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
		_, err := in.Install(ctx, Request{Manifest: m, Dir: dir, Vmlinuz: stagedVmlinuz(dir, rel)})
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
		if _, err := in.Install(ctx, Request{Manifest: m, Dir: dir, Vmlinuz: stagedVmlinuz(dir, rel)}); err == nil || !strings.Contains(err.Error(), "not a linux-image package") {
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
	_, err := in.Install(ctx, Request{Manifest: m, Dir: dir, Vmlinuz: stagedVmlinuz(dir, rel)})
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

// TestInstalledKernelChecked: the kernel image on /boot is checked
// against the signed release, not trusted because a package of the same
// version is installed (deb), and a staged kernel or initrd that changed
// after it was unpacked from the verified bundle is not installed.
func TestInstalledKernelChecked(t *testing.T) {
	need(t, "dpkg")
	need(t, "depmod")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, root string) error
		want string
	}{
		{"deb installed, image changed on /boot", func(t *testing.T, root string) error {
			const rel = "9.9.1-1-kroll"
			deb := buildDeb(t, debSpec{release: rel, version: "9.9.1-1"})
			m, dir := stageFiles(t, release.KindDeb, rel, deb)
			in, _ := newInstaller(t, root, nil)
			req := Request{Manifest: m, Dir: dir, Vmlinuz: stagedVmlinuz(dir, rel), Running: "9.9.0-1-kroll"}
			if _, err := in.Install(ctx, req); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "boot/vmlinuz-"+rel), []byte("another kernel"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := in.Install(ctx, req)
			return err
		}, "boot/vmlinuz-9.9.1-1-kroll is not the kernel image of the verified package"},
		{"bundle kernel changed after staging", func(t *testing.T, root string) error {
			req := stageBundle(t, "module v1", true)
			if err := os.WriteFile(req.Vmlinuz, []byte("kernel swapped"), 0o644); err != nil {
				t.Fatal(err)
			}
			in, _ := newInstaller(t, root, nil)
			_, err := in.Install(ctx, req)
			return err
		}, "root/vmlinuz: staged file changed since it was verified"},
		{"bundle initrd changed after staging", func(t *testing.T, root string) error {
			req := stageBundle(t, "module v1", true)
			if err := os.WriteFile(req.Initrd, []byte("initrd swapped"), 0o644); err != nil {
				t.Fatal(err)
			}
			in, _ := newInstaller(t, root, nil)
			_, err := in.Install(ctx, req)
			return err
		}, "root/initrd.img: staged file changed since it was verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t)
			err := tc.run(t, root)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("install: %v, want %q", err, tc.want)
			}
			if strings.HasPrefix(tc.name, "bundle") {
				if !errors.Is(err, ErrStagedChanged) {
					t.Errorf("error %v does not wrap ErrStagedChanged", err)
				}
				for _, f := range []string{"boot/vmlinuz-" + brel, "boot/initrd.img-" + brel} {
					if got, err := os.ReadFile(filepath.Join(root, f)); err == nil && strings.Contains(string(got), "swapped") {
						t.Errorf("%s installed from the changed staged file", f)
					}
				}
			}
		})
	}
}

// scriptRunner answers every command with fixed standard output.
type scriptRunner struct{ stdout string }

func (r scriptRunner) Run(context.Context, []string, string, ...string) (Output, error) {
	return Output{Stdout: []byte(r.stdout), Combined: []byte(r.stdout)}, nil
}

// TestPkgStateOutput reads dpkg-query's answers, among them the one for a
// package whose first install failed while unpacking: "not-installed"
// with an empty version (every retry failed on it before).
func TestPkgStateOutput(t *testing.T) {
	for _, tc := range []struct {
		out, status, version, err string
	}{
		{out: "installed\t6.1.170-3\n", status: "installed", version: "6.1.170-3"},
		{out: "not-installed\t\n", status: "not-installed"},
		{out: "config-files\t6.1.170-3\n", status: "config-files", version: "6.1.170-3"},
		{out: "half-configured\t6.1.192-3\n", status: "half-configured", version: "6.1.192-3"},
		{out: "\n", err: "unexpected output"},
		{out: "installed\t1\ninstalled\t2\n", err: "unexpected output"},
	} {
		in := &Installer{cfg: Config{Runner: scriptRunner{tc.out}}}
		got, err := in.pkgState(context.Background(), "linux-image-x")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %+v, %v; want error %q", tc.out, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.status != tc.status || got.version != tc.version {
			t.Errorf("%q: %+v, %v; want %s %q", tc.out, got, err, tc.status, tc.version)
		}
	}
}
