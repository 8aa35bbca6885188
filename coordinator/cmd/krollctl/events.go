package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const eventsUsage = "events [--since ID] [--limit N]"

func (a *app) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: eventsUsage, Short: "the coordinator's recent events", Args: nArgs(0, eventsUsage)}
	var since uint64
	var limit int
	cmd.Flags().Uint64Var(&since, "since", 0, "only events after this event ID")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most N events (default: the coordinator's)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return a.events(cmd.Context(), since, limit) }
	return cmd
}

func (a *app) events(ctx context.Context, since uint64, limit int) error {
	if limit < 0 {
		return cli.Usagef("--limit %d: want a positive number", limit)
	}
	c, err := a.connect()
	if err != nil {
		return err
	}
	evs, err := c.client.Events(ctx, since, limit)
	if err != nil {
		return c.fail(err)
	}
	slices.SortFunc(evs, func(a, b wire.Event) int { return cmp.Compare(a.ID, b.ID) })
	return c.show(nonNil(evs), func(w io.Writer) {
		if len(evs) == 0 {
			fmt.Fprintln(w, "no events")
			return
		}
		row(w, "ID", "TIME", "TYPE", "DC", "HOST", "MESSAGE")
		for _, e := range evs {
			row(w, strconv.FormatUint(e.ID, 10), ts(e.Time), e.Type, e.Datacenter, e.Host, e.Message)
		}
	})
}
