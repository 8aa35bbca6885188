package install

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCleanup installs four kernel packages, a meta-package and a -dbg
// package with real dpkg, plus a bundle kernel kroll installed and a
// module tree it did not, and checks that only the kernels that are none
// of running, previous and target go, each the right way.
func TestCleanup(t *testing.T) {
	need(t, "dpkg")
	ctx := context.Background()
	rels := []string{"9.9.1-kroll", "9.9.2-kroll", "9.9.3-kroll", "9.9.4-kroll"}

	setup := func(t *testing.T) (string, *Installer, *recRunner) {
		root := newRoot(t)
		var debs []string
		for _, rel := range rels {
			debs = append(debs, buildDeb(t, debSpec{release: rel, version: rel + "-1"}))
		}
		debs = append(debs,
			buildDeb(t, debSpec{release: "amd64", pkg: "linux-image-amd64", version: "1", noKernel: true, postinst: "true\n"}),
			buildDeb(t, debSpec{release: "9.9.1-kroll-dbg", version: "1", noKernel: true, postinst: "true\n"}))
		if out, err := (ExecRunner{}).Run(ctx, nil, "dpkg", append([]string{"--root=" + root, "--install"}, debs...)...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		in, r := newInstaller(t, root, func(c *Config) { c.LookPath = func(string) (string, error) { return "/usr/bin/x", nil } })
		// A bundle kernel kroll installed, and a tree it did not.
		for _, f := range []string{"boot/vmlinuz-9.9.0-b", "boot/initrd.img-9.9.0-b", "lib/modules/9.9.0-b/kernel/x.ko", "lib/modules/9.9.7-other/kernel/y.ko"} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, rec := range []Record{
			{Release: "9.9.0-b", Method: methodBundle, Files: []string{"boot/vmlinuz-9.9.0-b", "boot/initrd.img-9.9.0-b"}, Modules: "lib/modules/9.9.0-b", Complete: true},
			{Release: "9.9.3-kroll", Method: methodDpkg, Package: "linux-image-9.9.3-kroll", RunningAtInstall: "9.9.2-kroll", Complete: true},
		} {
			if err := in.putRecord(rec); err != nil {
				t.Fatal(err)
			}
		}
		return root, in, r
	}

	for _, tc := range []struct {
		name        string
		keep        Keep
		wantRemoved []string
		wantErr     string
	}{
		{name: "previous from the journal", keep: Keep{Running: "9.9.3-kroll", Previous: "9.9.2-kroll", Target: "9.9.4-kroll"},
			wantRemoved: []string{"9.9.0-b", "linux-image-9.9.1-kroll"}},
		{name: "previous from the install record", keep: Keep{Running: "9.9.3-kroll", Target: "9.9.4-kroll"},
			wantRemoved: []string{"9.9.0-b", "linux-image-9.9.1-kroll"}},
		{name: "previous unknown removes nothing", keep: Keep{Running: "9.9.2-kroll", Target: "9.9.4-kroll"},
			wantErr: "the kernel before 9.9.2-kroll is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, in, r := setup(t)
			removed, err := in.Cleanup(ctx, tc.keep)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || len(removed) != 0 || len(r.ran("dpkg")) != 0 {
					t.Fatalf("cleanup = %v, %v (dpkg ran %q), want %q and nothing removed", removed, err, r.ran("dpkg"), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(removed)
			if !slices.Equal(removed, tc.wantRemoved) {
				t.Fatalf("removed %q, want %q", removed, tc.wantRemoved)
			}
			for pkg, want := range map[string]string{
				"linux-image-9.9.1-kroll": "gone", "linux-image-9.9.2-kroll": "installed", "linux-image-9.9.3-kroll": "installed",
				"linux-image-9.9.4-kroll": "installed", "linux-image-amd64": "installed", "linux-image-9.9.1-kroll-dbg": "installed",
			} {
				got := dpkgStatus(t, root, pkg)
				if want == "gone" && strings.Contains(got, "no packages found matching") {
					continue
				}
				if !strings.HasPrefix(got, want+" ") {
					t.Errorf("%s: %q, want %s", pkg, got, want)
				}
			}
			for f, want := range map[string]bool{
				"boot/vmlinuz-9.9.0-b": false, "lib/modules/9.9.0-b": false, "lib/modules/9.9.7-other": true,
				"boot/vmlinuz-9.9.1-kroll": false, "boot/vmlinuz-9.9.2-kroll": true, "boot/vmlinuz-9.9.4-kroll": true,
			} {
				if _, err := os.Stat(filepath.Join(root, f)); (err == nil) != want {
					t.Errorf("%s exists=%v, want %v", f, err == nil, want)
				}
			}
			if got := readFile(t, filepath.Join(root, "var/log/kroll-test-scripts")); !strings.Contains(got, "postrm 9.9.1-kroll purge") {
				t.Errorf("the purged package's postrm did not run: %q", got)
			}
			st, err := in.loadState()
			if err != nil {
				t.Fatal(err)
			}
			if st.Kernels["9.9.0-b"] != nil || st.Kernels["9.9.3-kroll"] == nil {
				t.Errorf("records after cleanup: %v", st.Kernels)
			}
		})
	}
}
