// Command kroll-agent is kroll's on-host agent. It stages new kernels,
// withdraws anycast routes, loads bpf-lsm mitigations, kexecs or reboots
// into the new kernel and reports health to the coordinator.
//
// `kroll-agent run` is the daemon (package agent/lifecycle composes the
// host steps); stage, status, reset and mitigations are one-shot commands.
package main

import (
	"context"

	"github.com/kroll-dev/kroll/pkg/cli"
)

func main() { cli.Main("kroll-agent", run) }

func run(ctx context.Context, env cli.Env, args []string) error {
	return cli.Dispatch(ctx, env, "kroll on-host agent", commands(), args)
}

func commands() map[string]cli.Command {
	return map[string]cli.Command{
		"mitigations": mitigationsCommand(),
		"run":         runCommand(),
		"stage":       stageCommand(),
		"status":      statusCommand(),
		"reset":       resetCommand(),
	}
}
