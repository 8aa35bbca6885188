package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/coordinator/sim"
	"github.com/kroll-dev/kroll/pkg/cli"
)

const simulateUsage = "simulate [--fleet FILE.json] [--dcs 330] [--hosts 100000] [--seed 1] [--expedite] [--reboot kexec|cold] [--fail-pct 0] [--lost-pct 0] [--budget N] [--operator-delay 1h] [--plot FILE.svg]"

func (a *app) simulateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: simulateUsage, Short: "simulate a rollout through a fleet, locally, with the real scheduler and rollout code", Args: nArgs(0, simulateUsage)}
	fs := cmd.Flags()
	fleetFile := fs.String("fleet", "", "fleet description (JSON, see coordinator/sim.Fleet); default: the built-in fleet")
	dcs := fs.Int("dcs", 330, "datacenters of the built-in fleet")
	hosts := fs.Int("hosts", 100000, "hosts of the built-in fleet")
	seed := fs.Uint64("seed", 1, "random seed (same seed, same result)")
	expedite := fs.Bool("expedite", false, "expedited (CVE) rollout: no windows, no pacing, 30-minute staging soak")
	reboot := fs.String("reboot", sim.RebootKexec, "reboot method: kexec or cold")
	failPct := fs.Float64("fail-pct", 0, "percentage of hosts whose new kernel fails its health checks")
	lostPct := fs.Float64("lost-pct", 0, "percentage of reboots after which the host is lost")
	budget := fs.Int("budget", -1, "the rollout's per-wave failure budget; -1 = 2% of the largest wave")
	opDelay := fs.Duration("operator-delay", time.Hour, "how long a simulated operator takes to act on a paused datacenter, a lost host or failed hosts that block a datacenter")
	plot := fs.String("plot", "", "write an SVG plot (capacity out of service per region, hosts on the new kernel) to `FILE.svg`")
	_ = cmd.RegisterFlagCompletionFunc("reboot", cobra.FixedCompletions([]string{sim.RebootKexec, sim.RebootCold}, cobra.ShellCompDirectiveNoFileComp))
	// simulate runs the fleet simulator. It needs no coordinator: it
	// drives an in-process state machine with simulated agents and time.
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *reboot != sim.RebootKexec && *reboot != sim.RebootCold {
			return cli.Usagef("--reboot %q: want kexec or cold", *reboot)
		}
		if *plot != "" && !strings.EqualFold(filepath.Ext(*plot), ".svg") {
			return cli.Usagef("--plot %s: only SVG plots are written (name the file *.svg)", *plot)
		}
		if *fleetFile != "" && (fs.Changed("dcs") || fs.Changed("hosts")) {
			return cli.Usagef("--fleet and --dcs/--hosts exclude each other")
		}
		var (
			fleet sim.Fleet
			err   error
		)
		if *fleetFile != "" {
			fleet, err = sim.LoadFleet(*fleetFile)
		} else {
			fleet, err = sim.DefaultFleet(*dcs, *hosts)
		}
		if err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		if *opDelay <= 0 {
			return cli.Usagef("--operator-delay %s: want a positive duration", *opDelay)
		}
		opt := sim.Options{Seed: *seed, Expedite: *expedite, Reboot: *reboot, FailPct: *failPct, LostPct: *lostPct, OperatorDelay: *opDelay}
		if *budget >= 0 {
			opt.Budget = budget
		}
		res, err := sim.Run(cmd.Context(), fleet, opt)
		if err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		if *plot != "" {
			if err := writePlot(*plot, res); err != nil {
				return err
			}
		}
		if a.g.json() {
			enc := json.NewEncoder(a.env.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(res); err != nil {
				return fmt.Errorf("simulate: %w", err)
			}
			return nil
		}
		return res.WriteTable(a.env.Stdout)
	}
	return cmd
}

func writePlot(path string, res *sim.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("simulate: plot: %w", err)
	}
	if err := sim.WriteSVG(f, res); err != nil {
		f.Close()
		return fmt.Errorf("simulate: plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("simulate: plot: %w", err)
	}
	return nil
}
