package install

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/release"
)

// TestExecRunnerLocaleAndStreams: commands run in the C locale whatever
// the agent's, and standard output (what is parsed) comes apart from
// standard error (kept for messages).
func TestExecRunnerLocaleAndStreams(t *testing.T) {
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	t.Setenv("LANGUAGE", "de")
	t.Setenv("LANG", "de_DE.UTF-8")
	for _, tt := range []struct {
		name, script, stdout string
		combined             []string
		fails                bool
	}{
		{"locale", `printf '%s|%s|%s\n' "$LC_ALL" "$LANGUAGE" "$LANG"`, "C||C\n", []string{"C||C"}, false},
		{"warning on stderr", `echo 'dpkg-query: warning: files list file for package x missing' >&2; printf 'installed\t1.0\n'`, "installed\t1.0\n", []string{"warning", "installed"}, false},
		{"failure", `echo out; echo 'dpkg: error' >&2; exit 2`, "out\n", []string{"out", "dpkg: error"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ExecRunner{}.Run(context.Background(), nil, "sh", "-c", tt.script)
			if (err != nil) != tt.fails {
				t.Fatalf("err = %v", err)
			}
			if string(out.Stdout) != tt.stdout {
				t.Errorf("stdout %q, want %q", out.Stdout, tt.stdout)
			}
			for _, w := range tt.combined {
				if !strings.Contains(string(out.Combined), w) {
					t.Errorf("combined output %q lacks %q", out.Combined, w)
				}
			}
		})
	}
}

// TestInstallDebWithWarnings: warnings dpkg-query and dpkg-deb print on
// standard error (a damaged database entry of another package) do not
// break what is parsed from their output: the real install, and its
// idempotent re-run, succeed.
func TestInstallDebWithWarnings(t *testing.T) {
	need(t, "dpkg")
	const rel = "9.9.1-1-kroll"
	ctx := context.Background()
	root := newRoot(t)
	deb := buildDeb(t, debSpec{release: rel, version: "9.9.1-1"})
	m, dir := stageFiles(t, release.KindDeb, rel, deb)
	in, r := newInstaller(t, root, nil)
	r.warn = "dpkg-query: warning: files list file for package 'libfoo' missing; assuming package has no files currently installed"
	for i := range 2 {
		res, err := in.Install(ctx, Request{Manifest: m, Dir: dir, Vmlinuz: stagedVmlinuz(dir, rel), Running: "9.9.0-1-kroll"})
		if err != nil {
			t.Fatalf("install %d: %v", i, err)
		}
		if res.Vmlinuz != filepath.Join(root, "boot/vmlinuz-"+rel) {
			t.Fatalf("result %+v", res)
		}
	}
	if len(r.ran("dpkg")) != 1 {
		t.Fatalf("dpkg ran %q", r.ran("dpkg"))
	}
}
