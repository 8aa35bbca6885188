// Command kroll-agent is kroll's on-host agent. It stages new kernels,
// withdraws anycast routes, loads bpf-lsm mitigations, kexecs or reboots
// into the new kernel and reports health to the coordinator.
//
// `kroll-agent run` is the daemon (package agent/lifecycle composes the
// host steps); stage, status, reset and mitigations are one-shot commands.
// The global flags (--config, -o/--output) go before or after the command.
package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/pkg/cli"
)

func main() { cli.Main("kroll-agent", run) }

func run(ctx context.Context, env cli.Env, args []string) error {
	return cli.Execute(ctx, env, newRoot(env), args)
}

// app is one invocation of kroll-agent: its process environment and the
// global flags.
type app struct {
	env    cli.Env
	kernel running.Kernel // the running kernel
	config string         // --config
	output string         // -o/--output
	root   *cobra.Command
}

// newRoot returns the command tree of kroll-agent.
func newRoot(env cli.Env) *cobra.Command {
	a := &app{env: env, kernel: running.ProcFS{}}
	root := &cobra.Command{
		Use:   "kroll-agent",
		Short: "kroll on-host agent",
		Long: `kroll-agent is kroll's on-host agent: it stages signed kernel releases,
withdraws the host's anycast routes, kexecs (or reboots) into the new kernel
in a reboot slot granted by the kroll coordinator, checks the host's health
afterwards and keeps signed bpf-lsm mitigation policies in force.

'kroll-agent run' is the daemon (systemd Type=notify); the other commands
are one-shot and work on the daemon's state (from --config).

Exit status: 0 success, 1 failure, 2 bad usage.`,
		Annotations: map[string]string{"man-section": "8"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return cli.Usagef("no command given")
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if a.output != "table" && a.output != "json" {
				return cli.Usagef("--output %q: want table or json", a.output)
			}
			return nil
		},
	}
	a.root = root
	pf := root.PersistentFlags()
	pf.StringVar(&a.config, "config", DefaultConfigPath, "agent configuration `FILE` (TOML)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.MarkPersistentFlagFilename("config", "toml")
	root.AddCommand(a.runCommand(), a.stageCommand(), a.statusCommand(), a.resetCommand(), a.mitigationsCommand())
	return root
}

// configSet reports whether --config was given.
func (a *app) configSet() bool { return a.root.PersistentFlags().Changed("config") }

// json reports whether the output is JSON.
func (a *app) json() bool { return a.output == "json" }

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
