// Package release defines the release manifest: the signed description of
// one kernel build that a rollout installs (DESIGN §3 `krollctl release add`,
// §4 staging).
//
// A manifest is a JSON document:
//
//	{
//	  "id": "6.12.117-kroll.1",
//	  "line": "6.12",
//	  "kernel_version": "6.12.117+deb12-amd64",
//	  "kind": "deb",
//	  "artifacts": [
//	    {"name": "linux-image-6.12.117+deb12-amd64_6.12.117-1~deb12u1_amd64.deb",
//	     "url": "https://pkg.example.net/kernel/...", "size": 71234567,
//	     "sha256": "…64 lowercase hex…"}
//	  ],
//	  "cmdline_add": ["mitigations=auto"],
//	  "cmdline_remove": ["mitigations", "nosmt"],
//	  "created": "2026-05-04T09:30:00Z",
//	  "notes": "CVE-2026-31431 fix"
//	}
//
// Decode parses it strictly and validates it. The signature (a detached
// signing.Signature with context ManifestContext) covers the manifest's
// Canonical encoding, so reformatting the file does not invalidate it but
// changing any field does.
package release

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/strictjson"
)

// ManifestContext is the signature context of release manifests.
const ManifestContext = "kroll-release-v1"

// MaxManifestSize is the largest manifest document Decode accepts.
const MaxManifestSize = 1 << 20

// Kind says how a release's kernel is packaged.
type Kind string

// The kinds of release.
const (
	// KindDeb is a Debian linux-image-*.deb package.
	KindDeb Kind = "deb"
	// KindBundle is a kroll release bundle (vmlinuz + initrd archive).
	KindBundle Kind = "bundle"
)

// Manifest describes one kernel release.
type Manifest struct {
	// ID names the release, e.g. "6.12.117-kroll.1".
	ID string `json:"id"`
	// Line is the kernel line, "MAJOR.MINOR", e.g. "6.12".
	Line string `json:"line"`
	// KernelVersion is the release string the kernel reports (uname -r)
	// once booted, e.g. "6.12.117+deb12-amd64" or "6.1.0-56-amd64".
	KernelVersion string `json:"kernel_version"`
	// UpstreamVersion is the upstream version of the kernel, e.g.
	// "6.1.192". It is required when KernelVersion is a Debian ABI name,
	// which does not tell it, and optional otherwise (then it must agree
	// with KernelVersion).
	UpstreamVersion string `json:"upstream_version,omitempty"`
	// Kind says how the kernel is packaged.
	Kind Kind `json:"kind"`
	// Artifacts are the files to download; at least one.
	Artifacts []Artifact `json:"artifacts"`
	// CmdlineAdd are kernel parameters ("name" or "name=value") the
	// release's kernel boots with in addition to the command line it
	// inherits from the running kernel (see kcmdline.Apply: appended
	// unless already there). At most kcmdline.MaxChanges, each checked by
	// kcmdline.CheckAdd (no spaces, quotes or one-shot parameters).
	CmdlineAdd []string `json:"cmdline_add,omitempty"`
	// CmdlineRemove are names of kernel parameters dropped (with every
	// value) from the inherited command line, before CmdlineAdd is
	// applied: remove "mitigations" and add "mitigations=auto" to replace
	// a value. At most kcmdline.MaxChanges, each checked by
	// kcmdline.CheckRemove.
	CmdlineRemove []string `json:"cmdline_remove,omitempty"`
	// NoInitrd says that the kernel boots without an initramfs (its
	// drivers and root file system support are built in). Without it a
	// kernel whose initrd is missing on the host is not booted.
	NoInitrd bool `json:"no_initrd,omitempty"`
	// Created is when the release was built.
	Created time.Time `json:"created"`
	// Notes is free text for operators.
	Notes string `json:"notes,omitempty"`
}

// Artifact is one file of a release.
type Artifact struct {
	// Name is the file name (no directories) the artifact is stored as.
	Name string `json:"name"`
	// URL is where to download it from (http or https).
	URL string `json:"url"`
	// Size is its size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the lowercase hex SHA-256 of its content.
	SHA256 string `json:"sha256"`
}

// manifestJSON is the wire form of Manifest, in canonical field order.
// Created is a string so that a malformed time is reported by Validate
// with its field name.
type manifestJSON struct {
	ID              string     `json:"id"`
	Line            string     `json:"line"`
	KernelVersion   string     `json:"kernel_version"`
	UpstreamVersion string     `json:"upstream_version,omitempty"`
	Kind            Kind       `json:"kind"`
	Artifacts       []Artifact `json:"artifacts"`
	CmdlineAdd      []string   `json:"cmdline_add,omitempty"`
	CmdlineRemove   []string   `json:"cmdline_remove,omitempty"`
	NoInitrd        bool       `json:"no_initrd,omitempty"`
	Created         string     `json:"created"`
	Notes           string     `json:"notes,omitempty"`
}

// Decode parses a JSON manifest strictly (at most MaxManifestSize bytes, a
// single object, no unknown or duplicate fields, nothing after it) and
// validates it. A validation failure is a *ValidationError.
func Decode(data []byte) (Manifest, error) {
	var w manifestJSON
	if err := strictjson.Decode(data, MaxManifestSize, &w); err != nil {
		return Manifest{}, fmt.Errorf("decode release manifest: %w", err)
	}
	m := Manifest{
		ID:              w.ID,
		Line:            w.Line,
		KernelVersion:   w.KernelVersion,
		UpstreamVersion: w.UpstreamVersion,
		Kind:            w.Kind,
		Artifacts:       w.Artifacts,
		CmdlineAdd:      w.CmdlineAdd,
		CmdlineRemove:   w.CmdlineRemove,
		NoInitrd:        w.NoInitrd,
		Notes:           w.Notes,
	}
	var badCreated string
	if w.Created != "" {
		t, err := time.Parse(time.RFC3339, w.Created)
		if err != nil {
			badCreated = fmt.Sprintf("must be an RFC 3339 time such as 2026-05-04T09:30:00Z, not %q", w.Created)
		} else {
			m.Created = t
		}
	}
	p := m.validate()
	if badCreated != "" {
		// m.Created is zero: replace "required" by the real problem.
		for i := range p {
			if p[i].Field == "created" {
				p[i].Message = badCreated
			}
		}
	}
	if err := p.Err(subject); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Canonical returns the canonical encoding of a valid manifest: compact JSON
// with the fields in a fixed order (id, line, kernel_version,
// upstream_version, kind, artifacts with name, url, size, sha256,
// cmdline_add, cmdline_remove, no_initrd, created, notes), empty optional fields omitted, Created in UTC in RFC 3339 with
// as many fractional digits as needed, and no trailing newline. It depends
// only on the manifest's content, not on how its document was formatted.
// Decoding the canonical encoding yields an equal manifest.
//
// Canonical returns the validation error of an invalid manifest.
func (m Manifest) Canonical() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := manifestJSON{
		ID:              m.ID,
		Line:            m.Line,
		KernelVersion:   m.KernelVersion,
		UpstreamVersion: m.UpstreamVersion,
		Kind:            m.Kind,
		Artifacts:       m.Artifacts,
		CmdlineAdd:      m.CmdlineAdd,
		CmdlineRemove:   m.CmdlineRemove,
		NoInitrd:        m.NoInitrd,
		Created:         m.Created.UTC().Format(time.RFC3339Nano),
		Notes:           m.Notes,
	}
	b, err := strictjson.MarshalCanonical(w)
	if err != nil {
		return nil, fmt.Errorf("encode release manifest: %w", err)
	}
	return b, nil
}

// SignManifest validates m and signs its canonical encoding with
// ManifestContext.
func SignManifest(priv ed25519.PrivateKey, m Manifest) (signing.Signature, error) {
	msg, err := m.Canonical()
	if err != nil {
		return signing.Signature{}, fmt.Errorf("sign release manifest: %w", err)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return signing.Signature{}, errors.New("sign release manifest: not an ed25519 private key")
	}
	return signing.Sign(priv, ManifestContext, msg), nil
}

// VerifyManifest checks that sig is a signature of m's canonical encoding
// by one of the trusted keys, made for a release manifest, and returns the
// signing key's ID. Errors wrap the signing package's sentinel errors
// (signing.ErrBadSignature when m was modified after signing,
// signing.ErrWrongContext for a policy signature, signing.ErrUnknownKey) or
// are a *ValidationError for an invalid manifest.
func VerifyManifest(m Manifest, sig signing.Signature, trusted []ed25519.PublicKey) (keyID string, err error) {
	msg, err := m.Canonical()
	if err != nil {
		return "", fmt.Errorf("verify release manifest: %w", err)
	}
	keyID, err = signing.Verify(sig, ManifestContext, msg, trusted)
	if err != nil {
		return "", fmt.Errorf("verify release manifest %q: %w", m.ID, err)
	}
	return keyID, nil
}
