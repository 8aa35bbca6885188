package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	hostListUsage   = "host list [--dc NAME]"
	hostShowUsage   = "host show ID"
	hostRemoveUsage = "host remove ID [--force --reason TEXT]"
)

func (a *app) hostCommand() *cobra.Command {
	list := &cobra.Command{Use: use(hostListUsage), Short: "list hosts", Args: nArgs(0, hostListUsage)}
	var dc string
	list.Flags().StringVar(&dc, "dc", "", "only this datacenter")
	list.RunE = func(cmd *cobra.Command, _ []string) error { return a.hostList(cmd.Context(), dc) }

	remove := &cobra.Command{Use: use(hostRemoveUsage), Short: "forget a decommissioned host (a slot holder only with --force and --reason)", Args: nArgs(1, hostRemoveUsage)}
	var req wire.HostRemoveRequest
	remove.Flags().BoolVar(&req.Force, "force", false, "remove it even while it holds a slot (releases the slot)")
	remove.Flags().StringVar(&req.Reason, "reason", "", "why, recorded in the event history (required with --force)")
	remove.RunE = func(cmd *cobra.Command, args []string) error { return a.hostRemove(cmd.Context(), args[0], req) }
	return cli.Group("host", "registered hosts and their agents' state",
		list,
		&cobra.Command{Use: use(hostShowUsage), Short: "show one host: kernel, phase, slot, policies", Args: nArgs(1, hostShowUsage),
			RunE: func(cmd *cobra.Command, args []string) error { return a.hostShow(cmd.Context(), args[0]) }},
		remove)
}

func (a *app) hostList(ctx context.Context, dc string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	hosts, err := c.client.Hosts(ctx, dc)
	if err != nil {
		return c.fail(err)
	}
	slices.SortFunc(hosts, func(a, b wire.Host) int {
		return cmp.Or(cmp.Compare(a.Datacenter, b.Datacenter), cmp.Compare(a.ID, b.ID))
	})
	return c.show(nonNil(hosts), func(w io.Writer) {
		if len(hosts) == 0 {
			fmt.Fprintln(w, "no hosts")
			return
		}
		row(w, "DC", "HOST", "KERNEL", "PHASE", "ALIVE", "LAST-HEARTBEAT", "SLOT", "FLAGS")
		for _, h := range hosts {
			slot := ""
			if h.Slot != nil {
				slot = strconv.FormatUint(h.Slot.Token, 10)
			}
			row(w, h.Datacenter, h.ID, h.Kernel, h.Phase, yesNo(h.Alive), ts(h.LastHeartbeat), slot, hostFlags(h))
		}
	})
}

// hostFlags lists what needs an operator's eye: "lost,unhealthy".
func hostFlags(h wire.Host) string {
	var flags []string
	if h.Lost {
		flags = append(flags, "lost")
	}
	if h.Unhealthy {
		flags = append(flags, "unhealthy")
	}
	return strings.Join(flags, ",")
}

func (a *app) hostShow(ctx context.Context, id string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	h, err := c.client.Host(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	slices.SortFunc(h.Policies, func(a, b wire.PolicyStatus) int { return cmp.Compare(a.ID, b.ID) })
	return c.show(h, func(w io.Writer) { hostDetail(w, h) })
}

func hostDetail(w io.Writer, h *wire.Host) {
	slot := ""
	if s := h.Slot; s != nil {
		slot = fmt.Sprintf("token %d, owner %s, granted %s, lease expires %s, reboot deadline %s",
			s.Token, cell(s.Owner), ts(s.Granted), ts(s.LeaseExpires), ts(s.RebootDeadline))
		if s.Lost {
			slot += ", LOST"
		}
	}
	fields := [][2]string{
		{"Host:", h.ID},
		{"Datacenter:", h.Datacenter},
		{"Kernel line:", h.KernelLine},
		{"Kernel:", h.Kernel},
		{"Phase:", h.Phase},
		{"Alive:", yesNo(h.Alive)},
		{"Last heartbeat:", ts(h.LastHeartbeat)},
		{"Lost:", yesNo(h.Lost)},
		{"Unhealthy:", yesNo(h.Unhealthy)},
		{"Slot:", slot},
	}
	for _, f := range fields {
		row(w, f[0], f[1])
	}
	if len(h.Policies) == 0 {
		row(w, "Policies:", "none")
		return
	}
	fmt.Fprintln(w, "Policies:")
	// A new block of columns: the blank line separates it from the
	// fields above.
	fmt.Fprintln(w)
	row(w, "  ID", "VERSION", "STATE", "DETAIL")
	for _, p := range h.Policies {
		row(w, "  "+p.ID, strconv.FormatInt(p.Version, 10), string(p.State), p.Detail)
	}
}

func (a *app) hostRemove(ctx context.Context, id string, req wire.HostRemoveRequest) error {
	if req.Force && strings.TrimSpace(req.Reason) == "" {
		return usage(hostRemoveUsage + ": --force needs --reason")
	}
	c, err := a.connect()
	if err != nil {
		return err
	}
	h, err := c.client.RemoveHost(ctx, id, req)
	if err != nil {
		return c.fail(err)
	}
	return c.show(h, func(w io.Writer) {
		fmt.Fprintf(w, "removed host %s from %s\n", cell(h.ID), cell(h.Datacenter))
	})
}
