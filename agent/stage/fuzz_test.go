package stage

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// fuzzLimits keeps fuzz inputs from allocating much.
var fuzzLimits = limits{maxEntry: 1 << 20, maxTotal: 4 << 20}

// checkFuzzDir fails unless top holds only root and no symlink under
// root resolves outside it.
func checkFuzzDir(t *testing.T, top string) {
	t.Helper()
	assertConfined(t, top, "root")
	assertLinksInside(t, filepath.Join(top, "root"))
}

// fuzzRoot empties top/root (top is the fuzz target's own directory,
// reused across inputs: a t.TempDir per input slows fuzzing to a crawl)
// and returns it.
func fuzzRoot(t *testing.T, top string) string {
	root := filepath.Join(top, "root")
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func FuzzUnpackDeb(f *testing.F) {
	f.Add(buildDeb(f, kernelEntries()))
	f.Add(buildDeb(f, []entry{{name: "./boot/vmlinuz-x", typ: tar.TypeSymlink, link: "../../etc"}}))
	f.Add(buildDeb(f, []entry{{name: "./boot/vmlinuz-x", body: "k"}, {name: "./boot/config-x", typ: tar.TypeLink, link: "boot/vmlinuz-x"}}))
	for _, ext := range []string{"", ".gz", ".zst"} {
		f.Add(buildDebZ(f, ext, kernelEntries()))
	}
	f.Add(debBytes(f, ".zst", bigWindowZst(buildTar(f, kernelEntries()), 27)))
	f.Add([]byte(arMagic))
	f.Add([]byte(arMagic + "debian-binary   0           0     0     100644  4         `\n2.0\n"))
	top := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		root := fuzzRoot(t, top)
		_, _ = unpackDeb(context.Background(), bytes.NewReader(data), root, debSelect(true), fuzzLimits)
		checkFuzzDir(t, top)
	})
}

func FuzzExtractTar(f *testing.F) {
	f.Add(buildTar(f, kernelEntries()))
	f.Add(buildTar(f, []entry{{name: "lib/modules/x", typ: tar.TypeSymlink, link: "../.."}, {name: "lib/modules/x/y", body: "z"}}))
	f.Add(buildTar(f, []entry{{name: "lib/modules/a", typ: tar.TypeSymlink, link: "."}, {name: "lib/modules/b", typ: tar.TypeLink, link: "lib/modules/a"}}))
	f.Add(buildTar(f, []entry{{name: "boot/vmlinuz-x", body: "abc", truncate: true}}))
	f.Add(buildTar(f, []entry{{name: "lib/modules/up", typ: tar.TypeSymlink, link: ".."}, {name: "lib/modules/up/esc", typ: tar.TypeSymlink, link: "../../etc/passwd"}}))
	f.Add(buildTar(f, []entry{{name: "lib/modules/esc", typ: tar.TypeSymlink, link: "up/../../x"}, {name: "lib/modules/up", typ: tar.TypeSymlink, link: ".."}}))
	top := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		root := fuzzRoot(t, top)
		_, _ = extractTar(context.Background(), bytes.NewReader(data), root, debSelect(true), fuzzLimits)
		checkFuzzDir(t, top)
	})
}

// FuzzDecompress feeds arbitrary bytes, as each compression the stager
// reads, through the decompressor into extractTar: a broken stream is
// an error, never a panic, a hang or a write outside the root.
func FuzzDecompress(f *testing.F) {
	exts := []string{"", ".gz", ".xz", ".zst"}
	tarball := buildTar(f, kernelEntries())
	for i, ext := range exts {
		f.Add(uint8(i), compress(f, ext, tarball))
	}
	f.Add(uint8(3), bigWindowZst(tarball, 27))
	f.Add(uint8(3), zstBytes(f, tarball)[:40])
	top := f.TempDir()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		root := fuzzRoot(t, top)
		r, done, err := decompressor(exts[int(which)%len(exts)], bytes.NewReader(data))
		if err == nil {
			_, _ = extractTar(context.Background(), r, root, debSelect(true), fuzzLimits)
			done()
		}
		checkFuzzDir(t, top)
	})
}
