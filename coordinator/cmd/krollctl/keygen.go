package main

import (
	"context"
	"fmt"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/signing"
)

const keygenUsage = "keygen --out PREFIX [--force]"

func keygen(ctx context.Context, env cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "krollctl", keygenUsage)
	out := fs.String("out", "", "path prefix: writes PREFIX.key and PREFIX.pub")
	force := fs.Bool("force", false, "overwrite existing key files")
	if err := cli.Parse(fs, env.Stdout, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return cli.Usagef("usage: krollctl %s", keygenUsage)
	}
	pub, err := signing.GenerateKeyFiles(*out, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s.key (private, 0600) and %s.pub (key id %s)\n", *out, *out, signing.KeyID(pub))
	return nil
}
