package feed_test

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/release"
)

// testKey returns a deterministic ed25519 key.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// aptRepo is a real Debian repository in a temporary directory: .debs
// built by dpkg-deb, the Packages index by dpkg-scanpackages, served over
// HTTP by the test.
type aptRepo struct {
	t    *testing.T
	dir  string
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newAptRepo(t *testing.T) *aptRepo {
	t.Helper()
	for _, tool := range []string{"dpkg-deb", "dpkg-scanpackages"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (make deps installs dpkg-dev): %v", tool, err)
		}
	}
	r := &aptRepo{t: t, dir: t.TempDir(), hits: map[string]int{}}
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
	t := r.t
	t.Helper()
	root := filepath.Join(t.TempDir(), name)
	must(t, os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "boot"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(fmt.Sprintf(
		"Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: Kroll Tests <tests@example.net>\nDescription: fake kernel image %s\n", name, version, version)), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "boot", "vmlinuz-"+strings.TrimPrefix(name, "linux-image-")), []byte("not a kernel "+version), 0o644))
	filename = fmt.Sprintf("pool/main/l/linux/%s_%s_amd64.deb", name, version)
	out := filepath.Join(r.dir, filename)
	must(t, os.MkdirAll(filepath.Dir(out), 0o755))
	run(t, "", "dpkg-deb", "--root-owner-group", "--build", root, out)
	data, err := os.ReadFile(out)
	must(t, err)
	h := sha256.Sum256(data)
	return filename, int64(len(data)), hex.EncodeToString(h[:])
}

// index regenerates dists/stable/main/binary-amd64/Packages.gz (and the
// plain Packages when plain) with dpkg-scanpackages.
func (r *aptRepo) index(plain bool) {
	t := r.t
	t.Helper()
	cmd := exec.Command("dpkg-scanpackages", "--multiversion", "pool", "/dev/null")
	cmd.Dir = r.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dpkg-scanpackages: %v: %s", err, stderr.String())
	}
	dir := filepath.Join(r.dir, "dists/stable/main/binary-amd64")
	must(t, os.MkdirAll(dir, 0o755))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err = zw.Write(out)
	must(t, err)
	must(t, zw.Close())
	// Replace atomically: the poller may be reading.
	write := func(name string, data []byte) {
		tmp := filepath.Join(dir, "."+name)
		must(t, os.WriteFile(tmp, data, 0o644))
		must(t, os.Rename(tmp, filepath.Join(dir, name)))
	}
	write("Packages.gz", gz.Bytes())
	if plain {
		write("Packages", out)
	}
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
	canon, err := m.Canonical()
	must(t, err)
	var pretty bytes.Buffer
	must(t, json.Indent(&pretty, canon, "", "  "))
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, pretty.Bytes(), 0o644))
	if key == nil {
		return
	}
	sig, err := release.SignManifest(key, m)
	must(t, err)
	must(t, os.WriteFile(path+".sig", append(sig.Marshal(), '\n'), 0o644))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}
