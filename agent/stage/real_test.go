package stage

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/test/vm"
)

// TestRealDebianPackage stages the real linux-image .deb cached by the VM
// harness and compares the extracted vmlinuz with dpkg -x's.
func TestRealDebianPackage(t *testing.T) {
	k := vm.TestKernel(t, vm.Line612)
	if k.Deb == "" {
		vm.Unavailable(t, os.ErrNotExist)
	}
	f, err := os.Open(k.Deb)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(k.Deb)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+name {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, k.Deb)
	}))
	defer srv.Close()
	sg := newSigner(t)
	m, sig := sg.manifest(t, "6.12-real.1", release.KindDeb, k.Release, release.Artifact{
		Name: name, URL: srv.URL + "/" + name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)),
	})
	s, err := New(Config{Dir: t.TempDir(), Trusted: []ed25519.PublicKey{sg.pub}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stage(t.Context(), m, sig)
	if err != nil {
		t.Fatal(err)
	}
	if st.KernelRelease != k.Release {
		t.Errorf("KernelRelease = %q, want %q", st.KernelRelease, k.Release)
	}
	got, err := os.ReadFile(st.Vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(k.Vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("staged vmlinuz (%d bytes) differs from dpkg -x's %s (%d bytes)", len(got), k.Vmlinuz, len(want))
	}
}
