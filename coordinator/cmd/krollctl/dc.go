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
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	dcListUsage   = "dc list"
	dcSetUsage    = `dc set NAME [--create] [--slots N | --slots-pct P] [--min-healthy-pct P] [--window "Mon-Sun 02:00-05:00 Europe/Berlin"] [--tier edge|control|staging] [--failure-budget N] [--target RELEASE] [--untarget LINE] [--line LINE --line-pct P [--line-force]]`
	dcPauseUsage  = "dc pause NAME [--reason TEXT]"
	dcResumeUsage = "dc resume NAME"
)

func (a *app) dcCommand() *cobra.Command {
	set := &cobra.Command{Use: use(dcSetUsage), Short: "change a datacenter's settings (a new one only with --create)", Args: nArgs(1, dcSetUsage),
		Long: `Change a datacenter's settings. A datacenter that does not exist yet is
created only with --create, so that a mistyped name is refused instead of
becoming a new, empty datacenter.`,
		Example: `  krollctl dc set fra1 --create --slots 2 --min-healthy-pct 90 --window "Mon-Sun 02:00-04:00 Europe/Berlin"
  krollctl dc set fra1 --target 6.1.192-kroll.1
  krollctl dc set fra1 --line 6.18 --line-pct 10    # 10 % of the hosts (a stable hash of their ids) follow 6.18
  krollctl dc set fra1 --line-pct 0                 # remove the line rule`}
	var (
		slots, slotsPct, minHealthy, budget int
		window, tier, target, untarget      string
		create                              bool
		line                                string
		linePct                             int
	)
	fs := set.Flags()
	fs.IntVar(&slots, "slots", 0, "reboot slots: at most N hosts rebooting at once")
	fs.IntVar(&slotsPct, "slots-pct", 0, "reboot slots as a percentage (1-100) of registered hosts")
	fs.IntVar(&minHealthy, "min-healthy-pct", 0, "capacity floor: never grant a slot below P% (0-100) hosts alive and serving")
	fs.StringVar(&window, "window", "", `maintenance window, e.g. "Mon-Sun 02:00-05:00 Europe/Berlin"`)
	fs.StringVar(&tier, "tier", "", "tier: edge, control or staging")
	fs.IntVar(&budget, "failure-budget", 0, "unhealthy reports that pause the datacenter")
	fs.StringVar(&target, "target", "", "release the datacenter's hosts of its kernel line should run")
	fs.StringVar(&untarget, "untarget", "", "clear the target of kernel line LINE")
	fs.BoolVar(&create, "create", false, "create the datacenter when it does not exist yet")
	fs.StringVar(&line, "line", "", "line rule: kernel line LINE for --line-pct of the hosts")
	fs.IntVar(&linePct, "line-pct", 0, "line rule: the share (0-100, 0 removes the rule) of hosts, chosen by a stable hash of their ids, that follow --line")
	lineForce := fs.Bool("line-force", false, "line rule: accept a line no registered release is of yet")
	_ = set.RegisterFlagCompletionFunc("tier", cobra.FixedCompletions([]string{"edge", "control", "staging"}, cobra.ShellCompDirectiveNoFileComp))
	set.RunE = func(cmd *cobra.Command, args []string) error {
		var upd wire.DatacenterUpdate
		changed := cmd.Flags().Changed
		if changed("slots") && changed("slots-pct") {
			return cli.Usagef("--slots and --slots-pct are exclusive: give one")
		}
		checks := []struct {
			flag     string
			val      *int
			min, max int
			dst      **int
		}{
			{"slots", &slots, 1, -1, &upd.SlotLimit},
			{"slots-pct", &slotsPct, 1, 100, &upd.SlotPct},
			{"min-healthy-pct", &minHealthy, 0, 100, &upd.MinHealthyPct},
			{"failure-budget", &budget, 0, -1, &upd.FailureBudget},
		}
		for _, ch := range checks {
			if !changed(ch.flag) {
				continue
			}
			if *ch.val < ch.min || (ch.max >= 0 && *ch.val > ch.max) {
				if ch.max < 0 {
					return cli.Usagef("--%s %d: want at least %d", ch.flag, *ch.val, ch.min)
				}
				return cli.Usagef("--%s %d: want %d to %d", ch.flag, *ch.val, ch.min, ch.max)
			}
			*ch.dst = ch.val
		}
		if changed("tier") {
			if !slices.Contains([]string{"edge", "control", "staging"}, tier) {
				return cli.Usagef("--tier %q: want edge, control or staging", tier)
			}
			upd.Tier = &tier
		}
		if changed("window") {
			upd.Window = &window
		}
		if changed("target") {
			upd.TargetRelease = &target
		}
		if changed("untarget") {
			upd.UntargetLine = &untarget
		}
		if changed("line") || changed("line-pct") {
			switch {
			case changed("line") && !wire.ValidLine(line):
				return cli.Usagef("--line %q: not a kernel line (MAJOR.MINOR, such as 6.18)", printable(line))
			case !changed("line-pct"):
				return cli.Usagef("--line needs --line-pct (the share of hosts, 1-100)")
			case linePct < 0 || linePct > 100:
				return cli.Usagef("--line-pct %d: want 0 (no rule) to 100", linePct)
			}
			if changed("line") {
				upd.Line = &line
			}
			upd.LinePct, upd.LineForce = &linePct, *lineForce
		} else if *lineForce {
			return cli.Usagef("--line-force goes with --line")
		}
		if upd == (wire.DatacenterUpdate{}) {
			return cli.Usagef("dc set %s: nothing to change (usage: krollctl %s)", args[0], dcSetUsage)
		}
		return a.dcSet(cmd.Context(), args[0], upd, create)
	}

	pause := &cobra.Command{Use: use(dcPauseUsage), Short: "stop new reboot slots in a datacenter", Args: nArgs(1, dcPauseUsage)}
	var reason string
	pause.Flags().StringVar(&reason, "reason", "", "why, for the other operators (shown in dc list)")
	pause.RunE = func(cmd *cobra.Command, args []string) error {
		return a.dcCall(func(c *coord) (*wire.Datacenter, error) { return c.client.Pause(cmd.Context(), args[0], reason) })
	}
	return cli.Group("dc", "datacenters: settings, pause and resume",
		&cobra.Command{Use: use(dcListUsage), Short: "list datacenters with their settings and live counts", Args: nArgs(0, dcListUsage),
			RunE: func(cmd *cobra.Command, _ []string) error { return a.dcList(cmd.Context()) }},
		set, pause,
		&cobra.Command{Use: use(dcResumeUsage), Short: "lift a datacenter's pause", Args: nArgs(1, dcResumeUsage),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.dcCall(func(c *coord) (*wire.Datacenter, error) { return c.client.Resume(cmd.Context(), args[0]) })
			}},
	)
}

func (a *app) dcList(ctx context.Context) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	dcs, err := c.client.Datacenters(ctx)
	if err != nil {
		return c.fail(err)
	}
	return showDatacenters(c, dcs)
}

// dcSet changes datacenter name. The API creates a datacenter it does not
// know (PUT); without create, a name the coordinator does not know is
// refused before anything is sent but the lookup.
func (a *app) dcSet(ctx context.Context, name string, upd wire.DatacenterUpdate, create bool) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	if !create {
		if _, err := c.client.Datacenter(ctx, name); err != nil {
			if client.ErrorKind(err) == wire.KindNotFound {
				return fmt.Errorf("dc set %s: no such datacenter; to create it, add --create (see 'krollctl dc list')", printable(name))
			}
			return c.fail(err)
		}
	}
	dc, err := c.client.SetDatacenter(ctx, name, upd)
	if err != nil {
		return c.fail(err)
	}
	return showDatacenter(c, dc)
}

// dcCall runs a call that answers with one datacenter and shows it.
func (a *app) dcCall(call func(c *coord) (*wire.Datacenter, error)) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	dc, err := call(c)
	if err != nil {
		return c.fail(err)
	}
	return showDatacenter(c, dc)
}

// showDatacenter prints one datacenter: the wire object in JSON, a
// one-row dc list table otherwise.
func showDatacenter(c *coord, dc *wire.Datacenter) error {
	return c.show(dc, func(w io.Writer) { datacenterTable(w, []wire.Datacenter{*dc}) })
}

func showDatacenters(c *coord, dcs []wire.Datacenter) error {
	slices.SortFunc(dcs, func(a, b wire.Datacenter) int { return cmp.Compare(a.Name, b.Name) })
	return c.show(nonNil(dcs), func(w io.Writer) {
		if len(dcs) == 0 {
			fmt.Fprintln(w, "no datacenters")
			return
		}
		datacenterTable(w, dcs)
	})
}

func datacenterTable(w io.Writer, dcs []wire.Datacenter) {
	row(w, "DC", "TIER", "HOSTS", "SERVING", "SLOTS", "LIMIT", "MIN-HEALTHY", "FAILURES", "WINDOW", "TARGET", "LINE-RULE", "PAUSED")
	for _, dc := range dcs {
		limit := ""
		switch {
		case dc.SlotLimit > 0:
			limit = strconv.Itoa(dc.SlotLimit)
		case dc.SlotPct > 0:
			limit = fmt.Sprintf("%d%%", dc.SlotPct)
		}
		paused := yesNo(dc.Paused)
		if dc.Paused && dc.PauseReason != "" {
			paused += ": " + dc.PauseReason
		}
		row(w, dc.Name, dc.Tier, strconv.Itoa(dc.Hosts), strconv.Itoa(dc.Serving),
			fmt.Sprintf("%d/%d", dc.SlotsHeld, dc.EffectiveLimit), limit,
			fmt.Sprintf("%d%%", dc.MinHealthyPct), fmt.Sprintf("%d/%d", dc.Failures, dc.FailureBudget),
			dc.Window, targets(dc.Targets), lineRule(dc.LineRule), paused)
	}
}

// targets formats a datacenter's targets as LINE=RELEASE,...
func targets(ts map[string]string) string {
	lines := make([]string, 0, len(ts))
	for l := range ts {
		lines = append(lines, l)
	}
	slices.Sort(lines)
	for i, l := range lines {
		lines[i] = l + "=" + ts[l]
	}
	return strings.Join(lines, ",")
}

// lineRule formats a datacenter's line rule: "6.18 10% (3/4)", the hosts
// that follow it of those it selects.
func lineRule(r *wire.LineRule) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%s %d%% (%d/%d)", r.Line, r.Pct, r.Following, r.Hosts)
}
