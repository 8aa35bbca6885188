package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/signing"
)

const mitigationsUsage = "apply [--trusted-key PUB]... [--state-dir DIR] [--bpffs DIR] POLICY... | list | remove ID"

func mitigationsCommand() cli.Command {
	return cli.Command{
		Usage:   mitigationsUsage,
		Summary: "apply, list or remove bpf-lsm mitigation policies (one-shot)",
		Run:     mitigations,
	}
}

type mitFlags struct {
	trusted  []string
	stateDir string
	bpffs    string
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
	fs.StringVar(&f.stateDir, "state-dir", mitigate.DefaultStateDir, "where accepted policies are stored")
	fs.StringVar(&f.bpffs, "bpffs", mitigate.DefaultBPFFS, "where programs, maps and links are pinned")
	pos, err := cli.ParseInterspersed(fs, env.Stdout, args)
	if err != nil {
		return err
	}
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
		sts, err := m.Apply(ctx, docs)
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
