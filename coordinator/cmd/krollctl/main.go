// Command krollctl is the operator CLI of kroll: the coordinator's
// cluster, datacenters, slots, hosts, releases, rollouts, policies and
// events; key management and signing of release manifests and mitigation
// policies; and the fleet simulator.
//
// Global flags (--coordinator, -o/--output, --token, --tls-*) go before or
// after the command; every connection setting has an environment variable
// (KROLL_COORDINATOR, KROLL_TOKEN, KROLL_TLS_CA, KROLL_TLS_CERT,
// KROLL_TLS_KEY), the flag winning. --region and --all-regions run a
// command against the regions of a fleet file (--fleet, KROLL_FLEET).
package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
)

func main() { cli.Main("krollctl", run) }

func run(ctx context.Context, env cli.Env, args []string) error {
	return cli.Execute(ctx, env, newRoot(env), args)
}

// app is one invocation of krollctl: its process environment and the
// global flags.
type app struct {
	env cli.Env
	g   globals
	r   regionFlags
}

// newRoot returns the command tree of krollctl.
func newRoot(env cli.Env) *cobra.Command {
	a := &app{env: env}
	root := &cobra.Command{
		Use:   "krollctl",
		Short: "operator CLI of kroll",
		Long: `krollctl is the operator CLI of kroll: it talks to a coordinator quorum
(cluster, datacenters, reboot slots, hosts, releases, rollouts, mitigation
policies, events), creates and checks the ed25519 keys and signatures of
releases and policies, and simulates fleet rollouts.

Connection settings come from the flags or, when a flag is not given, the
environment: KROLL_COORDINATOR (one URL or several, comma-separated, tried in
turn when one cannot be reached or answers 503), KROLL_TOKEN, KROLL_TLS_CA,
KROLL_TLS_CERT, KROLL_TLS_KEY.

A fleet of regions, each its own coordinator quorum, is described in the
fleet file (--fleet, env KROLL_FLEET, default ~/.config/kroll/fleet.toml):
--region R[,R...] or --all-regions runs status, policy push|list|retire
against those regions concurrently, with a REGION column, one result line
per region, and exit status 1 if any region failed.

Exit status: 0 success, 1 failure, 2 bad usage.`,
		Annotations: map[string]string{"man-section": "1"},
		RunE: func(cmd *cobra.Command, args []string) error {
			_ = cmd.Help()
			return cli.Usagef("no command given")
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.g.check(); err != nil {
				return err
			}
			return a.r.check(cmd, &a.g)
		},
	}
	a.g.register(root)
	a.r.register(root, env)
	root.AddCommand(
		a.statusCommand(),
		a.clusterCommand(),
		a.dcCommand(),
		a.slotsCommand(),
		a.hostCommand(),
		a.releaseCommand(),
		a.policyCommand(),
		a.rolloutCommand(),
		a.cveCommand(),
		a.trainCommand(),
		a.eventsCommand(),
		a.keygenCommand(),
		a.signCommand(),
		a.verifyCommand(),
		a.simulateCommand(),
		a.snapshotCommand(),
	)
	return root
}
