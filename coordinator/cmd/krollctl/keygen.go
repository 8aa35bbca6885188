package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/signing"
)

const keygenUsage = "keygen --out PREFIX [--force]"

// keygenResult is what keygen prints with -o json.
type keygenResult struct {
	PrivateKey string `json:"private_key"`
	PublicKey  string `json:"public_key"`
	KeyID      string `json:"key_id"`
}

func (a *app) keygenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: keygenUsage, Short: "create an ed25519 key pair: PREFIX.key (0600) and PREFIX.pub", Args: nArgs(0, keygenUsage)}
	var out string
	var force bool
	cmd.Flags().StringVar(&out, "out", "", "path `PREFIX`: writes PREFIX.key and PREFIX.pub")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	cmd.RunE = func(*cobra.Command, []string) error {
		if out == "" {
			return usage(keygenUsage)
		}
		pub, err := signing.GenerateKeyFiles(out, force)
		if err != nil {
			return err
		}
		res := keygenResult{PrivateKey: out + ".key", PublicKey: out + ".pub", KeyID: signing.KeyID(pub)}
		return show(a.env.Stdout, a.g.json(), res, func(w io.Writer) {
			fmt.Fprintf(w, "wrote %s (private, 0600) and %s (key id %s)\n", res.PrivateKey, res.PublicKey, res.KeyID)
		})
	}
	return cmd
}
