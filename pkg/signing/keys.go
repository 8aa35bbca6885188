package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/kroll-dev/kroll/pkg/fsutil"
)

// PEM block types of the key files. They are the ones openssl uses for
// PKCS#8 private keys and PKIX (SubjectPublicKeyInfo) public keys, so
// `openssl pkey -in PREFIX.key -pubout` and friends work on kroll keys.
const (
	PrivateKeyPEMType = "PRIVATE KEY"
	PublicKeyPEMType  = "PUBLIC KEY"
)

// File name suffixes GenerateKeyFiles appends to its prefix.
const (
	PrivateKeySuffix = ".key"
	PublicKeySuffix  = ".pub"
)

// maxKeyFileSize bounds how much of a key file is read. A PEM ed25519 key is
// about 120 bytes.
const maxKeyFileSize = 16 << 10

// ErrInsecureKeyFile is returned (wrapped) by LoadPrivateKey when the key
// file is accessible by its group or by others.
var ErrInsecureKeyFile = errors.New("private key file is accessible by group or others")

// KeyID returns the short, stable identifier of a public key: the lowercase
// hex encoding of the first 8 bytes of the SHA-256 of the raw 32-byte key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// MarshalPrivateKey encodes priv as a PEM "PRIVATE KEY" block (PKCS#8).
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PrivateKeyPEMType, Bytes: der}), nil
}

// MarshalPublicKey encodes pub as a PEM "PUBLIC KEY" block (PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM "PRIVATE KEY" block holding a PKCS#8
// ed25519 key. The input must hold exactly that one block, without PEM
// headers (encrypted keys are not supported), and nothing but white space
// around it.
func ParsePrivateKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	der, err := decodePEM(pemBytes, PrivateKeyPEMType)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8 private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %s, want ed25519", keyType(key))
	}
	return priv, nil
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" block holding a PKIX ed25519
// public key, with the same strictness as ParsePrivateKey.
func ParsePublicKey(pemBytes []byte) (ed25519.PublicKey, error) {
	der, err := decodePEM(pemBytes, PublicKeyPEMType)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse PKIX public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %s, want ed25519", keyType(key))
	}
	return pub, nil
}

func decodePEM(data []byte, wantType string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM %q block found", wantType)
	}
	// pem.Decode skips anything before the block it returns, including
	// malformed blocks: require the block to be the very first thing.
	consumed := data[:len(data)-len(rest)]
	begin := []byte("-----BEGIN ")
	if !bytes.HasPrefix(bytes.TrimLeft(consumed, " \t\r\n"), begin) || bytes.Count(consumed, begin) != 1 {
		return nil, fmt.Errorf("unexpected data before the PEM %q block", wantType)
	}
	if block.Type != wantType {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, wantType)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("PEM %q block has headers (encrypted keys are not supported)", wantType)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unexpected data after the PEM %q block", wantType)
	}
	return block.Bytes, nil
}

func keyType(key any) string {
	switch key.(type) {
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "ed25519"
	default:
		return fmt.Sprintf("%T", key)
	}
}

// LoadPrivateKey reads an ed25519 private key written by GenerateKeyFiles
// (or by `openssl genpkey -algorithm ed25519`).
//
// Like ssh, it refuses a key file that its group or others may access
// (mode & 0o077 != 0): it returns an error wrapping ErrInsecureKeyFile, and
// the fix is `chmod 600 FILE`. It also refuses anything but a regular file.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load private key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("load private key %s: mode %04o: %w (run chmod 600 %s)", path, perm, ErrInsecureKeyFile, path)
	}
	data, err := readLimited(f)
	if err != nil {
		return nil, fmt.Errorf("load private key %s: %w", path, err)
	}
	priv, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("load private key %s: %w", path, err)
	}
	return priv, nil
}

// LoadPublicKey reads an ed25519 public key in PEM "PUBLIC KEY" form.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w", path, err)
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w", path, err)
	}
	return pub, nil
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("larger than %d bytes, not a key file", maxKeyFileSize)
	}
	return data, nil
}

// GenerateKeyFiles creates a new ed25519 key pair and writes it to
// PREFIX.key (PEM PKCS#8, mode 0600) and PREFIX.pub (PEM PKIX, mode 0644).
//
// Without force, it refuses to overwrite either file: if one exists, it
// returns an error wrapping fs.ErrExist and writes nothing. The files are
// created exclusively (link(2) of a complete temporary file, which fails if
// the name exists), so a concurrent writer cannot be overwritten either.
// Each file is written atomically (temporary file, fsync, rename or link,
// directory fsync; see fsutil.WriteFileAtomic), so a crash never leaves a
// partially written key. The private key file is never readable by others,
// not even while it is written.
func GenerateKeyFiles(prefix string, force bool) (ed25519.PublicKey, error) {
	if prefix == "" {
		return nil, errors.New("generate key files: empty prefix")
	}
	keyPath, pubPath := prefix+PrivateKeySuffix, prefix+PublicKeySuffix
	if !force {
		for _, p := range []string{keyPath, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return nil, existsError(p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("generate key files: %w", err)
			}
		}
	}

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	privPEM, err := MarshalPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pubPEM, err := MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}

	exclusive := !force
	if err := fsutil.WriteFileAtomic(keyPath, privPEM, 0o600, exclusive); err != nil {
		if exclusive && errors.Is(err, fs.ErrExist) {
			return nil, existsError(keyPath)
		}
		return nil, fmt.Errorf("generate key files: %w", err)
	}
	if err := fsutil.WriteFileAtomic(pubPath, pubPEM, 0o644, exclusive); err != nil {
		if exclusive {
			// The key file is ours (it was created exclusively): do not
			// leave a private key without its public half behind.
			_ = os.Remove(keyPath)
			if errors.Is(err, fs.ErrExist) {
				return nil, existsError(pubPath)
			}
		}
		return nil, fmt.Errorf("generate key files: %w", err)
	}
	return pub, nil
}

func existsError(path string) error {
	return fmt.Errorf("generate key files: %s: %w (use force to overwrite)", path, fs.ErrExist)
}
