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

const (
	slotsListUsage    = "slots list [--dc NAME]"
	slotsReleaseUsage = "slots release --dc NAME --host ID [--reason TEXT]"
)

func (a *app) slotsCommand() *cobra.Command {
	list := &cobra.Command{Use: use(slotsListUsage), Short: "list held slots", Args: nArgs(0, slotsListUsage)}
	var dc string
	list.Flags().StringVar(&dc, "dc", "", "only this datacenter")
	list.RunE = func(cmd *cobra.Command, _ []string) error { return a.slotsList(cmd.Context(), dc) }

	release := &cobra.Command{Use: use(slotsReleaseUsage), Short: "break-glass: free a host's slot (e.g. a lost host)", Args: nArgs(0, slotsReleaseUsage)}
	var req wire.SlotReleaseRequest
	release.Flags().StringVar(&req.Datacenter, "dc", "", "datacenter of the slot")
	release.Flags().StringVar(&req.HostID, "host", "", "host holding the slot")
	release.Flags().StringVar(&req.Reason, "reason", "", "why, recorded in the event history")
	release.RunE = func(cmd *cobra.Command, _ []string) error { return a.slotsRelease(cmd.Context(), req) }
	return cli.Group("slots", "reboot slots held per datacenter", list, release)
}

func (a *app) slotsList(ctx context.Context, dc string) error {
	c, err := a.connect()
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

func (a *app) slotsRelease(ctx context.Context, req wire.SlotReleaseRequest) error {
	if req.Datacenter == "" || req.HostID == "" {
		return usage(slotsReleaseUsage)
	}
	c, err := a.connect()
	if err != nil {
		return err
	}
	s, err := c.client.ReleaseSlot(ctx, req)
	if err != nil {
		return c.fail(err)
	}
	return c.show(s, func(w io.Writer) {
		fmt.Fprintf(w, "released the slot of host %s in %s (token %d)\n\n", cell(s.HostID), cell(s.Datacenter), s.Token)
		slotTable(w, []wire.Slot{*s})
	})
}
