// Package policy defines kroll's bpf-lsm mitigation policies (DESIGN §6):
// the document operators write and sign, its strict decoding and
// validation, its canonical encoding and signatures.
//
// A policy is written in YAML or JSON:
//
//	id: copy-fail
//	cve: CVE-2026-31431
//	version: 3
//	kind: socket-family
//	mode: audit
//	params:
//	  family: AF_ALG
//	  operations: [create, bind]
//	  allow_exe: [/usr/sbin/charon]
//	applies_to:
//	  fixed_in: ["6.12.85", "6.18.22", "6.1.170"]
//	  datacenters: []
//	expires: 2026-06-30T00:00:00Z
//
// The signature (a detached signing.Signature with context PolicyContext,
// the POLICY.sig file) covers the policy's Canonical encoding, a JSON form
// that does not depend on whether the document was YAML or JSON nor on its
// formatting, so one signature covers both forms of the same policy while
// changing any field invalidates it.
package policy

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"

	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/strictjson"
)

// PolicyContext is the signature context of mitigation policies.
const PolicyContext = "kroll-policy-v1"

// MaxPolicySize is the largest policy document Decode accepts.
const MaxPolicySize = 256 << 10

// ErrNotNewer is returned (wrapped) by Supersedes when a policy is not a
// newer version of another.
var ErrNotNewer = errors.New("policy is not newer")

// Kind selects the bpf-lsm program that enforces a policy.
type Kind string

// The kinds of policy.
const (
	// KindSocketFamily restricts socket(2) and bind(2) on one address
	// family (Params.Family, Params.Operations, Params.AllowExe).
	KindSocketFamily Kind = "socket-family"
	// KindModuleRequest denies kernel module auto-loading of the given
	// module names or aliases (Params.Modules).
	KindModuleRequest Kind = "module-request"
	// KindUsernsCreate restricts creating user namespaces
	// (Params.AllowExe).
	KindUsernsCreate Kind = "userns-create"
	// KindFileOpen restricts opening the given files (Params.Paths).
	KindFileOpen Kind = "file-open"
)

// Mode says whether a policy only observes or also denies.
type Mode string

// The modes of a policy.
const (
	// ModeAudit counts and logs matching operations and allows them.
	ModeAudit Mode = "audit"
	// ModeEnforce denies matching operations with EPERM.
	ModeEnforce Mode = "enforce"
)

// Operation is a socket operation a socket-family policy covers.
type Operation string

// The socket operations.
const (
	// OpCreate is socket(2) (and socketpair(2)).
	OpCreate Operation = "create"
	// OpBind is bind(2).
	OpBind Operation = "bind"
)

// Policy is a mitigation policy document.
type Policy struct {
	// ID names the policy; it is a directory name under
	// /sys/fs/bpf/kroll/: 1 to 63 characters of [a-z0-9-], not starting or
	// ending with '-'.
	ID string `json:"id"`
	// CVE optionally names the vulnerability, e.g. "CVE-2026-31431".
	CVE string `json:"cve,omitempty"`
	// Version is > 0 and increases with every change of the policy.
	Version int64 `json:"version"`
	// Kind selects the enforcing program and which Params apply.
	Kind Kind `json:"kind"`
	// Mode is audit or enforce.
	Mode Mode `json:"mode"`
	// Params configure the program; which fields are allowed depends on
	// Kind.
	Params Params `json:"params"`
	// AppliesTo says where the policy is in force.
	AppliesTo AppliesTo `json:"applies_to"`
	// Expires is when the policy stops being in force.
	Expires time.Time `json:"expires"`
	// Issued optionally says when the operator issued this version; agents
	// measure propagation (issued → in force) from it.
	Issued time.Time `json:"issued,omitzero"`
}

// Params are the kind-specific parameters of a policy. A field that does
// not belong to the policy's kind must be absent (nil).
type Params struct {
	// Family (socket-family, required) is the symbolic address family,
	// e.g. "AF_ALG"; see SocketFamily.
	Family string `json:"family,omitempty"`
	// Operations (socket-family, required) are the covered operations.
	Operations []Operation `json:"operations,omitempty"`
	// AllowExe (socket-family, userns-create; optional) are absolute paths
	// of executables that are allowed; the agent resolves them to
	// (device, inode) on the host.
	AllowExe []string `json:"allow_exe,omitempty"`
	// Modules (module-request, required) are module names or aliases as
	// passed to request_module, e.g. "algif_aead", "net-pf-38",
	// "crypto-authencesn".
	Modules []string `json:"modules,omitempty"`
	// Paths (file-open, required) are absolute paths of the files covered.
	Paths []string `json:"paths,omitempty"`
}

// AppliesTo says on which hosts a policy is in force.
type AppliesTo struct {
	// FixedIn lists, per kernel line, the first upstream release that
	// contains the fix, e.g. ["6.12.85", "6.18.22"]. A host running a
	// kernel that contains the fix retires the policy (see Fixed).
	FixedIn []string `json:"fixed_in"`
	// Datacenters limits the policy to these datacenters; empty means all.
	Datacenters []string `json:"datacenters,omitempty"`
}

// policyJSON is the wire form of Policy, in canonical field order. Expires
// is a string so that a malformed time is reported with its field name.
type policyJSON struct {
	ID        string    `json:"id"`
	CVE       string    `json:"cve,omitempty"`
	Version   int64     `json:"version"`
	Kind      Kind      `json:"kind"`
	Mode      Mode      `json:"mode"`
	Params    Params    `json:"params"`
	AppliesTo AppliesTo `json:"applies_to"`
	Expires   string    `json:"expires"`
	Issued    string    `json:"issued,omitempty"`
}

// Decode parses a policy document, YAML or JSON, strictly and validates it
// with Validate(now). A document whose first non-blank character is '{' is
// JSON, anything else YAML.
//
// Decoding rejects documents over MaxPolicySize, unknown and duplicate
// fields (field names are case-sensitive), more than one YAML document,
// and data after the JSON value. expires must be an RFC 3339 time with a
// time zone, e.g. 2026-06-30T00:00:00Z (in YAML, quoted or not). A
// validation failure is a *ValidationError.
func Decode(data []byte, now time.Time) (Policy, error) {
	p, badExpires, err := decode(data)
	if err != nil {
		return Policy{}, err
	}
	probs := p.validate(now, true)
	if badExpires != nil {
		// p.Expires is zero: replace "required" by the real problem.
		for i := range probs {
			if probs[i].Field == "expires" {
				probs[i] = *badExpires
			}
		}
	}
	if err := probs.Err(subject); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// decode parses a document. A malformed expires is returned as a
// FieldError, leaving p.Expires zero.
func decode(data []byte) (p Policy, badExpires *FieldError, err error) {
	if len(data) > MaxPolicySize {
		return Policy{}, nil, fmt.Errorf("decode policy: %w: %d bytes, limit is %d", strictjson.ErrTooLarge, len(data), MaxPolicySize)
	}
	jsonDoc := data
	if !isJSON(data) {
		j, err := yamlToJSON(data)
		if err != nil {
			return Policy{}, nil, fmt.Errorf("decode policy: YAML: %w", oneLine{err})
		}
		jsonDoc = j
	}
	var w policyJSON
	// YAML aliases may expand the document; bound the expansion too.
	if err := strictjson.Decode(jsonDoc, 4*MaxPolicySize, &w); err != nil {
		return Policy{}, nil, fmt.Errorf("decode policy: %w", err)
	}
	p = Policy{
		ID:        w.ID,
		CVE:       w.CVE,
		Version:   w.Version,
		Kind:      w.Kind,
		Mode:      w.Mode,
		Params:    w.Params,
		AppliesTo: w.AppliesTo,
	}
	if w.Expires != "" {
		t, err := time.Parse(time.RFC3339, w.Expires)
		if err != nil {
			return p, &FieldError{
				Field:   "expires",
				Message: fmt.Sprintf("must be an RFC 3339 time with time zone such as 2026-06-30T00:00:00Z, not %q", w.Expires),
				Err:     err,
			}, nil
		}
		p.Expires = t
	}
	if w.Issued != "" {
		t, err := time.Parse(time.RFC3339, w.Issued)
		if err != nil {
			return p, nil, fmt.Errorf("decode policy: issued: must be an RFC 3339 time with time zone, not %q", w.Issued)
		}
		p.Issued = t
	}
	return p, nil, nil
}

// issued formats the optional issued time for the canonical encoding.
func issued(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func isJSON(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// yamlToJSON converts a single YAML document to JSON, rejecting duplicate
// keys and further documents.
func yamlToJSON(data []byte) ([]byte, error) {
	dec := yamlv2.NewDecoder(bytes.NewReader(data))
	dec.SetStrict(true)
	var doc any
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty document")
		}
		return nil, err
	}
	var next any
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, errors.New("more than one document")
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("after the first document: %w", err)
	}
	return yaml.YAMLToJSONStrict(data)
}

// oneLine presents a multi-line error (yaml.v2 lists problems on separate
// lines) on one line.
type oneLine struct{ err error }

func (e oneLine) Error() string {
	lines := strings.Split(e.err.Error(), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ")
}

func (e oneLine) Unwrap() error { return e.err }

// Canonical returns the canonical encoding of a policy: compact JSON with
// the fields in a fixed order (id, cve, version, kind, mode, params with
// family, operations, allow_exe, modules, paths, applies_to with fixed_in,
// datacenters, expires), empty optional fields omitted, Expires in UTC in
// RFC 3339 with as many fractional digits as needed, and no trailing
// newline. It depends only on the policy's content, not on whether or how
// its document was written as YAML or JSON. Decoding the canonical encoding
// yields the same policy.
//
// Canonical validates everything Validate does except the expiry against
// the current time, and returns the *ValidationError of an invalid policy.
func (p Policy) Canonical() ([]byte, error) {
	if err := p.validate(time.Time{}, false).Err(subject); err != nil {
		return nil, err
	}
	b, err := strictjson.MarshalCanonical(policyJSON{
		ID:        p.ID,
		CVE:       p.CVE,
		Version:   p.Version,
		Kind:      p.Kind,
		Mode:      p.Mode,
		Params:    p.Params,
		AppliesTo: p.AppliesTo,
		Expires:   p.Expires.UTC().Format(time.RFC3339Nano),
		Issued:    issued(p.Issued),
	})
	if err != nil {
		return nil, fmt.Errorf("encode policy: %w", err)
	}
	return b, nil
}

// Sign signs the canonical encoding of p with PolicyContext. It fails for
// an invalid policy (see Canonical).
func Sign(priv ed25519.PrivateKey, p Policy) (signing.Signature, error) {
	msg, err := p.Canonical()
	if err != nil {
		return signing.Signature{}, fmt.Errorf("sign policy: %w", err)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return signing.Signature{}, errors.New("sign policy: not an ed25519 private key")
	}
	return signing.Sign(priv, PolicyContext, msg), nil
}

// Verify checks that sig is a signature of p's canonical encoding by one of
// the trusted keys, made for a policy, and returns the signing key's ID.
// Errors wrap the signing package's sentinel errors (signing.ErrBadSignature
// when p was modified after signing, signing.ErrWrongContext for a release
// signature, signing.ErrUnknownKey) or are a *ValidationError for an invalid
// policy. Verify does not check expiry: decode with Decode(data, now).
func Verify(p Policy, sig signing.Signature, trusted []ed25519.PublicKey) (keyID string, err error) {
	msg, err := p.Canonical()
	if err != nil {
		return "", fmt.Errorf("verify policy: %w", err)
	}
	keyID, err = signing.Verify(sig, PolicyContext, msg, trusted)
	if err != nil {
		return "", fmt.Errorf("verify policy %q version %d: %w", p.ID, p.Version, err)
	}
	return keyID, nil
}

// Supersedes returns nil if p may replace old: it has the same ID and a
// strictly higher version. Otherwise the error says why; when only the
// version is the problem it wraps ErrNotNewer. Re-applying the same version
// is the caller's decision (compare Canonical encodings).
func (p Policy) Supersedes(old Policy) error {
	if p.ID != old.ID {
		return fmt.Errorf("policy %q cannot supersede policy %q: different ids", p.ID, old.ID)
	}
	if p.Version <= old.Version {
		return fmt.Errorf("policy %q: %w: version %d is not newer than %d", p.ID, ErrNotNewer, p.Version, old.Version)
	}
	return nil
}

// AppliesToDC reports whether the policy is in force in datacenter dc:
// AppliesTo.Datacenters is empty or lists dc.
func (p Policy) AppliesToDC(dc string) bool {
	if len(p.AppliesTo.Datacenters) == 0 {
		return true
	}
	for _, d := range p.AppliesTo.Datacenters {
		if d == dc {
			return true
		}
	}
	return false
}

// Fixed reports whether the running kernel contains the fix, i.e. the
// policy retires on a host running it (kversion.ContainsFix with
// AppliesTo.FixedIn). A kernel of a line FixedIn does not list is not
// fixed. The running version must know its upstream version (use
// kversion.ParseProcVersion, as agent/running does, for Debian ABI names).
func (p Policy) Fixed(running kversion.Version) (bool, error) {
	fixedIn, err := kversion.ParseList(p.AppliesTo.FixedIn)
	if err != nil {
		return false, fmt.Errorf("policy %q: applies_to.fixed_in: %w", p.ID, err)
	}
	fixed, err := kversion.ContainsFix(running, fixedIn)
	if err != nil {
		return false, fmt.Errorf("policy %q: %w", p.ID, err)
	}
	return fixed, nil
}
