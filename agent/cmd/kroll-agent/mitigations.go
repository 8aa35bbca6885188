package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/tomlfile"
)

const mitigationsUsage = "apply [--trusted-key PUB]... [--config FILE] [--state-dir DIR] [--bpffs DIR] POLICY... | list | remove ID"

func mitigationsCommand() cli.Command {
	return cli.Command{
		Usage:   mitigationsUsage,
		Summary: "apply, list or remove bpf-lsm mitigation policies (one-shot)",
		Run:     mitigations,
	}
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

func mitigations(ctx context.Context, env cli.Env, args []string) error {
	if len(args) == 0 {
		return cli.Usagef("usage: %s mitigations %s", env.Name, mitigationsUsage)
	}
	sub, args := args[0], args[1:]
	var f mitFlags
	fs := cli.NewFlagSet(env, env.Name+" mitigations "+sub, "[flags] ARGS")
	fs.Func("trusted-key", "trusted public key `PUB` (PEM); repeatable", func(s string) error {
		f.trusted = append(f.trusted, s)
		return nil
	})
	fs.StringVar(&f.config, "config", DefaultConfigPath, "agent configuration `FILE` (TOML) whose mitigation directories to use")
	fs.StringVar(&f.stateDir, "state-dir", "", "where accepted policies are stored (default: the agent's, from --config)")
	fs.StringVar(&f.bpffs, "bpffs", "", "where programs, maps and links are pinned (default: the agent's, from --config)")
	pos, err := cli.ParseInterspersed(fs, env.Stdout, args)
	if err != nil {
		return err
	}
	configSet := false
	fs.Visit(func(fl *flag.Flag) { configSet = configSet || fl.Name == "config" })
	switch sub {
	case "apply":
		if len(pos) == 0 {
			return cli.Usagef("mitigations apply: no POLICY given")
		}
		if len(f.trusted) == 0 {
			return cli.Usagef("mitigations apply: no --trusted-key given")
		}
	case "list":
		if len(pos) != 0 {
			return cli.Usagef("mitigations list takes no arguments")
		}
	case "remove":
		if len(pos) != 1 {
			return cli.Usagef("mitigations remove: want exactly one ID")
		}
	default:
		return cli.Usagef("mitigations: unknown command %q (want apply, list or remove)", sub)
	}
	if err := f.resolveDirs(configSet); err != nil {
		return err
	}
	m, err := newManager(f)
	if err != nil {
		return err
	}
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
		sts, err := m.ApplyOnly(ctx, docs)
		printStatus(env.Stdout, sts)
		return oneLine(err)
	case "list":
		sts, err := m.List(ctx)
		printStatus(env.Stdout, sts)
		return oneLine(err)
	default:
		return m.Remove(ctx, pos[0])
	}
}

func newManager(f mitFlags) (*mitigate.Manager, error) {
	var keys []ed25519.PublicKey
	for _, path := range f.trusted {
		k, err := signing.LoadPublicKey(path)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return mitigate.New(mitigate.Config{Trusted: keys, StateDir: f.stateDir, BPFFS: f.bpffs})
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
