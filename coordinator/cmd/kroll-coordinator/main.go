// Command kroll-coordinator is one node of kroll's regional Raft quorum that
// hands out reboot slots per datacenter.
//
// This build validates its command line (including the rule that without
// TLS it listens on loopback only); the Raft server itself lands with the
// coordinator issue.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/kroll-dev/kroll/pkg/buildinfo"
	"github.com/kroll-dev/kroll/pkg/cli"
)

func main() { cli.Main("kroll-coordinator", run) }

const usage = `--node-id ID --data-dir DIR --raft-addr HOST:PORT --http-addr HOST:PORT --peers ID=HOST:PORT,...
       [--config FILE] [--tls-cert FILE --tls-key FILE --tls-ca FILE]
       kroll-coordinator version`

func run(ctx context.Context, env cli.Env, args []string) error {
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintln(env.Stdout, buildinfo.String(env.Name))
		return nil
	}
	fs := cli.NewFlagSet(env, env.Name, usage)
	var o options
	o.register(fs)
	if err := cli.Parse(fs, env.Stdout, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := o.validate(); err != nil {
		return &cli.UsageError{Err: err}
	}
	return errors.New("the coordinator server is not part of this build yet")
}
