// Command krollctl is the operator CLI of kroll: key management and
// signing of release manifests and mitigation policies. The coordinator
// commands (status, cluster, dc, slots, hosts, rollouts, policies) land
// with the coordinator issue.
package main

import (
	"context"

	"github.com/kroll-dev/kroll/pkg/cli"
)

func main() { cli.Main("krollctl", run) }

func run(ctx context.Context, env cli.Env, args []string) error {
	return cli.Dispatch(ctx, env, "operator CLI of kroll", commands(), args)
}

func commands() map[string]cli.Command {
	return map[string]cli.Command{
		"keygen":  {Usage: keygenUsage, Summary: "create an ed25519 key pair: PREFIX.key (0600) and PREFIX.pub", Run: keygen},
		"sign":    {Usage: signUsage, Summary: "sign a release manifest or mitigation policy: writes FILE.sig", Run: sign},
		"verify":  {Usage: verifyUsage, Summary: "check FILE against FILE.sig and trusted public keys", Run: verify},
		"status":  {Usage: statusUsage, Summary: "cluster overview and per-datacenter hosts, kernels, slots and phases", Run: status},
		"cluster": clusterCommand(),
		"dc":      dcCommand(),
		"slots":   slotsCommand(),
		"host":    hostCommand(),
		"release": releaseCommand(),
		"policy":  policyCommand(),
		"rollout": rolloutCommand(),
		"events":  {Usage: eventsUsage, Summary: "the coordinator's recent events", Run: events},

		"simulate": simulateCommand(),
		"snapshot": snapshotCommand(),
	}
}
