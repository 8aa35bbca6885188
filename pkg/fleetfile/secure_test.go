package fleetfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// certPair returns a self-signed client certificate and its key, PEM.
func certPair(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "olga"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestCredentialFiles: the fleet file, the token file and the client key
// are checked on the file opened: owner (the current user or root), mode
// (the token and the key 0600 or stricter, the fleet file not writable by
// others), the directory of the file read (not writable by others unless
// sticky), and through a symbolic link the file it leads to.
func TestCredentialFiles(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test changes file owners: run it as root")
	}
	const nobody = 65534
	certPEM, keyPEM := certPair(t)
	fleetTOML := "[regions.eu]\ncoordinators = [\"https://c1.eu:8001\"]\n"
	type file struct {
		mode    os.FileMode
		uid     int // -1: the current user
		dirMode os.FileMode
		link    bool // reached through a symbolic link from a safe directory
	}
	ok := file{mode: 0o600, uid: -1, dirMode: 0o700}
	for _, tc := range []struct {
		name  string
		which string // "fleet", "token", "key"
		f     file
		err   string
	}{
		{"fleet ok", "fleet", ok, ""},
		{"fleet 0644 ok", "fleet", file{mode: 0o644, uid: -1, dirMode: 0o755}, ""},
		{"fleet of another user", "fleet", file{mode: 0o644, uid: nobody, dirMode: 0o755}, "owned by uid 65534"},
		{"fleet in a writable directory", "fleet", file{mode: 0o600, uid: -1, dirMode: 0o777}, "others may replace the file"},
		{"fleet in a sticky directory", "fleet", file{mode: 0o600, uid: -1, dirMode: 0o777 | os.ModeSticky}, ""},
		{"fleet through a link to a writable file", "fleet", file{mode: 0o666, uid: -1, dirMode: 0o700, link: true}, "mode 0666 lets others change"},
		{"token ok", "token", ok, ""},
		{"token of another user", "token", file{mode: 0o600, uid: nobody, dirMode: 0o700}, "owned by uid 65534"},
		{"token in a group-writable directory", "token", file{mode: 0o600, uid: -1, dirMode: 0o770}, "directory"},
		{"token through a link to a readable file", "token", file{mode: 0o644, uid: -1, dirMode: 0o700, link: true}, "mode 0644 lets others read the token"},
		{"token through a link into a writable directory", "token", file{mode: 0o600, uid: -1, dirMode: 0o777, link: true}, "others may replace the file"},
		{"token through a link to another user's file", "token", file{mode: 0o600, uid: nobody, dirMode: 0o700, link: true}, "owned by uid 65534"},
		{"key ok", "key", ok, ""},
		{"key 0400 ok", "key", file{mode: 0o400, uid: -1, dirMode: 0o700}, ""},
		{"key group-readable", "key", file{mode: 0o640, uid: -1, dirMode: 0o700}, "mode 0640 lets others read the private key (run chmod 600"},
		{"key world-readable", "key", file{mode: 0o644, uid: -1, dirMode: 0o700}, "mode 0644"},
		{"key of another user", "key", file{mode: 0o600, uid: nobody, dirMode: 0o700}, "owned by uid 65534"},
		{"key in a writable directory", "key", file{mode: 0o600, uid: -1, dirMode: 0o777}, "others may replace the file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			content := map[string]string{"fleet": fleetTOML, "token": "operator-token-0123\n", "key": string(keyPEM)}[tc.which]
			p := filepath.Join(dir, tc.which)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.f.uid >= 0 {
				if err := os.Chown(p, tc.f.uid, -1); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(p, tc.f.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.f.dirMode); err != nil {
				t.Fatal(err)
			}
			use := p
			if tc.f.link {
				safe := filepath.Join(base, "safe")
				if err := os.Mkdir(safe, 0o700); err != nil {
					t.Fatal(err)
				}
				use = filepath.Join(safe, tc.which)
				if err := os.Symlink(p, use); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			switch tc.which {
			case "fleet":
				_, err = Load(use)
			case "token":
				_, err = Region{Name: "eu", Coordinators: []string{"https://c1.eu:8001"}, TokenFile: use, Timeout: time.Second}.Client()
			case "key":
				cert := filepath.Join(base, "cert.pem")
				if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
					t.Fatal(err)
				}
				_, err = Region{Name: "eu", Coordinators: []string{"https://c1.eu:8001"}, Cert: cert, Key: use, Timeout: time.Second}.Client()
			}
			if tc.err == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want …%s…", err, tc.err)
			}
		})
	}
}
