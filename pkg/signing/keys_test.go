package signing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A key pair made by `openssl genpkey -algorithm ed25519` and
// `openssl pkey -pubout`.
const (
	opensslPrivPEM = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIEc3UEuFZreEBW63Mk+KbQ9gixmTvMs6PQ8/f26hpatF
-----END PRIVATE KEY-----
`
	opensslPubPEM = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAjS3pXH/8cS8GMDBQOYpE1D2n443zV3phBAW3aSy75O4=
-----END PUBLIC KEY-----
`
	// openssl pkeyutl -sign -rawin over "kroll-policy-v1\x00hello".
	opensslSigHello = "zqe2mSTjcKGlzppm92glVl0RyKdfcdXRWPAJ//XQQRoEQoYaqeEhMlYEq4DKzQ1jeP/otg4AvaVa6ix7A1I/DQ=="
)

func testKey(t testing.TB, seedByte byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seedByte}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

func TestOpenSSLKeys(t *testing.T) {
	priv, err := ParsePrivateKey([]byte(opensslPrivPEM))
	if err != nil {
		t.Fatalf("ParsePrivateKey(openssl key): %v", err)
	}
	pub, err := ParsePublicKey([]byte(opensslPubPEM))
	if err != nil {
		t.Fatalf("ParsePublicKey(openssl key): %v", err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("public key does not belong to the private key")
	}
	// Our encodings are byte-identical to openssl's.
	if got, _ := MarshalPrivateKey(priv); string(got) != opensslPrivPEM {
		t.Errorf("MarshalPrivateKey = %q, want openssl's %q", got, opensslPrivPEM)
	}
	if got, _ := MarshalPublicKey(pub); string(got) != opensslPubPEM {
		t.Errorf("MarshalPublicKey = %q, want openssl's %q", got, opensslPubPEM)
	}
	// ed25519 is deterministic: the documented signed bytes reproduce the
	// signature openssl made.
	sig := Sign(priv, "kroll-policy-v1", []byte("hello"))
	if got := sig.Marshal(); !strings.Contains(string(got), `"sig":"`+opensslSigHello+`"`) {
		t.Errorf("signature %s differs from openssl's %s", got, opensslSigHello)
	}
}

func TestKeyID(t *testing.T) {
	pub, _ := testKey(t, 1)
	sum := sha256.Sum256(pub)
	want := hex.EncodeToString(sum[:8])
	if got := KeyID(pub); got != want {
		t.Errorf("KeyID = %s, want %s", got, want)
	}
	if got := KeyID(pub); len(got) != 16 {
		t.Errorf("KeyID length = %d, want 16", len(got))
	}
	other, _ := testKey(t, 2)
	if KeyID(other) == KeyID(pub) {
		t.Error("different keys have the same KeyID")
	}
}

func TestGenerateKeyFiles(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "ops")
	pub, err := GenerateKeyFiles(prefix, false)
	if err != nil {
		t.Fatalf("GenerateKeyFiles: %v", err)
	}
	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{{prefix + ".key", 0o600}, {prefix + ".pub", 0o644}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode(), f.mode)
		}
	}
	priv, err := LoadPrivateKey(prefix + ".key")
	if err != nil {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	loadedPub, err := LoadPublicKey(prefix + ".pub")
	if err != nil {
		t.Fatalf("LoadPublicKey: %v", err)
	}
	if !loadedPub.Equal(pub) || !pub.Equal(priv.Public()) {
		t.Error("loaded keys do not match the generated key")
	}
	entries, err := os.ReadDir(filepath.Dir(prefix))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only ops.key and ops.pub", names)
	}
}

func TestGenerateKeyFilesRefusesOverwrite(t *testing.T) {
	for _, existing := range []string{".key", ".pub"} {
		t.Run(existing, func(t *testing.T) {
			prefix := filepath.Join(t.TempDir(), "ops")
			if err := os.WriteFile(prefix+existing, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := GenerateKeyFiles(prefix, false)
			if !errors.Is(err, fs.ErrExist) {
				t.Fatalf("GenerateKeyFiles over existing %s: err = %v, want fs.ErrExist", existing, err)
			}
			if !strings.Contains(err.Error(), prefix+existing) || !strings.Contains(err.Error(), "force") {
				t.Errorf("error %q should name the file and mention force", err)
			}
			if b, _ := os.ReadFile(prefix + existing); string(b) != "precious" {
				t.Errorf("existing file was modified: %q", b)
			}
			entries, _ := os.ReadDir(filepath.Dir(prefix))
			if len(entries) != 1 {
				t.Errorf("directory has %d entries, want only the existing file", len(entries))
			}
		})
	}
}

func TestGenerateKeyFilesForce(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "ops")
	first, err := GenerateKeyFiles(prefix, false)
	if err != nil {
		t.Fatal(err)
	}
	// Make the old public key file read-only to others, to see the mode reset.
	if err := os.Chmod(prefix+".pub", 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := GenerateKeyFiles(prefix, true)
	if err != nil {
		t.Fatalf("GenerateKeyFiles(force): %v", err)
	}
	if first.Equal(second) {
		t.Fatal("force did not generate a new key")
	}
	loaded, err := LoadPublicKey(prefix + ".pub")
	if err != nil || !loaded.Equal(second) {
		t.Fatalf("LoadPublicKey after force = %v, %v; want the new key", loaded, err)
	}
	if fi, _ := os.Stat(prefix + ".pub"); fi.Mode() != 0o644 {
		t.Errorf("public key mode %v, want 0644", fi.Mode())
	}
	if _, err := LoadPrivateKey(prefix + ".key"); err != nil {
		t.Errorf("LoadPrivateKey after force: %v", err)
	}
}

func TestGenerateKeyFilesErrors(t *testing.T) {
	if _, err := GenerateKeyFiles("", false); err == nil {
		t.Error("empty prefix: no error")
	}
	missingDir := filepath.Join(t.TempDir(), "no", "such", "dir", "ops")
	for _, force := range []bool{false, true} {
		if _, err := GenerateKeyFiles(missingDir, force); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("GenerateKeyFiles(missing dir, force=%v) = %v, want fs.ErrNotExist", force, err)
		}
	}
}

func TestLoadPrivateKeyFileChecks(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "ops")
	if _, err := GenerateKeyFiles(prefix, false); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mode    fs.FileMode
		wantErr error
	}{
		{"owner only", 0o600, nil},
		{"owner read only", 0o400, nil},
		{"group readable", 0o640, ErrInsecureKeyFile},
		{"world readable", 0o604, ErrInsecureKeyFile},
		{"group writable", 0o620, ErrInsecureKeyFile},
		{"world executable", 0o601, ErrInsecureKeyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.Chmod(prefix+".key", tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPrivateKey(prefix + ".key")
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadPrivateKey: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("LoadPrivateKey = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("error %q should tell how to fix it", err)
			}
		})
	}

	if _, err := LoadPrivateKey(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("LoadPrivateKey(directory) = %v, want not a regular file", err)
	}
	if _, err := LoadPrivateKey(filepath.Join(dir, "missing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadPrivateKey(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadPublicKey(filepath.Join(dir, "missing.pub")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadPublicKey(missing) = %v, want fs.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.key")
	if err := os.WriteFile(big, bytes.Repeat([]byte(" "), maxKeyFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("LoadPrivateKey(huge file) = %v, want size error", err)
	}
	if _, err := LoadPublicKey(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("LoadPublicKey(huge file) = %v, want size error", err)
	}
	// A public key where a private key is expected.
	if err := os.Chmod(prefix+".pub", 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(prefix + ".pub"); err == nil || !strings.Contains(err.Error(), `PEM block is "PUBLIC KEY", want "PRIVATE KEY"`) {
		t.Errorf("LoadPrivateKey(public key file) = %v", err)
	}
}

// pemOf encodes a DER blob as a PEM block.
func pemOf(typ string, der []byte, headers map[string]string) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der}))
}

func TestParseKeyErrors(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	privBlock, _ := pem.Decode([]byte(opensslPrivPEM))
	pubBlock, _ := pem.Decode([]byte(opensslPubPEM))

	privTests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", `no PEM "PRIVATE KEY" block found`},
		{"garbage", "not a key", `no PEM "PRIVATE KEY" block found`},
		{"public key", opensslPubPEM, `PEM block is "PUBLIC KEY", want "PRIVATE KEY"`},
		{"ed25519 in openssh type", pemOf("OPENSSH PRIVATE KEY", privBlock.Bytes, nil), `PEM block is "OPENSSH PRIVATE KEY", want "PRIVATE KEY"`},
		{"ecdsa key", pemOf("PRIVATE KEY", ecPriv, nil), "private key is *ecdsa.PrivateKey, want ed25519"},
		{"bad DER", pemOf("PRIVATE KEY", []byte{0x30, 0x03, 1, 2}, nil), "parse PKCS#8 private key"},
		{"encrypted (headers)", pemOf("PRIVATE KEY", privBlock.Bytes, map[string]string{"Proc-Type": "4,ENCRYPTED"}), "has headers"},
		{"trailing garbage", opensslPrivPEM + "junk\n", `unexpected data after the PEM "PRIVATE KEY" block`},
		{"two keys", opensslPrivPEM + opensslPrivPEM, `unexpected data after the PEM "PRIVATE KEY" block`},
		{"leading garbage", "junk\n" + opensslPrivPEM, `unexpected data before the PEM "PRIVATE KEY" block`},
		{"leading broken block", "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n" + opensslPrivPEM, "unexpected data before"},
		{"ok with surrounding space", "\n\n" + opensslPrivPEM + " \n\n", ""},
		{"indented block", "  " + opensslPrivPEM, `no PEM "PRIVATE KEY" block found`},
	}
	for _, tt := range privTests {
		t.Run("private/"+tt.name, func(t *testing.T) {
			_, err := ParsePrivateKey([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
		})
	}

	pubTests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", `no PEM "PUBLIC KEY" block found`},
		{"private key", opensslPrivPEM, `PEM block is "PRIVATE KEY", want "PUBLIC KEY"`},
		{"ecdsa key", pemOf("PUBLIC KEY", ecPub, nil), "public key is *ecdsa.PublicKey, want ed25519"},
		{"bad DER", pemOf("PUBLIC KEY", []byte{0x30, 0x00}, nil), "parse PKIX public key"},
		{"headers", pemOf("PUBLIC KEY", pubBlock.Bytes, map[string]string{"Comment": "x"}), "has headers"},
		{"trailing garbage", opensslPubPEM + "x", `unexpected data after the PEM "PUBLIC KEY" block`},
		{"leading garbage", "x\n" + opensslPubPEM, `unexpected data before the PEM "PUBLIC KEY" block`},
		{"ok", opensslPubPEM, ""},
	}
	for _, tt := range pubTests {
		t.Run("public/"+tt.name, func(t *testing.T) {
			_, err := ParsePublicKey([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestMarshalKeyErrors(t *testing.T) {
	if _, err := MarshalPrivateKey(ed25519.PrivateKey{1, 2}); err == nil {
		t.Error("MarshalPrivateKey(short key): no error")
	}
	if _, err := MarshalPublicKey(ed25519.PublicKey{1, 2}); err == nil {
		t.Error("MarshalPublicKey(short key): no error")
	}
}

// checkErr fails unless err contains want, or err is nil when want is "".
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
