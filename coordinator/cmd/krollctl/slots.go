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

const (
	slotsListUsage    = "slots list [--dc NAME]"
	slotsReleaseUsage = "slots release --dc NAME --host ID [--reason TEXT]"
)

func slotsCommand() cli.Command {
	return group("slots", "reboot slots held per datacenter", map[string]cli.Command{
		"list":    {Usage: slotsListUsage, Summary: "list held slots", Run: slotsList},
		"release": {Usage: slotsReleaseUsage, Summary: "break-glass: free a host's slot (e.g. a lost host)", Run: slotsRelease},
	})
}

func slotsList(ctx context.Context, env cli.Env, args []string) error {
	var dc string
	c, _, err := prepare(env, slotsListUsage, args, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&dc, "dc", "", "only this datacenter")
	}, nil)
	if err != nil {
		return err
	}
	slots, err := c.client.Slots(ctx, dc)
	if err != nil {
		return c.fail(err)
	}
	slices.SortFunc(slots, func(a, b wire.Slot) int {
		return cmp.Or(cmp.Compare(a.Datacenter, b.Datacenter), cmp.Compare(a.HostID, b.HostID), cmp.Compare(a.Token, b.Token))
	})
	return c.show(nonNil(slots), func(w io.Writer) {
		if len(slots) == 0 {
			fmt.Fprintln(w, "no slots held")
			return
		}
		slotTable(w, slots)
	})
}

func slotTable(w io.Writer, slots []wire.Slot) {
	row(w, "DC", "HOST", "TOKEN", "OWNER", "GRANTED", "LEASE-EXPIRES", "REBOOT-DEADLINE", "STATE")
	for _, s := range slots {
		state := "held"
		if s.Lost {
			state = "lost"
		}
		row(w, s.Datacenter, s.HostID, strconv.FormatUint(s.Token, 10), s.Owner,
			ts(s.Granted), ts(s.LeaseExpires), ts(s.RebootDeadline), state)
	}
}

func slotsRelease(ctx context.Context, env cli.Env, args []string) error {
	var dc, host, reason string
	c, _, err := prepare(env, slotsReleaseUsage, args, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&dc, "dc", "", "datacenter of the slot")
		fs.StringVar(&host, "host", "", "host holding the slot")
		fs.StringVar(&reason, "reason", "", "why, recorded in the event history")
	}, func(*flag.FlagSet, []string) error {
		if dc == "" || host == "" {
			return usage(slotsReleaseUsage)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s, err := c.client.ReleaseSlot(ctx, wire.SlotReleaseRequest{Datacenter: dc, HostID: host, Reason: reason})
	if err != nil {
		return c.fail(err)
	}
	return c.show(s, func(w io.Writer) {
		fmt.Fprintf(w, "released the slot of host %s in %s (token %d)\n\n", cell(s.HostID), cell(s.Datacenter), s.Token)
		slotTable(w, []wire.Slot{*s})
	})
}
