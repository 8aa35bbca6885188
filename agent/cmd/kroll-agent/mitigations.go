package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/tomlfile"
)

func (a *app) mitigationsCommand() *cobra.Command {
	var f mitFlags
	addFlags := func(cmd *cobra.Command) *cobra.Command {
		cmd.Flags().StringVar(&f.stateDir, "state-dir", "", "where accepted policies are stored (default: the agent's, from --config)")
		cmd.Flags().StringVar(&f.bpffs, "bpffs", "", "where programs, maps and links are pinned (default: the agent's, from --config)")
		_ = cmd.MarkFlagDirname("state-dir")
		_ = cmd.MarkFlagDirname("bpffs")
		return cmd
	}
	apply := addFlags(&cobra.Command{Use: "apply --trusted-key PUB [--trusted-key PUB]... POLICY...",
		Short: "verify and load policies (POLICY.sig beside each); others in force stay",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cli.Usagef("mitigations apply: no POLICY given")
			}
			return nil
		}})
	apply.Flags().StringArrayVar(&f.trusted, "trusted-key", nil, "trusted public key `PUB` (PEM); repeatable")
	list := addFlags(&cobra.Command{Use: "list", Short: "the policies stored and pinned, with their state and counters", Args: noArgs("mitigations list")})
	list.Flags().StringArrayVar(&f.trusted, "trusted-key", nil, "trusted public key `PUB` (PEM); repeatable")
	remove := addFlags(&cobra.Command{Use: "remove ID", Short: "unpin a policy and forget it",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cli.Usagef("mitigations remove: want exactly one ID")
			}
			return nil
		}})
	apply.RunE = func(cmd *cobra.Command, args []string) error {
		if len(f.trusted) == 0 {
			return cli.Usagef("mitigations apply: no --trusted-key given")
		}
		return a.mitigations(cmd.Context(), f, "apply", args)
	}
	list.RunE = func(cmd *cobra.Command, args []string) error { return a.mitigations(cmd.Context(), f, "list", args) }
	remove.RunE = func(cmd *cobra.Command, args []string) error { return a.mitigations(cmd.Context(), f, "remove", args) }
	g := cli.Group("mitigations", "apply, list or remove bpf-lsm mitigation policies (one-shot, on the daemon's state)", apply, list, remove)
	g.Long = `apply, list or remove bpf-lsm mitigation policies, one-shot, on the state
directory and pins of the daemon: mitigations.state_dir (default
<state_dir>/mitigations, /var/lib/kroll-agent/mitigations) and
mitigations.bpffs of the agent configuration (--config), unless
--state-dir or --bpffs say otherwise.`
	return g
}

type mitFlags struct {
	trusted  []string
	config   string
	stateDir string
	bpffs    string
}

// resolveDirs fills in the state and bpffs directories not given as flags
// from the agent's configuration (the daemon's directories): the file
// given with --config must be readable; the default one is used when it
// exists, else the daemon's defaults.
func (f *mitFlags) resolveDirs(configSet bool) error {
	if f.stateDir != "" && f.bpffs != "" {
		return nil
	}
	var fc fileConfig
	if err := tomlfile.Decode(f.config, &fc); err != nil {
		if configSet || !errors.Is(err, os.ErrNotExist) {
			return err
		}
		fc = fileConfig{}
	}
	stateDir, bpffs := mitigationDirs(fc)
	if f.stateDir == "" {
		f.stateDir = stateDir
	}
	if f.bpffs == "" {
		f.bpffs = bpffs
	}
	return nil
}

func (a *app) mitigations(ctx context.Context, f mitFlags, sub string, pos []string) error {
	f.config = a.config
	if err := f.resolveDirs(a.configSet()); err != nil {
		return err
	}
	m, err := newManager(f, a.kernel)
	if err != nil {
		return err
	}
	var sts []mitigate.Status
	switch sub {
	case "apply":
		docs := make([]mitigate.SignedPolicy, 0, len(pos))
		for _, path := range pos {
			doc, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sig, err := os.ReadFile(path + ".sig")
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			docs = append(docs, mitigate.SignedPolicy{Source: path, Document: doc, Signature: sig})
		}
		// Only the policies given: everything else belongs to the daemon
		// (and to keys this command may not have been given).
		sts, err = m.ApplyOnly(ctx, docs)
	case "list":
		sts, err = m.List(ctx)
	default:
		return m.Remove(ctx, pos[0])
	}
	if a.json() {
		if sts == nil {
			sts = []mitigate.Status{}
		}
		if perr := printJSON(a.env.Stdout, sts); perr != nil {
			return perr
		}
	} else {
		printStatus(a.env.Stdout, sts)
	}
	return oneLine(err)
}

func newManager(f mitFlags, kernel running.Kernel) (*mitigate.Manager, error) {
	var keys []ed25519.PublicKey
	for _, path := range f.trusted {
		k, err := signing.LoadPublicKey(path)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return mitigate.New(mitigate.Config{Trusted: keys, StateDir: f.stateDir, BPFFS: f.bpffs, Running: kernel})
}

func printStatus(w io.Writer, sts []mitigate.Status) {
	for _, s := range sts {
		id := s.ID
		if id == "" {
			id = s.Source
		}
		line := fmt.Sprintf("%s\tv%d\t%s\t%s", id, s.Version, s.Kind, s)
		if s.Counters != nil {
			line += fmt.Sprintf("\tallowed=%d audited=%d denied=%d", s.Counters.Allowed, s.Counters.Audited, s.Counters.Denied)
		}
		fmt.Fprintln(w, line)
		for _, warn := range s.Warnings {
			fmt.Fprintf(w, "%s\twarning: %s\n", id, warn)
		}
	}
}

// oneLine folds a joined error into one line for the exit convention.
func oneLine(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
}
