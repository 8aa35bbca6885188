package vm

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// DebRelease serves kernel k's Debian package over HTTP on the host's
// loopback until the test ends and returns release id's manifest for it
// (kernel line line), signed with priv: the URL is how a guest reaches the
// server (HostAddr).
func DebRelease(t testing.TB, priv ed25519.PrivateKey, id, line string, k *Kernel) wire.ReleaseAddRequest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(k.Deb)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, k.Deb) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	f, err := os.Open(k.Deb)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	m := release.Manifest{
		ID: id, Line: line, KernelVersion: k.Release, UpstreamVersion: strings.SplitN(k.PackageVersion, "-", 2)[0], Kind: release.KindDeb,
		Artifacts: []release.Artifact{{Name: name, URL: "http://" + HostAddr + ":" + port + "/" + name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}},
		Created:   time.Now().UTC().Truncate(time.Second),
	}
	canon, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := release.SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	return wire.ReleaseAddRequest{Manifest: canon, Signature: sig.Marshal()}
}
