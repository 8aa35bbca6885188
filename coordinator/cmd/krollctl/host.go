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
	hostLineUsage   = "host set-line ID (LINE [--force] | --clear) [--reason TEXT]"
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
		&cobra.Command{Use: use(hostShowUsage), Short: "show one host: kernel, line, phase, slot, policies", Args: nArgs(1, hostShowUsage),
			RunE: func(cmd *cobra.Command, args []string) error { return a.hostShow(cmd.Context(), args[0]) }},
		remove, a.hostLineCommand())
}

// hostLineCommand is host set-line: an operator's assignment of a kernel
// line, which wins over the datacenter's line rule and the agent's
// configured line.
func (a *app) hostLineCommand() *cobra.Command {
	cmd := &cobra.Command{Use: use(hostLineUsage), Short: "assign a host a kernel line (migrations go through the rollout gates, never a downgrade)",
		Long: `Assign a host the kernel line it follows. The assignment wins over its
datacenter's line rule (dc set --line) and the line of its agent's
configuration. The host then gets its datacenter's target release of the
new line and takes a slot, drains and reboots like any rollout. It moves
only when it is at rest (no slot, idle or healthy); a move to a kernel
older than the one it runs is refused, with an event. A line no
registered release is of needs --force. --clear removes the assignment.`,
		Example: `  krollctl host set-line edge-fra1-017 6.18 --reason "6.18 canary"
  krollctl host set-line edge-fra1-017 --clear`,
		Args: cobra.RangeArgs(1, 2)}
	var (
		req   wire.HostLineRequest
		clear bool
	)
	cmd.Flags().BoolVar(&req.Force, "force", false, "assign a line no registered release is of yet")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the operator's assignment (the datacenter's rule or the agent's line applies again)")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why, recorded in the event history")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case clear && len(args) == 2:
			return cli.Usagef("host set-line: give a LINE or --clear, not both (usage: krollctl %s)", hostLineUsage)
		case !clear && len(args) != 2:
			return cli.Usagef("host set-line: give a LINE or --clear (usage: krollctl %s)", hostLineUsage)
		case clear && req.Force:
			return cli.Usagef("host set-line: --force assigns a line; nothing to force with --clear")
		case len(args) == 2 && !wire.ValidLine(args[1]):
			return cli.Usagef("host set-line: %q is not a kernel line (MAJOR.MINOR, such as 6.12)", printable(args[1]))
		}
		if len(args) == 2 {
			req.Line = args[1]
		}
		return a.hostSetLine(cmd.Context(), args[0], req)
	}
	return cmd
}

func (a *app) hostSetLine(ctx context.Context, id string, req wire.HostLineRequest) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	h, err := c.client.SetHostLine(ctx, id, req)
	if err != nil {
		return c.fail(err)
	}
	return c.show(h, func(w io.Writer) {
		switch {
		case h.PendingLine != "":
			fmt.Fprintf(w, "host %s stays on kernel line %s for now; line %s %s\n", cell(h.ID), cell(h.KernelLine), cell(h.PendingLine), cell(h.LineWait))
		default:
			fmt.Fprintf(w, "host %s follows kernel line %s (%s)\n", cell(h.ID), cell(h.KernelLine), cell(h.LineSource))
		}
	})
}

// hostLine formats the line a host follows and where it comes from.
func hostLine(h wire.Host) (line, from string) {
	line = h.KernelLine
	if h.PendingLine != "" {
		line += "→" + h.PendingLine
	}
	return line, h.LineSource
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
		row(w, "DC", "HOST", "LINE", "FROM", "KERNEL", "PHASE", "ALIVE", "LAST-HEARTBEAT", "SLOT", "FLAGS")
		for _, h := range hosts {
			slot := ""
			if h.Slot != nil {
				slot = strconv.FormatUint(h.Slot.Token, 10)
			}
			line, from := hostLine(h)
			row(w, h.Datacenter, h.ID, line, from, h.Kernel, h.Phase, yesNo(h.Alive), ts(h.LastHeartbeat), slot, hostFlags(h))
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
	switch {
	case strings.HasPrefix(h.LineWait, "migration refused"):
		flags = append(flags, "line-refused")
	case h.PendingLine != "":
		flags = append(flags, "line-deferred")
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
		{"Kernel line:", lineDetail(h)},
		{"Kernel:", h.Kernel},
		{"Phase:", h.Phase},
		{"Alive:", yesNo(h.Alive)},
		{"Last heartbeat:", ts(h.LastHeartbeat)},
		{"Lost:", yesNo(h.Lost)},
		{"Unhealthy:", yesNo(h.Unhealthy)},
		{"Slot:", slot},
	}
	if h.PendingLine != "" {
		fields = slices.Insert(fields, 3, [2]string{"Pending line:", h.PendingLine + ": " + h.LineWait})
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

// lineDetail is the host show line: the line the host follows, where it
// comes from, the agent's configured line and the one it reports it
// follows, when known.
func lineDetail(h *wire.Host) string {
	var d []string
	if h.LineSource != "" {
		d = append(d, "from "+h.LineSource)
	}
	if h.AgentLine != "" && h.AgentLine != h.KernelLine {
		d = append(d, "agent configured "+h.AgentLine)
	}
	if h.AssignedLine != "" && h.AssignedLine != h.KernelLine {
		d = append(d, "agent still follows "+h.AssignedLine)
	}
	if len(d) == 0 {
		return h.KernelLine
	}
	return h.KernelLine + " (" + strings.Join(d, "; ") + ")"
}
