package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/cli"
)

const recoverUsage = `recover --node-id ID --data-dir DIR --peers ID=HOST:PORT,... [--dry-run]

Rewrites the Raft configuration of a STOPPED node after the cluster lost
its quorum for good: --peers lists the surviving nodes (the same list on
every survivor, this node included). Stop every surviving node, run
'recover --dry-run' on each and recover the one with the highest last
term, then index (its log is replayed whole, committed or not), run
recover with the same --peers on the others, then start them all
normally with that --peers.`

// recoverCmd runs 'kroll-coordinator recover'.
func recoverCmd(ctx context.Context, env cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, env.Name, recoverUsage)
	var nodeID, dataDir, peers string
	var dryRun bool
	fs.StringVar(&nodeID, "node-id", "", "this node's id; must appear in --peers")
	fs.StringVar(&dataDir, "data-dir", "", "the node's data directory (as it runs with)")
	fs.StringVar(&peers, "peers", "", "the new voter set: ID=HOST:PORT,... of the surviving nodes")
	fs.BoolVar(&dryRun, "dry-run", false, "only report the data directory's last log entry and state; change nothing")
	if err := cli.Parse(fs, env.Stdout, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	var errs []string
	if !nodeIDPattern.MatchString(nodeID) {
		errs = append(errs, fmt.Sprintf("--node-id: %q is not a valid id (lowercase letters, digits, '-')", nodeID))
	}
	if dataDir == "" {
		errs = append(errs, "--data-dir is required")
	}
	set, err := parsePeers(peers)
	switch {
	case peers == "":
		errs = append(errs, "--peers is required: the surviving nodes, ID=HOST:PORT,...")
	case err != nil:
		errs = append(errs, err.Error())
	case set[nodeID] == "" && nodeID != "":
		errs = append(errs, fmt.Sprintf("--peers does not list --node-id %q: recover runs on a surviving node of the new configuration", nodeID))
	}
	if len(errs) > 0 {
		return cli.Usagef("%s", strings.Join(errs, "; "))
	}
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("--data-dir %s: not a directory", dataDir)
	}
	log := cli.Logger(env.Stderr, slog.LevelInfo).With("node", nodeID)
	rep, err := store.Recover(ctx, store.RecoverConfig{NodeID: nodeID, DataDir: dataDir, Peers: set, DryRun: dryRun, Logger: log})
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(set))
	for id, addr := range set {
		ids = append(ids, id+"="+addr)
	}
	sort.Strings(ids)
	fmt.Fprintf(env.Stdout, "%s: last log entry: term %d, index %d; state at index %d: %d datacenters, %d hosts\n",
		dataDir, rep.LastTerm, rep.LastIndex, rep.StateIndex, rep.Datacenters, rep.Hosts)
	if dryRun {
		fmt.Fprintln(env.Stdout, "dry run: nothing changed")
		return nil
	}
	fmt.Fprintf(env.Stdout, "recovered: the voters are now %s; start the node with --peers %s\n", strings.Join(ids, ","), strings.Join(ids, ","))
	return nil
}
