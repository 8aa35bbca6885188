package aptrepo_test

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/internal/aptrepo"
	"github.com/kroll-dev/kroll/pkg/release"
)

// TestRepo builds a real repository: two packages by dpkg-deb, one copied
// in, indexed by dpkg-scanpackages; the index (plain and gzip) lists
// each with its file's size and digest, and a published manifest opens
// with its signature (an unsigned one has none).
func TestRepo(t *testing.T) {
	ctx := t.Context()
	repo, err := aptrepo.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := aptrepo.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	copied, err := other.BuildDeb(ctx, "linux-image-6.12.90-cf1-amd64", "6.12.90-2")
	if err != nil {
		t.Fatal(err)
	}
	var debs []aptrepo.Deb
	for _, b := range []struct{ pkg, version string }{
		{"linux-image-6.12.80-cf1-amd64", "6.12.80-1"},
		{"linux-image-6.1.0-57-amd64", "6.1.195-1"},
	} {
		d, err := repo.BuildDeb(ctx, b.pkg, b.version)
		if err != nil {
			t.Fatal(err)
		}
		debs = append(debs, d)
	}
	d, err := repo.AddDeb(ctx, filepath.Join(other.Dir, copied.Filename))
	if err != nil {
		t.Fatal(err)
	}
	if d.Filename != copied.Filename || d.SHA256 != copied.SHA256 || d.Size != copied.Size {
		t.Fatalf("copied deb %+v, built %+v", d, copied)
	}
	debs = append(debs, d)
	if err := repo.Index(ctx, true); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repo.Dir, "dists", aptrepo.Suite, aptrepo.Component, "binary-"+aptrepo.Arch)
	plain, err := os.ReadFile(filepath.Join(dir, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile(filepath.Join(dir, "Packages.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	for name, index := range map[string][]byte{"Packages": plain, "Packages.gz": unzipped} {
		pkgs, err := feed.ParsePackages(bytes.NewReader(index))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := map[string]feed.Package{}
		for _, p := range pkgs {
			got[p.Filename] = p
		}
		if len(got) != len(debs) {
			t.Errorf("%s lists %d packages, want %d:\n%s", name, len(got), len(debs), index)
		}
		for _, d := range debs {
			p, ok := got[d.Filename]
			if !ok || p.Size != d.Size || p.SHA256 != d.SHA256 || !strings.HasPrefix(d.Name(), p.Name+"_"+p.Version+"_") {
				t.Errorf("%s: %s listed as %+v, want %+v", name, d.Filename, p, d)
			}
		}
	}

	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	for _, tc := range []struct {
		name   string
		deb    aptrepo.Deb
		key    ed25519.PrivateKey
		signed bool
	}{
		{"signed", debs[0], key, true},
		{"unsigned", debs[1], nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := release.Manifest{ID: "b-" + tc.name, Line: "6.12", KernelVersion: "6.12.80-cf1-amd64", Kind: release.KindDeb,
				Artifacts: []release.Artifact{tc.deb.Artifact("http://127.0.0.1:9/repo/")}, Created: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
			if err := repo.Publish(tc.deb, m, tc.key); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(repo.Dir, tc.deb.Filename+".manifest.json")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if a := m.Artifacts[0]; a.URL != "http://127.0.0.1:9/repo/"+tc.deb.Filename || a.Name != tc.deb.Name() {
				t.Errorf("artifact %+v", a)
			}
			sig, err := os.ReadFile(path + ".sig")
			if !tc.signed {
				if !os.IsNotExist(err) {
					t.Fatalf("an unsigned manifest has a signature file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := release.Open(data, bytes.TrimSpace(sig), []ed25519.PublicKey{key.Public().(ed25519.PublicKey)})
			if err != nil {
				t.Fatalf("open the published manifest: %v", err)
			}
			if v.Manifest().ID != m.ID {
				t.Errorf("opened %+v", v.Manifest())
			}
		})
	}
}

// TestAddDebRefusesNonPackages: a file that is no .deb is refused with
// its path, and nothing lands in the pool.
func TestAddDebRefusesNonPackages(t *testing.T) {
	repo, err := aptrepo.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, content string }{
		{"text.deb", "not a package"},
		{"empty.deb", ""},
	} {
		path := filepath.Join(t.TempDir(), tc.name)
		if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.AddDeb(t.Context(), path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming it", tc.name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(repo.Dir, "pool")); !os.IsNotExist(err) {
		t.Errorf("the pool exists after refused packages: %v", err)
	}
}

// TestEmptyIndex: a repository without packages has an index, empty (a
// feed polls it before the first build).
func TestEmptyIndex(t *testing.T) {
	repo, err := aptrepo.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Index(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(repo.Dir, "dists", aptrepo.Suite, aptrepo.Component, "binary-"+aptrepo.Arch, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	if pkgs, err := feed.ParsePackages(bytes.NewReader(data)); err != nil || len(pkgs) != 0 {
		t.Fatalf("empty index: %v, %v", pkgs, err)
	}
}
