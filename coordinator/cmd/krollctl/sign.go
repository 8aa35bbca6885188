package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/signing"
)

const (
	signUsage   = "sign --key PREFIX.key [--type auto|release|policy] FILE"
	verifyUsage = "verify --key PUB [--key PUB]... [--signature FILE.sig] FILE"
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

// signResult is what sign prints with -o json.
type signResult struct {
	File      string `json:"file"`
	Kind      string `json:"kind"`
	Signature string `json:"signature"`
	KeyID     string `json:"key_id"`
}

func (a *app) signCommand() *cobra.Command {
	cmd := &cobra.Command{Use: signUsage, Short: "sign a release manifest or mitigation policy: writes FILE.sig", Args: nArgs(1, signUsage)}
	var keyPath, typ string
	cmd.Flags().StringVar(&keyPath, "key", "", "private key `FILE` written by 'krollctl keygen'")
	cmd.Flags().StringVar(&typ, "type", "auto", "document type: auto, release or policy")
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{"auto", "release", "policy"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if keyPath == "" {
			return usage(signUsage)
		}
		file := args[0]
		priv, err := signing.LoadPrivateKey(keyPath)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		doc, err := decodeDocument(data, typ, time.Now())
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
		res := signResult{File: file, Kind: doc.kind, Signature: file + ".sig", KeyID: sig.KeyID}
		return show(a.env.Stdout, a.g.json(), res, func(w io.Writer) {
			fmt.Fprintf(w, "signed %s %s with key %s: wrote %s\n", res.Kind, res.File, res.KeyID, res.Signature)
		})
	}
	return cmd
}

// verifyResult is what verify prints with -o json.
type verifyResult struct {
	File      string `json:"file"`
	Kind      string `json:"kind"`
	Signature string `json:"signature"`
	KeyID     string `json:"key_id"`
	Valid     bool   `json:"valid"`
}

func (a *app) verifyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: verifyUsage, Short: "check FILE against FILE.sig and trusted public keys", Args: nArgs(1, verifyUsage)}
	var keyPaths []string
	var sigPath string
	cmd.Flags().StringArrayVar(&keyPaths, "key", nil, "trusted public key `FILE` (repeatable)")
	cmd.Flags().StringVar(&sigPath, "signature", "", "detached signature `FILE` (default FILE.sig)")
	cmd.Flags().StringVar(&sigPath, "sig", "", "old name of --signature")
	_ = cmd.Flags().MarkHidden("sig")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if cmd.Flags().Changed("sig") {
			fmt.Fprintln(a.env.Stderr, "krollctl: warning: --sig is deprecated, use --signature")
		}
		if len(keyPaths) == 0 {
			return usage(verifyUsage)
		}
		file := args[0]
		if sigPath == "" {
			sigPath = file + ".sig"
		}
		var trusted []ed25519.PublicKey
		for _, p := range keyPaths {
			k, err := signing.LoadPublicKey(p)
			if err != nil {
				return err
			}
			trusted = append(trusted, k)
		}
		rawSig, err := os.ReadFile(sigPath)
		if err != nil {
			return err
		}
		sig, err := signing.ParseSignature(rawSig)
		if err != nil {
			return fmt.Errorf("%s: %w", sigPath, err)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		// The signature's context says what was signed.
		typ := map[string]string{release.ManifestContext: "release", policy.PolicyContext: "policy"}[sig.Context]
		if typ == "" {
			return fmt.Errorf("%s: unknown signature context %q", sigPath, sig.Context)
		}
		doc, err := decodeDocument(data, typ, time.Now())
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		keyID, err := doc.verify(rawSig, trusted)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		res := verifyResult{File: file, Kind: doc.kind, Signature: sigPath, KeyID: keyID, Valid: true}
		return show(a.env.Stdout, a.g.json(), res, func(w io.Writer) {
			fmt.Fprintf(w, "%s: valid %s signed by key %s\n", res.File, res.Kind, res.KeyID)
		})
	}
	return cmd
}
