package stage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kroll-dev/kroll/pkg/release"
)

// testKernel is the kernel release of the synthetic packages.
const testKernel = "6.12.117+deb12-amd64"

// entry is one tar entry of a synthetic archive.
type entry struct {
	name     string
	typ      byte
	body     string
	link     string
	size     int64 // header size when > 0 and body is empty (oversize)
	truncate bool  // cut the archive in the middle of this entry's body
}

// buildTar writes the entries as a tar stream.
func buildTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644, ModTime: time.Unix(1700000000, 0)}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.size > 0 {
			h.Size = e.size
		}
		if e.truncate {
			h.Size = int64(len(e.body)) + 4096
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.truncate {
			tw.Flush()
			buf.WriteString(e.body)
			return buf.Bytes()
		}
		if e.size > 0 {
			// Only the header matters for the oversize check.
			return buf.Bytes()
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// xzBytes compresses b with xz.
func xzBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzBytes compresses b with gzip.
func gzBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// arMemberBytes returns one ar member (header, body, padding).
func arMemberBytes(name string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 1700000000, 0, 0, "100644", len(body))
	b.Write(body)
	if len(body)%2 == 1 {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// buildDeb returns a .deb whose data.tar.xz holds the entries.
func buildDeb(t testing.TB, entries []entry) []byte {
	t.Helper()
	return buildDebZ(t, ".xz", entries)
}

// compress compresses b as the suffix ext says ("" for none, ".gz",
// ".xz", ".zst").
func compress(t testing.TB, ext string, b []byte) []byte {
	t.Helper()
	switch ext {
	case "":
		return b
	case ".gz":
		return gzBytes(t, b)
	case ".xz":
		return xzBytes(t, b)
	case ".zst":
		return zstBytes(t, b)
	}
	t.Fatalf("compress: unknown suffix %q", ext)
	return nil
}

// zstBytes compresses b with zstd.
func zstBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// debBytes returns a .deb made of debian-binary, a control.tar and the
// data.tar member named "data.tar"+ext with body data (already
// compressed as ext says). The control.tar is compressed as ext says
// when compress knows ext, with xz otherwise.
func debBytes(t testing.TB, ext string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(arMagic)
	b.Write(arMemberBytes("debian-binary", []byte("2.0\n")))
	cext := ext
	if cext != "" && cext != ".gz" && cext != ".xz" && cext != ".zst" {
		cext = ".xz" // a data.tar compression the stager refuses
	}
	b.Write(arMemberBytes("control.tar"+cext, compress(t, cext, buildTar(t, []entry{{name: "./control", body: "Package: linux-image\n"}}))))
	b.Write(arMemberBytes("data.tar"+ext, data))
	return b.Bytes()
}

// buildDebZ returns a .deb whose control.tar and data.tar are compressed
// as ext says and whose data.tar holds the entries.
func buildDebZ(t testing.TB, ext string, entries []entry) []byte {
	t.Helper()
	return debBytes(t, ext, compress(t, ext, buildTar(t, entries)))
}

// kernelEntries is the content of a well-formed synthetic kernel package.
func kernelEntries() []entry {
	return []entry{
		{name: "./", typ: tar.TypeDir},
		{name: "./boot/", typ: tar.TypeDir},
		{name: "./boot/System.map-" + testKernel, body: "map"},
		{name: "./boot/config-" + testKernel, body: "CONFIG_X=y\n"},
		{name: "./boot/vmlinuz-" + testKernel, body: "MZ kernel image bytes"},
		{name: "./lib/modules/" + testKernel + "/kernel/foo.ko.xz", body: "module"},
		{name: "./usr/share/doc/linux-image/changelog.gz", body: "doc"},
	}
}

// server serves named artifacts and records the requests it got.
type server struct {
	*httptest.Server
	mu      sync.Mutex
	files   map[string][]byte
	ranges  []string
	handler func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool
}

// newServer starts a loopback server for files; handler, when set, may
// take over request n (0-based) by returning true.
func newServer(t testing.TB, files map[string][]byte, handler func(w http.ResponseWriter, r *http.Request, n int, body []byte) bool) *server {
	s := &server{files: files, handler: handler}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := len(s.ranges)
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		body, ok := s.files[r.URL.Path[1:]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if s.handler != nil && s.handler(w, r, n, body) {
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(s.Close)
	return s
}

// requests returns the Range headers of the requests so far.
func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// cutHalf writes the full Content-Length but only half of body, then
// closes the connection.
func cutHalf(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// signer signs manifests for tests.
type signer struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

// newSigner generates a key.
func newSigner(t testing.TB) signer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{pub, priv}
}

// artifact describes body served at base/name.
func artifact(base, name string, body []byte) release.Artifact {
	sum := sha256.Sum256(body)
	return release.Artifact{Name: name, URL: base + "/" + name, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
}

// manifest returns the signed manifest of a release.
func (s signer) manifest(t testing.TB, id string, kind release.Kind, kernel string, arts ...release.Artifact) (m, sig []byte) {
	t.Helper()
	rm := release.Manifest{
		ID: id, Line: "6.12", KernelVersion: kernel, Kind: kind,
		Artifacts: arts, Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	}
	b, err := rm.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sg, err := release.SignManifest(s.priv, rm)
	if err != nil {
		t.Fatal(err)
	}
	return b, sg.Marshal()
}
