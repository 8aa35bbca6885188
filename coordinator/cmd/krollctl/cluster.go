package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	clusterMembersUsage = "cluster members"
	clusterJoinUsage    = "cluster join ID RAFT_ADDR [HTTP_ADDR]"
	clusterRemoveUsage  = "cluster remove ID"
)

func clusterCommand() cli.Command {
	return group("cluster", "coordinator cluster membership", map[string]cli.Command{
		"members": {Usage: clusterMembersUsage, Summary: "list the coordinator nodes", Run: clusterMembers},
		"join":    {Usage: clusterJoinUsage, Summary: "add a voter to the cluster (admin)", Run: clusterJoin},
		"remove":  {Usage: clusterRemoveUsage, Summary: "remove a node from the cluster (admin)", Run: clusterRemove},
	})
}

func clusterMembers(ctx context.Context, env cli.Env, args []string) error {
	c, _, err := prepare(env, clusterMembersUsage, args, 0, nil, nil)
	if err != nil {
		return err
	}
	ms, err := c.client.Members(ctx)
	if err != nil {
		return c.fail(err)
	}
	return showMembers(c, "", ms)
}

func clusterJoin(ctx context.Context, env cli.Env, args []string) error {
	var req wire.JoinRequest
	c, _, err := prepare(env, clusterJoinUsage, args, varArgs, nil, func(_ *flag.FlagSet, pos []string) error {
		if len(pos) < 2 || len(pos) > 3 || pos[0] == "" {
			return usage(clusterJoinUsage)
		}
		req = wire.JoinRequest{ID: pos[0], RaftAddr: pos[1]}
		if len(pos) == 3 {
			req.HTTPAddr = pos[2]
		}
		if !isHostPort(req.RaftAddr) {
			return cli.Usagef("RAFT_ADDR %q: want HOST:PORT", req.RaftAddr)
		}
		if req.HTTPAddr != "" && !isHostPort(req.HTTPAddr) {
			return cli.Usagef("HTTP_ADDR %q: want HOST:PORT", req.HTTPAddr)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ms, err := c.client.Join(ctx, req)
	if err != nil {
		return c.fail(err)
	}
	return showMembers(c, fmt.Sprintf("%s joined the cluster", cell(req.ID)), ms)
}

func clusterRemove(ctx context.Context, env cli.Env, args []string) error {
	c, pos, err := prepare(env, clusterRemoveUsage, args, 1, nil, nil)
	if err != nil {
		return err
	}
	ms, err := c.client.Remove(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	return showMembers(c, fmt.Sprintf("%s removed from the cluster", cell(pos[0])), ms)
}

// isHostPort reports whether addr is HOST:PORT with a non-empty host and
// a numeric port.
func isHostPort(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

func sortMembers(ms []wire.Member) {
	slices.SortFunc(ms, func(a, b wire.Member) int { return cmp.Compare(a.ID, b.ID) })
}

// showMembers prints the membership, in table mode after headline.
func showMembers(c *coord, headline string, ms []wire.Member) error {
	sortMembers(ms)
	return c.show(nonNil(ms), func(w io.Writer) {
		if headline != "" {
			fmt.Fprintf(w, "%s\n\n", headline)
		}
		row(w, "ID", "RAFT-ADDR", "HTTP-ADDR", "ROLE", "VOTER")
		for _, m := range ms {
			role := "follower"
			if m.Leader {
				role = "leader"
			}
			row(w, m.ID, m.RaftAddr, m.HTTPAddr, role, yesNo(m.Voter))
		}
	})
}
