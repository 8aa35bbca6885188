package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	hostListUsage   = "host list [--dc NAME]"
	hostShowUsage   = "host show ID"
	hostRemoveUsage = "host remove ID [--force --reason TEXT]"
)

func hostCommand() cli.Command {
	return group("host", "registered hosts and their agents' state", map[string]cli.Command{
		"list":   {Usage: hostListUsage, Summary: "list hosts", Run: hostList},
		"show":   {Usage: hostShowUsage, Summary: "show one host: kernel, phase, slot, policies", Run: hostShow},
		"remove": {Usage: hostRemoveUsage, Summary: "forget a decommissioned host (a slot holder only with --force and --reason)", Run: hostRemove},
	})
}

func hostList(ctx context.Context, env cli.Env, args []string) error {
	var dc string
	c, _, err := prepare(env, hostListUsage, args, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&dc, "dc", "", "only this datacenter")
	}, nil)
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

func hostShow(ctx context.Context, env cli.Env, args []string) error {
	c, pos, err := prepare(env, hostShowUsage, args, 1, nil, nil)
	if err != nil {
		return err
	}
	h, err := c.client.Host(ctx, pos[0])
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

func hostRemove(ctx context.Context, env cli.Env, args []string) error {
	var (
		force  bool
		reason string
	)
	c, pos, err := prepare(env, hostRemoveUsage, args, 1, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "remove it even while it holds a slot (releases the slot)")
		fs.StringVar(&reason, "reason", "", "why, recorded in the event history (required with --force)")
	}, func(*flag.FlagSet, []string) error {
		if force && strings.TrimSpace(reason) == "" {
			return usage(hostRemoveUsage + ": --force needs --reason")
		}
		return nil
	})
	if err != nil {
		return err
	}
	h, err := c.client.RemoveHost(ctx, pos[0], wire.HostRemoveRequest{Force: force, Reason: reason})
	if err != nil {
		return c.fail(err)
	}
	return c.show(h, func(w io.Writer) {
		fmt.Fprintf(w, "removed host %s from %s\n", cell(h.ID), cell(h.Datacenter))
	})
}
