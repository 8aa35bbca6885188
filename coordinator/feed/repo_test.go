package feed_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/internal/aptrepo"
	"github.com/kroll-dev/kroll/pkg/release"
)

// testKey returns a deterministic ed25519 key.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// aptRepo is a real Debian repository (internal/aptrepo: .debs built by
// dpkg-deb, the Packages index by dpkg-scanpackages) served over HTTP by
// the test, counting the requests.
type aptRepo struct {
	t    *testing.T
	repo *aptrepo.Repo
	dir  string
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newAptRepo(t *testing.T) *aptRepo {
	t.Helper()
	repo, err := aptrepo.New(t.TempDir())
	must(t, err)
	r := &aptRepo{t: t, repo: repo, dir: repo.Dir, hits: map[string]int{}}
	fs := http.FileServer(http.Dir(r.dir))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits[req.URL.Path]++
		r.mu.Unlock()
		fs.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// hitCount returns how often path was requested.
func (r *aptRepo) hitCount(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

// addDeb builds a tiny fake linux-image package with dpkg-deb and returns
// its path relative to the repository (the Packages Filename), size and
// SHA-256.
func (r *aptRepo) addDeb(name, version string) (filename string, size int64, sum string) {
	r.t.Helper()
	deb, err := r.repo.BuildDeb(context.Background(), name, version)
	must(r.t, err)
	return deb.Filename, deb.Size, deb.SHA256
}

// index regenerates the Packages.gz (and the plain Packages when plain)
// with dpkg-scanpackages.
func (r *aptRepo) index(plain bool) {
	r.t.Helper()
	must(r.t, r.repo.Index(context.Background(), plain))
}

// manifest is a valid deb manifest of kernel version ver (e.g.
// "6.12.80-cf1-amd64") for the .deb filename with size and sum.
func manifest(id, ver, filename string, size int64, sum string) release.Manifest {
	base := filepath.Base(filename)
	return release.Manifest{ID: id, Line: ver[:4], KernelVersion: ver, Kind: release.KindDeb,
		Artifacts: []release.Artifact{{Name: base, URL: "https://pkg.example.net/" + filename, Size: size, SHA256: sum}},
		Created:   time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
}

// publish writes m (formatted as a person would, not canonically) next to
// filename as FILENAME.manifest.json and, when key is set, its signature.
func (r *aptRepo) publish(filename string, m release.Manifest, key ed25519.PrivateKey) {
	writeSigned(r.t, filepath.Join(r.dir, filename+".manifest.json"), m, key)
}

// writeSigned writes m at path and, when key is set, path.sig.
func writeSigned(t *testing.T, path string, m release.Manifest, key ed25519.PrivateKey) {
	t.Helper()
	must(t, aptrepo.WriteSigned(path, m, key))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
