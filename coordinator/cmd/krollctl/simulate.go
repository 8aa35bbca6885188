package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kroll-dev/kroll/coordinator/sim"
	"github.com/kroll-dev/kroll/pkg/cli"
)

const simulateUsage = "simulate [--fleet FILE.json] [--dcs 330] [--hosts 100000] [--seed 1] [--expedite] [--reboot kexec|cold] [--fail-pct 0] [--lost-pct 0] [--budget N] [--operator-delay 1h] [--plot FILE.svg]\n" +
	"  krollctl simulate --weeks N [--build-every 7d] [--fail-build N] [--cve-day D [--mitigate-after 6h]] [--staging-soak 72h] [--control-soak 24h] [--edge-cycle 672h] [--departure \"Tue 09:00 UTC\"] [fleet, seed, reboot, operator-delay and plot flags]"

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
	weeks := fs.Int("weeks", 0, "simulate the release train over this many weeks (builds, staging, control, edge departures) instead of one rollout")
	buildEvery := daysFlag(fs, "build-every", sim.DefaultBuildEvery, "train: a new build of the line every `DURATION` (Go duration, or days: 7d)")
	failBuild := fs.Int("fail-build", 0, "train: the N-th build fails its health checks in staging (rejected, never reaches the edge); 0 = none")
	cveDay := fs.Float64("cve-day", 0, "train: report the exposure to a CVE disclosed on day D (fixed in the first build after it)")
	mitigateAfter := daysFlag(fs, "mitigate-after", sim.DefaultMitigateAfter, "train: a mitigation for the CVE is pushed this long after its disclosure")
	stagingSoak := daysFlag(fs, "staging-soak", sim.DefaultStagingSoak, "train: staging soak")
	controlSoak := daysFlag(fs, "control-soak", sim.DefaultControlSoak, "train: control soak (and the edge canary's)")
	edgeCycle := daysFlag(fs, "edge-cycle", sim.DefaultEdgeCycle, "train: edge cycle (whole weeks)")
	departure := fs.String("departure", sim.DefaultDeparture, "train: departure weekday, time and zone")
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
		if fs.Changed("weeks") {
			topt := sim.TrainOptions{Seed: *seed, Weeks: *weeks, BuildEvery: *buildEvery, FailBuild: *failBuild, Reboot: *reboot,
				OperatorDelay: *opDelay, StagingSoak: *stagingSoak, ControlSoak: *controlSoak, EdgeCycle: *edgeCycle, Departure: *departure,
				CVE: fs.Changed("cve-day"), CVEDay: *cveDay, MitigateAfter: *mitigateAfter}
			return a.simulateTrain(cmd, fs, fleet, topt, *plot)
		}
		for _, name := range trainOnlyFlags() {
			if fs.Changed(name) {
				return cli.Usagef("--%s simulates the release train: add --weeks N", name)
			}
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
	return writeSVG(path, func(w io.Writer) error { return sim.WriteSVG(w, res) })
}

// writeSVG writes a plot to path.
func writeSVG(path string, draw func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("simulate: plot: %w", err)
	}
	if err := draw(f); err != nil {
		f.Close()
		return fmt.Errorf("simulate: plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("simulate: plot: %w", err)
	}
	return nil
}

// trainOnlyFlags are the flags of a train simulation (--weeks).
func trainOnlyFlags() []string {
	return []string{"build-every", "fail-build", "cve-day", "mitigate-after", "staging-soak", "control-soak", "edge-cycle", "departure"}
}

// simulateTrain runs the release train simulation (simulate --weeks).
func (a *app) simulateTrain(cmd *cobra.Command, fs *pflag.FlagSet, fleet sim.Fleet, opt sim.TrainOptions, plot string) error {
	for _, name := range []string{"expedite", "fail-pct", "lost-pct", "budget"} {
		if fs.Changed(name) {
			return cli.Usagef("--%s is a flag of the single-rollout simulation, not of --weeks (the train decides its rollouts)", name)
		}
	}
	if fs.Changed("mitigate-after") && !fs.Changed("cve-day") {
		return cli.Usagef("--mitigate-after needs --cve-day D")
	}
	if err := opt.Validate(fleet); err != nil {
		return cli.Usagef("simulate: %v", err)
	}
	res, err := sim.RunTrain(cmd.Context(), fleet, opt)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if plot != "" {
		if err := writeSVG(plot, func(w io.Writer) error { return sim.WriteTrainSVG(w, res) }); err != nil {
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

// daysFlag defines a duration flag that also reads days ("7d", "1.5d",
// "7d12h").
func daysFlag(fs *pflag.FlagSet, name string, def time.Duration, usage string) *time.Duration {
	d := def
	fs.Var((*dayDuration)(&d), name, usage)
	return &d
}

// dayDuration is a time.Duration flag value that accepts a number of
// days before an optional Go duration.
type dayDuration time.Duration

func (d *dayDuration) String() string { return time.Duration(*d).String() }

func (d *dayDuration) Type() string { return "duration" }

func (d *dayDuration) Set(v string) error {
	var total time.Duration
	rest := v
	if i := strings.IndexByte(v, 'd'); i > 0 {
		n, err := strconv.ParseFloat(v[:i], 64)
		if err != nil || n < 0 || n > 3660 {
			return fmt.Errorf("%q: want days as a number up to 3660 before d (e.g. 7d)", v)
		}
		total, rest = time.Duration(n*float64(24*time.Hour)), v[i+1:]
	}
	if rest != "" || total == 0 {
		x, err := time.ParseDuration(rest)
		if err != nil {
			return fmt.Errorf("%q: want a duration such as 7d, 36h or 90m", v)
		}
		if x < 0 {
			return fmt.Errorf("%q: want a non-negative duration", v)
		}
		total += x
	}
	*d = dayDuration(total)
	return nil
}
