package stage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/release"
)

// assertLinksInside fails when a symlink under root resolves outside
// root: each link is resolved the way the kernel does, component by
// component from its physical directory, following the symlinks it
// passes through. Directories are walked without following symlinks, so
// every link is seen at its physical place.
func assertLinksInside(t testing.TB, root string) {
	t.Helper()
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(realRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		if where, ok := resolveInside(realRoot, p, 0); !ok {
			target, _ := os.Readlink(p)
			t.Errorf("symlink %s -> %s resolves outside %s (reaches %s)", p, target, realRoot, where)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// resolveInside resolves the symlink at the physical path link and
// reports where it leads and whether every step stayed inside root.
// Dangling links resolve as far as they exist; loops count as inside
// (the kernel refuses them with ELOOP).
func resolveInside(root, link string, depth int) (string, bool) {
	if depth > 40 {
		return link, true
	}
	target, err := os.Readlink(link)
	if err != nil || filepath.IsAbs(target) {
		return target, false
	}
	cur := filepath.Dir(link)
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
		default:
			cur = filepath.Join(cur, c)
		}
		if r, err := filepath.Rel(root, cur); err != nil || r != "." && !filepath.IsLocal(r) {
			return cur, false
		}
		if fi, err := os.Lstat(cur); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			next, ok := resolveInside(root, cur, depth+1)
			if !ok {
				return next, false
			}
			cur = next
		}
	}
	return cur, true
}

// TestSymlinkParents: an entry below an extracted symlink, or a symlink
// whose target climbs back out of a symlinked directory, is refused; the
// checks are not only lexical.
func TestSymlinkParents(t *testing.T) {
	vm := entry{name: "./boot/vmlinuz-" + testKernel, body: "kernel"}
	mod := "./lib/modules/" + testKernel + "/"
	tests := []struct {
		name    string
		entries []entry
		want    string // "" = accepted
	}{
		{"link then entry below it", []entry{vm,
			{name: "./lib/modules/up", typ: tar.TypeSymlink, link: ".."},
			{name: "./lib/modules/up/esc", typ: tar.TypeSymlink, link: "../../etc/passwd"}},
			`entry "./lib/modules/up/esc": parent "lib/modules/up" is a symlink`},
		{"chain of links", []entry{vm,
			{name: "./lib/modules/up", typ: tar.TypeSymlink, link: ".."},
			{name: "./lib/modules/up/up", typ: tar.TypeSymlink, link: ".."},
			{name: "./lib/modules/up/up/up/etc/passwd", body: "x"}},
			`entry "./lib/modules/up/up": parent "lib/modules/up" is a symlink`},
		{"regular file below a link", []entry{vm,
			{name: mod + "kernel", typ: tar.TypeSymlink, link: "../../.."},
			{name: mod + "kernel/foo.ko", body: "m"}},
			`parent "lib/modules/` + testKernel + `/kernel" is a symlink`},
		{"directory below a link", []entry{vm,
			{name: mod + "d", typ: tar.TypeSymlink, link: "."},
			{name: mod + "d/sub/", typ: tar.TypeDir}},
			`parent "lib/modules/` + testKernel + `/d" is a symlink`},
		{"hardlink placed below a link", []entry{vm,
			{name: mod + "f", body: "m"},
			{name: mod + "d", typ: tar.TypeSymlink, link: ".."},
			{name: mod + "d/g", typ: tar.TypeLink, link: "lib/modules/" + testKernel + "/f"}},
			`parent "lib/modules/` + testKernel + `/d" is a symlink`},
		{"target through a link, link first", []entry{vm,
			{name: "./lib/modules/up", typ: tar.TypeSymlink, link: ".."},
			{name: "./lib/modules/esc", typ: tar.TypeSymlink, link: "up/../../x"}},
			`entry "./lib/modules/esc": symlink to "up/../../x" has ".." after another path component`},
		{"target through a link, link last", []entry{vm,
			{name: "./lib/modules/esc", typ: tar.TypeSymlink, link: "up/../../x"},
			{name: "./lib/modules/up", typ: tar.TypeSymlink, link: ".."}},
			`entry "./lib/modules/esc": symlink to "up/../../x" has ".." after another path component`},
		{"leading dotdot link is fine", []entry{vm,
			{name: mod + "kernel/foo.ko", body: "m"},
			{name: mod + "alias", typ: tar.TypeSymlink, link: "../" + testKernel + "/kernel/foo.ko"},
			{name: mod + "up", typ: tar.TypeSymlink, link: ".."}}, ""},
		{"link into a real directory, files beside it", []entry{vm,
			{name: mod + "kernel/a/b.ko", body: "m"},
			{name: mod + "kernel/c", typ: tar.TypeSymlink, link: "a/./b.ko"},
			{name: mod + "kernel/a/d.ko", body: "m"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deb := buildDeb(t, tt.entries)
			srv := newServer(t, map[string][]byte{"k.deb": deb}, nil)
			k := newSigner(t)
			m, sig := k.manifest(t, "r1", release.KindDeb, testKernel, artifact(srv.URL, "k.deb", deb))
			top := t.TempDir()
			s, err := New(Config{Dir: filepath.Join(top, "staging"), Trusted: []ed25519.PublicKey{k.pub}, Modules: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Stage(t.Context(), m, sig)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
			assertConfined(t, top, "staging")
			assertLinksInside(t, top)

			// The same entries straight into a directory: nothing may
			// point outside it even where extraction stops part-way.
			root := filepath.Join(t.TempDir(), "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err = extractTar(context.Background(), bytes.NewReader(buildTar(t, tt.entries)), root, debSelect(true), fuzzLimits)
			if (err == nil) != (tt.want == "") {
				t.Fatalf("extractTar: %v", err)
			}
			assertLinksInside(t, root)
		})
	}
}

func TestDotdotLeading(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"..", true}, {"../..", true}, {"../../a/b", true}, {"./../a", true}, {"a", true}, {"a/./b", true},
		{"a/..", false}, {"a/../b", false}, {"../a/../b", false}, {"up/../../x", false}, {"a//..", false},
	} {
		if got := dotdotLeading(tc.in); got != tc.want {
			t.Errorf("dotdotLeading(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
