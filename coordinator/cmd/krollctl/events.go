package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const eventsUsage = "events [--since ID] [--limit N]"

func events(ctx context.Context, env cli.Env, args []string) error {
	var since uint64
	var limit int
	c, _, err := prepare(env, eventsUsage, args, 0, func(fs *flag.FlagSet) {
		fs.Uint64Var(&since, "since", 0, "only events after this event ID")
		fs.IntVar(&limit, "limit", 0, "at most N events (default: the coordinator's)")
	}, func(*flag.FlagSet, []string) error {
		if limit < 0 {
			return cli.Usagef("--limit %d: want a positive number", limit)
		}
		return nil
	})
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
