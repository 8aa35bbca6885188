package api

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// signedRelease returns a canonical manifest of line 6.1 and its signature
// by the key from seed.
func signedRelease(t *testing.T, seed byte, id string) (ed25519.PublicKey, wire.ReleaseAddRequest) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	m := release.Manifest{
		ID: id, Line: "6.1", KernelVersion: "6.1.0-56-amd64", UpstreamVersion: "6.1.192", Kind: release.KindDeb,
		Artifacts: []release.Artifact{{Name: "linux-image.deb", URL: "http://127.0.0.1:1/k.deb", Size: 10,
			SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	}
	canon, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := release.SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	return priv.Public().(ed25519.PublicKey), wire.ReleaseAddRequest{Manifest: canon, Signature: sig.Marshal()}
}

func TestReleasesAndDesiredState(t *testing.T) {
	e := newEnv(t)
	pub, req := signedRelease(t, 7, "6.1.192-kroll.1")
	_, forged := signedRelease(t, 8, "6.1.192-kroll.1")

	// Without trusted keys nothing is accepted.
	checkError(t, e.do("POST", wire.PathReleases, tokOperate, req), http.StatusForbidden, wire.KindForbidden)
	e.api.cfg.ReleaseKeys = []ed25519.PublicKey{pub}

	checkError(t, e.do("POST", wire.PathReleases, tokRead, req), http.StatusForbidden, wire.KindForbidden)
	checkError(t, e.do("POST", wire.PathReleases, tokOperate, forged), http.StatusBadRequest, wire.KindInvalidRequest)
	tampered := req
	tampered.Manifest = bytes.Replace(req.Manifest, []byte("6.1.0-56-amd64"), []byte("6.1.0-57-amd64"), 1)
	checkError(t, e.do("POST", wire.PathReleases, tokOperate, tampered), http.StatusBadRequest, wire.KindInvalidRequest)
	checkError(t, e.do("POST", wire.PathReleases, tokOperate, `{"manifest":{},"signature":{}}`), http.StatusBadRequest, wire.KindInvalidRequest)

	rel := decodeOK[wire.Release](t, e.do("POST", wire.PathReleases, tokOperate, req))
	if rel.ID != "6.1.192-kroll.1" || rel.Line != "6.1" || rel.KeyID == "" {
		t.Fatalf("added release = %+v", rel)
	}
	mustOK(t, e.do("POST", wire.PathReleases, tokOperate, req)) // idempotent

	e.setDC("fra1", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	// Targeting needs a known release.
	checkError(t, e.do("PUT", wire.PathDatacenter+"fra1", tokOperate, wire.DatacenterUpdate{TargetRelease: ptr("nope")}), http.StatusNotFound, wire.KindNotFound)
	dc := e.setDC("fra1", wire.DatacenterUpdate{TargetRelease: ptr(rel.ID)})
	if dc.Targets["6.1"] != rel.ID {
		t.Fatalf("targets = %v", dc.Targets)
	}

	beat := func(host, line string) wire.DesiredState {
		return decodeOK[wire.DesiredState](t, e.do("POST", wire.PathHeartbeat, tokAgent,
			wire.Heartbeat{HostID: host, Datacenter: "fra1", KernelLine: line, Kernel: "6.1.0-47-amd64", Phase: wire.PhaseIdle}))
	}
	if ds := beat("h1", "6.1"); ds.Release == nil || ds.Release.ID != rel.ID || !bytes.Equal(ds.Release.Manifest, req.Manifest) {
		t.Fatalf("6.1 host desired state = %+v", ds)
	}
	if ds := beat("h2", "6.12"); ds.Release != nil {
		t.Fatalf("6.12 host got release %s of line 6.1", ds.Release.ID)
	}
	list := decodeOK[[]wire.Release](t, e.do("GET", wire.PathReleases, tokRead, nil))
	if len(list) != 1 || len(list[0].Targeted) != 1 || list[0].Targeted[0] != "fra1" {
		t.Fatalf("release list = %+v", list)
	}
	e.setDC("fra1", wire.DatacenterUpdate{UntargetLine: ptr("6.1")})
	if ds := beat("h1", "6.1"); ds.Release != nil {
		t.Fatalf("cleared target still sent: %+v", ds.Release)
	}
}
