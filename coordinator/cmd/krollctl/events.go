package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const eventsUsage = "events [--since ID] [--limit N]"

func events(ctx context.Context, env cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "krollctl", eventsUsage)
	cf := addCoordFlags(fs)
	since := fs.Uint64("since", 0, "only events after this event ID")
	limit := fs.Int("limit", 0, "at most N events (default: the coordinator's)")
	pos, err := cli.ParseInterspersed(fs, env.Stdout, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usage(eventsUsage)
	}
	if *limit < 0 {
		return cli.Usagef("--limit %d: want a positive number", *limit)
	}
	c, err := cf.connect(env)
	if err != nil {
		return err
	}
	evs, err := c.client.Events(ctx, *since, *limit)
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
