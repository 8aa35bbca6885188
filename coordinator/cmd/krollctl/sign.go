package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/signing"
)

const (
	signUsage   = "sign --key PREFIX.key [--type auto|release|policy] FILE"
	verifyUsage = "verify --key PUB [--key PUB]... [--sig FILE.sig] FILE"
)

// document is a decoded, validated release manifest or policy.
type document struct {
	kind string // "release manifest" or "policy"
	sign func(ed25519.PrivateKey) (signing.Signature, error)
	// verify opens the document with its raw signature (release.Open,
	// policy.Open) and returns the signing key's ID.
	verify func(rawSig []byte, trusted []ed25519.PublicKey) (string, error)
}

func releaseDocument(data []byte) (document, error) {
	m, err := release.Decode(data)
	return document{
		kind: "release manifest",
		sign: func(k ed25519.PrivateKey) (signing.Signature, error) { return release.SignManifest(k, m) },
		verify: func(sig []byte, keys []ed25519.PublicKey) (string, error) {
			v, err := release.Open(data, sig, keys)
			return v.KeyID(), err
		},
	}, err
}

func policyDocument(data []byte, now time.Time) (document, error) {
	p, err := policy.Decode(data, now)
	return document{
		kind: "policy",
		sign: func(k ed25519.PrivateKey) (signing.Signature, error) { return policy.Sign(k, p) },
		verify: func(sig []byte, keys []ed25519.PublicKey) (string, error) {
			v, err := policy.Open(data, sig, keys)
			return v.KeyID(), err
		},
	}, err
}

// decodeDocument decodes data as the given type; "auto" picks the type
// whose strict decoding accepts the document's fields and reports that
// type's validation errors.
func decodeDocument(data []byte, typ string, now time.Time) (document, error) {
	switch typ {
	case "release":
		return releaseDocument(data)
	case "policy":
		return policyDocument(data, now)
	case "auto":
	default:
		return document{}, cli.Usagef("--type %q: want auto, release or policy", typ)
	}
	rel, relErr := releaseDocument(data)
	if relErr == nil {
		return rel, nil
	}
	pol, polErr := policyDocument(data, now)
	if polErr == nil {
		return pol, nil
	}
	var relInvalid *release.ValidationError
	var polInvalid *policy.ValidationError
	switch {
	case errors.As(relErr, &relInvalid) && !errors.As(polErr, &polInvalid):
		return document{}, fmt.Errorf("invalid release manifest: %w", relErr)
	case errors.As(polErr, &polInvalid) && !errors.As(relErr, &relInvalid):
		return document{}, fmt.Errorf("invalid policy: %w", polErr)
	}
	return document{}, fmt.Errorf("neither a valid release manifest (%v) nor a valid policy (%v)", relErr, polErr)
}

func sign(ctx context.Context, env cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "krollctl", signUsage)
	keyPath := fs.String("key", "", "private key file written by 'krollctl keygen'")
	typ := fs.String("type", "auto", "document type: auto, release or policy")
	if err := cli.Parse(fs, env.Stdout, args); err != nil {
		return err
	}
	if *keyPath == "" || fs.NArg() != 1 {
		return cli.Usagef("usage: krollctl %s", signUsage)
	}
	file := fs.Arg(0)
	priv, err := signing.LoadPrivateKey(*keyPath)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	doc, err := decodeDocument(data, *typ, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	sig, err := doc.sign(priv)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := fsutil.WriteFileAtomic(file+".sig", sig.Marshal(), 0o644, false); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "signed %s %s with key %s: wrote %s.sig\n", doc.kind, file, sig.KeyID, file)
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func verify(ctx context.Context, env cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "krollctl", verifyUsage)
	var keyPaths stringList
	fs.Var(&keyPaths, "key", "trusted public key file (repeatable)")
	sigPath := fs.String("sig", "", "signature file (default FILE.sig)")
	if err := cli.Parse(fs, env.Stdout, args); err != nil {
		return err
	}
	if len(keyPaths) == 0 || fs.NArg() != 1 {
		return cli.Usagef("usage: krollctl %s", verifyUsage)
	}
	file := fs.Arg(0)
	if *sigPath == "" {
		*sigPath = file + ".sig"
	}
	var trusted []ed25519.PublicKey
	for _, p := range keyPaths {
		k, err := signing.LoadPublicKey(p)
		if err != nil {
			return err
		}
		trusted = append(trusted, k)
	}
	rawSig, err := os.ReadFile(*sigPath)
	if err != nil {
		return err
	}
	sig, err := signing.ParseSignature(rawSig)
	if err != nil {
		return fmt.Errorf("%s: %w", *sigPath, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	// The signature's context says what was signed.
	typ := map[string]string{release.ManifestContext: "release", policy.PolicyContext: "policy"}[sig.Context]
	if typ == "" {
		return fmt.Errorf("%s: unknown signature context %q", *sigPath, sig.Context)
	}
	doc, err := decodeDocument(data, typ, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	keyID, err := doc.verify(rawSig, trusted)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	fmt.Fprintf(env.Stdout, "%s: valid %s signed by key %s\n", file, doc.kind, keyID)
	return nil
}
