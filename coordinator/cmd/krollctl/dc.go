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
	dcListUsage   = "dc list"
	dcSetUsage    = `dc set NAME [--slots N | --slots-pct P] [--min-healthy-pct P] [--window "Mon-Sun 02:00-05:00 Europe/Berlin"] [--tier edge|control|staging] [--failure-budget N] [--target RELEASE] [--untarget LINE]`
	dcPauseUsage  = "dc pause NAME [--reason TEXT]"
	dcResumeUsage = "dc resume NAME"
)

func dcCommand() cli.Command {
	return group("dc", "datacenters: settings, pause and resume", map[string]cli.Command{
		"list":   {Usage: dcListUsage, Summary: "list datacenters with their settings and live counts", Run: dcList},
		"set":    {Usage: dcSetUsage, Summary: "change a datacenter's settings (creates it when new)", Run: dcSet},
		"pause":  {Usage: dcPauseUsage, Summary: "stop new reboot slots in a datacenter", Run: dcPause},
		"resume": {Usage: dcResumeUsage, Summary: "lift a datacenter's pause", Run: dcResume},
	})
}

func dcList(ctx context.Context, env cli.Env, args []string) error {
	c, _, err := prepare(env, dcListUsage, args, 0, nil, nil)
	if err != nil {
		return err
	}
	dcs, err := c.client.Datacenters(ctx)
	if err != nil {
		return c.fail(err)
	}
	return showDatacenters(c, dcs)
}

func dcSet(ctx context.Context, env cli.Env, args []string) error {
	var slots, slotsPct, minHealthy, budget int
	var window, tier string
	var upd wire.DatacenterUpdate
	var target, untarget string
	c, pos, err := prepare(env, dcSetUsage, args, 1, func(fs *flag.FlagSet) {
		fs.IntVar(&slots, "slots", 0, "reboot slots: at most N hosts rebooting at once")
		fs.IntVar(&slotsPct, "slots-pct", 0, "reboot slots as a percentage (1-100) of registered hosts")
		fs.IntVar(&minHealthy, "min-healthy-pct", 0, "capacity floor: never grant a slot below P% (0-100) hosts alive and serving")
		fs.StringVar(&window, "window", "", `maintenance window, e.g. "Mon-Sun 02:00-05:00 Europe/Berlin"`)
		fs.StringVar(&tier, "tier", "", "tier: edge, control or staging")
		fs.IntVar(&budget, "failure-budget", 0, "unhealthy reports that pause the datacenter")
		fs.StringVar(&target, "target", "", "release the datacenter's hosts of its kernel line should run")
		fs.StringVar(&untarget, "untarget", "", "clear the target of kernel line LINE")
	}, func(fs *flag.FlagSet, pos []string) error {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if set["slots"] && set["slots-pct"] {
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
			if !set[ch.flag] {
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
		if set["tier"] {
			if !slices.Contains([]string{"edge", "control", "staging"}, tier) {
				return cli.Usagef("--tier %q: want edge, control or staging", tier)
			}
			upd.Tier = &tier
		}
		if set["window"] {
			upd.Window = &window
		}
		if set["target"] {
			upd.TargetRelease = &target
		}
		if set["untarget"] {
			upd.UntargetLine = &untarget
		}
		if upd == (wire.DatacenterUpdate{}) {
			return cli.Usagef("dc set %s: nothing to change (usage: krollctl %s)", pos[0], dcSetUsage)
		}
		return nil
	})
	if err != nil {
		return err
	}
	dc, err := c.client.SetDatacenter(ctx, pos[0], upd)
	if err != nil {
		return c.fail(err)
	}
	return showDatacenter(c, dc)
}

func dcPause(ctx context.Context, env cli.Env, args []string) error {
	var reason string
	c, pos, err := prepare(env, dcPauseUsage, args, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "why, for the other operators (shown in dc list)")
	}, nil)
	if err != nil {
		return err
	}
	dc, err := c.client.Pause(ctx, pos[0], reason)
	if err != nil {
		return c.fail(err)
	}
	return showDatacenter(c, dc)
}

func dcResume(ctx context.Context, env cli.Env, args []string) error {
	c, pos, err := prepare(env, dcResumeUsage, args, 1, nil, nil)
	if err != nil {
		return err
	}
	dc, err := c.client.Resume(ctx, pos[0])
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
	row(w, "DC", "TIER", "HOSTS", "SERVING", "SLOTS", "LIMIT", "MIN-HEALTHY", "FAILURES", "WINDOW", "TARGET", "PAUSED")
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
			dc.Window, targets(dc.Targets), paused)
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
