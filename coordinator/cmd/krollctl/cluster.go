package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	clusterMembersUsage = "cluster members"
	clusterJoinUsage    = "cluster join ID RAFT_ADDR [HTTP_ADDR]"
	clusterRemoveUsage  = "cluster remove ID"
)

func (a *app) clusterCommand() *cobra.Command {
	return cli.Group("cluster", "coordinator cluster membership",
		&cobra.Command{Use: use(clusterMembersUsage), Short: "list the coordinator nodes", Args: nArgs(0, clusterMembersUsage),
			RunE: func(cmd *cobra.Command, _ []string) error { return a.clusterMembers(cmd.Context()) }},
		&cobra.Command{Use: use(clusterJoinUsage), Short: "add a voter to the cluster (admin)", Args: rangeArgs(2, 3, clusterJoinUsage),
			Long: `Add a voter to the cluster: ID is its node id (kroll-coordinator --node-id),
RAFT_ADDR the HOST:PORT of its Raft transport (--raft-addr), HTTP_ADDR the
HOST:PORT of its API (--http-addr), which followers forward writes to.`,
			Example: "  krollctl cluster join c4 10.0.0.4:7001 10.0.0.4:8001",
			RunE:    func(cmd *cobra.Command, args []string) error { return a.clusterJoin(cmd.Context(), args) }},
		&cobra.Command{Use: use(clusterRemoveUsage), Short: "remove a node from the cluster (admin)", Args: nArgs(1, clusterRemoveUsage),
			RunE: func(cmd *cobra.Command, args []string) error { return a.clusterRemove(cmd.Context(), args[0]) }},
	)
}

func (a *app) clusterMembers(ctx context.Context) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	ms, err := c.client.Members(ctx)
	if err != nil {
		return c.fail(err)
	}
	return showMembers(c, "", ms)
}

func (a *app) clusterJoin(ctx context.Context, pos []string) error {
	req := wire.JoinRequest{ID: pos[0], RaftAddr: pos[1]}
	if len(pos) == 3 {
		req.HTTPAddr = pos[2]
	}
	if !isHostPort(req.RaftAddr) {
		return cli.Usagef("RAFT_ADDR %q: want HOST:PORT", req.RaftAddr)
	}
	if req.HTTPAddr != "" && !isHostPort(req.HTTPAddr) {
		return cli.Usagef("HTTP_ADDR %q: want HOST:PORT", req.HTTPAddr)
	}
	c, err := a.connect()
	if err != nil {
		return err
	}
	ms, err := c.client.Join(ctx, req)
	if err != nil {
		return c.fail(err)
	}
	return showMembers(c, fmt.Sprintf("%s joined the cluster", cell(req.ID)), ms)
}

func (a *app) clusterRemove(ctx context.Context, id string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	ms, err := c.client.Remove(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	return showMembers(c, fmt.Sprintf("%s removed from the cluster", cell(id)), ms)
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
