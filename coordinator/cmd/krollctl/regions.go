package main

// A fleet of regions: --region R[,R...] or --all-regions runs a command
// against the coordinator quorum of each region named in the fleet file
// (pkg/fleetfile), concurrently, and prints one table with a REGION
// column, one result line per region and, with -o json, an object keyed
// by region. A command takes part by wrapping itself in acrossRegions
// with a prepare function that returns its regional: the table header and
// the regionRun hook that calls one region's client and returns its JSON
// value and table rows.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/fleetfile"
)

const (
	envFleet = "KROLL_FLEET"
	// regionsAnnotation marks the commands that run across regions.
	regionsAnnotation = "kroll-regions"
	// defaultRegionParallel bounds how many regions a command talks to at
	// once.
	defaultRegionParallel = 8
)

// regionFlags are the global flags that select regions of the fleet file.
type regionFlags struct {
	fleet    string
	regions  string
	all      bool
	timeout  time.Duration
	parallel int
}

// register adds the region flags to root.
func (f *regionFlags) register(root *cobra.Command, env cli.Env) {
	pf := root.PersistentFlags()
	pf.StringVar(&f.fleet, "fleet", "", "fleet `FILE` of regions, their coordinators and credentials (env "+envFleet+", default ~/.config/kroll/fleet.toml)")
	pf.StringVar(&f.regions, "region", "", "run against the coordinators of these `REGION`s of the fleet file, comma-separated")
	pf.BoolVar(&f.all, "all-regions", false, "run against every region of the fleet file, concurrently")
	pf.DurationVar(&f.timeout, "region-timeout", 0, "bound of the command per region (default: the fleet file's timeout, else 1m)")
	pf.IntVar(&f.parallel, "region-parallel", defaultRegionParallel, "how many regions to talk to at once")
	_ = root.RegisterFlagCompletionFunc("region", func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		file, err := fleetfile.Load(f.path(env))
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		done, last := "", toComplete
		if i := strings.LastIndex(toComplete, ","); i >= 0 {
			done, last = toComplete[:i+1], toComplete[i+1:]
		}
		var out []string
		for _, n := range file.Names() {
			if strings.HasPrefix(n, last) && !slices.Contains(strings.Split(done, ","), n) {
				out = append(out, done+n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
}

// active reports whether the command runs across regions.
func (f *regionFlags) active() bool { return f.all || f.regions != "" }

// path is the fleet file: --fleet, KROLL_FLEET, then
// $XDG_CONFIG_HOME/kroll/fleet.toml or ~/.config/kroll/fleet.toml.
func (f *regionFlags) path(env cli.Env) string {
	if p := firstNonEmpty(f.fleet, env.Getenv(envFleet)); p != "" {
		return p
	}
	if x := env.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "kroll", "fleet.toml")
	}
	if h := env.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "kroll", "fleet.toml")
	}
	return ""
}

// check validates the region flags for cmd before it runs.
func (f *regionFlags) check(cmd *cobra.Command, g *globals) error {
	if !f.active() {
		if f.fleet != "" {
			return cli.Usagef("--fleet needs --region or --all-regions")
		}
		return nil
	}
	switch {
	case f.all && f.regions != "":
		return cli.Usagef("--region and --all-regions exclude each other")
	case g.coordinator != "" || g.token != "" || g.tlsCA != "" || g.tlsCert != "" || g.tlsKey != "":
		return cli.Usagef("--region and --all-regions take coordinators and credentials from the fleet file: drop --coordinator, --token and --tls-*")
	case f.parallel < 1:
		return cli.Usagef("--region-parallel %d: want at least 1", f.parallel)
	case f.timeout < 0:
		return cli.Usagef("--region-timeout %s: want a positive duration", f.timeout)
	}
	if cmd.Annotations[regionsAnnotation] == "" {
		return cli.Usagef("%s does not run across regions (those that do: %s)", cmd.CommandPath(), strings.Join(regionCommands(cmd.Root()), ", "))
	}
	return nil
}

// regionCommands lists the commands of the tree that run across regions.
func regionCommands(root *cobra.Command) []string {
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Annotations[regionsAnnotation] != "" {
			out = append(out, strings.TrimPrefix(c.CommandPath(), root.Name()+" "))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	slices.Sort(out)
	return out
}

// regionRun is a command's work against one region: it calls the region's
// coordinators through c and returns what they answered.
type regionRun func(ctx context.Context, c *coord) (regionResult, error)

// regionResult is a command's answer from one region.
type regionResult struct {
	// value is the region's JSON output: what the command prints with
	// -o json against a single coordinator quorum.
	value any
	// rows are the region's table rows in the command's natural order,
	// without the REGION cell.
	rows [][]string
	// summary follows "ok: " on the region's result line; may be empty.
	summary string
}

// regional is a command that runs across regions.
type regional struct {
	// header is the table header, without REGION.
	header []string
	// write marks a command that changes the coordinators' state: its
	// failures say whether the change may have been applied.
	write bool
	run   regionRun
}

// acrossRegions makes cmd run across regions with --region or
// --all-regions; without them it runs as before. prepare builds the
// regional from the command's arguments and checks local inputs (files,
// signatures) once, before any region is called.
func (a *app) acrossRegions(cmd *cobra.Command, prepare func(args []string) (*regional, error)) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[regionsAnnotation] = "yes"
	cmd.Long = cmp.Or(cmd.Long, cmd.Short) + "\n\nWith --region R[,R...] or --all-regions it runs against the coordinators of those regions of the fleet file, concurrently: one table with a REGION column, one result line per region, and a failure if any region failed."
	single := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if !a.r.active() {
			return single(c, args)
		}
		r, err := prepare(args)
		if err != nil {
			return err
		}
		return a.runRegions(c.Context(), r)
	}
	return cmd
}

// regionTarget is one region a command runs against.
type regionTarget struct {
	name    string
	coord   *coord
	timeout time.Duration
}

// regionTargets loads the fleet file and connects to the selected
// regions: every credential is read before any region is called, so a
// broken one stops the command before it changes anything.
func (a *app) regionTargets() ([]regionTarget, error) {
	path := a.r.path(a.env)
	if path == "" {
		return nil, cli.Usagef("no fleet file: give --fleet or set %s (HOME is not set for the default)", envFleet)
	}
	file, err := fleetfile.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (give --fleet or %s; see docs/operations.md, \"A fleet of regions\")", err, envFleet)
	}
	if err != nil {
		return nil, err
	}
	names := file.Names()
	if !a.r.all {
		names = nil
		for _, n := range strings.Split(a.r.regions, ",") {
			if n = strings.TrimSpace(n); n == "" {
				return nil, cli.Usagef("--region %q: an empty entry (want REGION[,REGION...])", a.r.regions)
			}
			names = append(names, n)
		}
	}
	regions, err := file.Select(names)
	if err != nil {
		return nil, &cli.UsageError{Err: err}
	}
	targets := make([]regionTarget, len(regions))
	for i, r := range regions {
		if a.r.timeout > 0 {
			r.Timeout = a.r.timeout
		}
		c, err := r.Client()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		targets[i] = regionTarget{
			name:    r.Name,
			coord:   &coord{env: a.env, client: c, json: a.g.json(), hint: "see region " + r.Name + " in " + path},
			timeout: r.Timeout,
		}
	}
	return targets, nil
}

// regionOutcome is what happened in one region.
type regionOutcome struct {
	name   string
	result regionResult
	err    string // empty when the region answered
}

// regionJSON is one region's entry of the JSON output.
type regionJSON struct {
	Result any     `json:"result"`
	Error  *string `json:"error"`
}

// runRegions runs r against the selected regions, at most --region-parallel
// at a time, each within its timeout, and prints every region's outcome.
func (a *app) runRegions(ctx context.Context, r *regional) error {
	targets, err := a.regionTargets()
	if err != nil {
		return err
	}
	outcomes := make([]regionOutcome, len(targets))
	sem := make(chan struct{}, a.r.parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				outcomes[i] = t.run(ctx, r)
			case <-ctx.Done():
				outcomes[i] = regionOutcome{name: t.name, err: "interrupted before it was called"}
			}
		})
	}
	wg.Wait()

	var failed []string
	for _, o := range outcomes {
		if o.err != "" {
			failed = append(failed, o.name)
		}
	}
	if err := a.printRegions(r, outcomes); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d regions failed: %s (re-run for them with --region %s)",
			len(failed), len(outcomes), strings.Join(failed, ", "), strings.Join(failed, ","))
	}
	return nil
}

// run runs r against one region within its timeout.
func (t regionTarget) run(ctx context.Context, r *regional) regionOutcome {
	rctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	res, err := r.run(rctx, t.coord)
	if err == nil {
		return regionOutcome{name: t.name, result: res}
	}
	var msg string
	switch {
	case ctx.Err() != nil:
		msg = "interrupted: " + printable(oneLine(err))
	case rctx.Err() != nil:
		msg = fmt.Sprintf("no answer within %s (--region-timeout): %s", t.timeout, printable(oneLine(err)))
	default:
		msg = oneLine(t.coord.fail(err))
	}
	if r.write && !notApplied(err) {
		msg += " (the change may have been applied: check the region before re-running)"
	}
	return regionOutcome{name: t.name, err: msg}
}

// notApplied reports whether a failed write certainly changed nothing: a
// coordinator refused it (an answer other than 503), or no coordinator
// could be connected to at all.
func notApplied(err error) bool {
	if ae, ok := errors.AsType[*client.APIError](err); ok {
		return ae.Status != http.StatusServiceUnavailable
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !notApplied(e) {
				return false
			}
		}
		return len(j.Unwrap()) > 0
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// oneLine is err's message on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ; ")), " ")
}

// printRegions prints the outcomes: JSON keyed by region, or the table of
// every region's rows with a REGION column and then one result line per
// region.
func (a *app) printRegions(r *regional, outcomes []regionOutcome) error {
	if a.g.json() {
		out := make(map[string]regionJSON, len(outcomes))
		for _, o := range outcomes {
			if o.err != "" {
				out[o.name] = regionJSON{Error: &o.err}
				continue
			}
			out[o.name] = regionJSON{Result: o.result.value}
		}
		enc := json.NewEncoder(a.env.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	rows := 0
	for _, o := range outcomes {
		rows += len(o.result.rows)
	}
	if rows > 0 {
		row(tw, append([]string{"REGION"}, r.header...)...)
		for _, o := range outcomes {
			for _, cells := range o.result.rows {
				row(tw, append([]string{o.name}, cells...)...)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(a.env.Stdout)
	}
	row(tw, "REGION", "RESULT")
	for _, o := range outcomes {
		switch {
		case o.err != "":
			row(tw, o.name, "error: "+o.err)
		case o.result.summary != "":
			row(tw, o.name, "ok: "+o.result.summary)
		default:
			row(tw, o.name, "ok")
		}
	}
	return tw.Flush()
}
