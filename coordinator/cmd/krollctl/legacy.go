package main

// The command style before cobra, kept for commands written against it
// (e.g. on another branch): a function of the raw arguments that parses
// them with prepare. legacyCommand wires one into the tree.

import (
	"context"
	"flag"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
)

// varArgs as prepare's nargs leaves counting the positional arguments to
// the command's check.
const varArgs = -1

// legacyCommand wires run, a command that parses its own arguments (with
// prepare), into the tree as `use`: it gets every argument after its name,
// global flags included.
func (a *app) legacyCommand(use, short string, run func(ctx context.Context, env cli.Env, args []string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, h := range args {
				if h == "-h" || h == "--help" {
					return cmd.Help()
				}
			}
			return run(cmd.Context(), a.env, args)
		}}
}

// prepare parses args of a legacy command: the global flags and, when
// flags is not nil, the command's own, flags after positional arguments
// allowed; wants exactly nargs positional arguments (varArgs: any), the
// first not empty (else the usage error of usageText); runs check, when
// not nil; and connects.
func prepare(env cli.Env, usageText string, args []string, nargs int,
	flags func(fs *flag.FlagSet), check func(fs *flag.FlagSet, pos []string) error) (*coord, []string, error) {
	fs := cli.NewFlagSet(env, "krollctl", usageText)
	var g globals
	fs.StringVar(&g.coordinator, "coordinator", "", "coordinator URLs, comma-separated (env "+envCoordinator+")")
	fs.StringVar(&g.output, "output", "table", "output format: table or json")
	fs.StringVar(&g.output, "o", "table", "output format: table or json")
	fs.StringVar(&g.token, "token", "", "bearer token (env "+envToken+")")
	fs.StringVar(&g.tlsCA, "tls-ca", "", "PEM CA bundle (env "+envTLSCA+")")
	fs.StringVar(&g.tlsCert, "tls-cert", "", "PEM client certificate (env "+envTLSCert+")")
	fs.StringVar(&g.tlsKey, "tls-key", "", "PEM client key (env "+envTLSKey+")")
	if flags != nil {
		flags(fs)
	}
	pos, err := cli.ParseInterspersed(fs, env.Stdout, args)
	if err != nil {
		return nil, nil, err
	}
	if nargs != varArgs && (len(pos) != nargs || nargs > 0 && pos[0] == "") {
		return nil, nil, usage(usageText)
	}
	if check != nil {
		if err := check(fs, pos); err != nil {
			return nil, nil, err
		}
	}
	c, err := g.connect(env)
	if err != nil {
		return nil, nil, err
	}
	return c, pos, nil
}
