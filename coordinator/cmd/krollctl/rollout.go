package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	rolloutStartUsage  = "rollout start RELEASE [--id ID] [--waves 0.1,0.5,1] [--canary DC,...] [--soak 24h] [--cycle 672h] [--budget N] [--expedite --reason TEXT] [--force --reason TEXT]"
	rolloutStatusUsage = "rollout status [ID]"
	rolloutWatchUsage  = "rollout watch ID [--interval 2s]"
	rolloutActUsage    = "rollout pause|resume|abort ID [--reason TEXT]"
)

func (a *app) rolloutCommand() *cobra.Command {
	act := func(action string) *cobra.Command {
		synopsis := strings.Replace(rolloutActUsage, "pause|resume|abort", action, 1)
		cmd := &cobra.Command{Use: use(synopsis), Short: action + " a rollout", Args: nArgs(1, synopsis)}
		var reason string
		cmd.Flags().StringVar(&reason, "reason", "", "why, for the event log")
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			return a.rolloutAct(cmd.Context(), args[0], action, reason)
		}
		return cmd
	}
	status := &cobra.Command{Use: use(rolloutStatusUsage), Short: "a rollout's waves with per-datacenter counts (all rollouts without ID)", Args: rangeArgs(0, 1, rolloutStatusUsage),
		RunE: func(cmd *cobra.Command, args []string) error { return a.rolloutStatus(cmd.Context(), args) }}
	return cli.Group("rollout", "roll a release through the datacenters of its kernel line in waves",
		a.rolloutStartCommand(), status, a.rolloutWatchCommand(), act("pause"), act("resume"), act("abort"))
}

func (a *app) rolloutStartCommand() *cobra.Command {
	cmd := &cobra.Command{Use: use(rolloutStartUsage), Short: "start a rollout (staging, control, canary, edge waves)", Args: nArgs(1, rolloutStartUsage)}
	var (
		req           wire.RolloutStartRequest
		waves, canary string
		soak, cycle   time.Duration
		budget        int
	)
	fs := cmd.Flags()
	fs.StringVar(&req.ID, "id", "", "rollout id (default: the release id)")
	fs.StringVar(&waves, "waves", "", "cumulative fractions of the edge datacenters after the canary (default 0.1,0.5,1)")
	fs.StringVar(&canary, "canary", "", "canary datacenters, comma-separated (default: the smallest edge datacenter)")
	fs.DurationVar(&soak, "soak", 0, "how long staging and canary must stay healthy before later waves start (default 24h, 30m expedited)")
	fs.DurationVar(&cycle, "cycle", 0, "pace the edge waves over this cycle (default 672h = 28 days)")
	fs.IntVar(&budget, "budget", 0, "unhealthy hosts an edge wave may have before the rollout pauses (default 2; staging and canary allow none)")
	fs.BoolVar(&req.Expedite, "expedite", false, "CVE: skip pacing and maintenance windows (never slot limits or floors); needs --reason")
	fs.StringVar(&req.Reason, "reason", "", "why (required with --expedite and --force; recorded in the event log)")
	fs.BoolVar(&req.Force, "force", false, "start a release that a failed rollout rejected for its line, or skip a missing staging or canary wave (no staging or edge datacenter has hosts of the line); needs --reason")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if req.Expedite && strings.TrimSpace(req.Reason) == "" {
			return cli.Usagef("--expedite needs --reason (e.g. the CVE)")
		}
		if req.Force && strings.TrimSpace(req.Reason) == "" {
			return cli.Usagef("--force needs --reason (why the rejected release may roll again)")
		}
		if waves != "" {
			for _, f := range strings.Split(waves, ",") {
				v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
				if err != nil || v <= 0 || v > 1 {
					return cli.Usagef("--waves %q: want fractions in (0, 1] such as 0.1,0.5,1", waves)
				}
				req.Waves = append(req.Waves, v)
			}
		}
		if canary != "" {
			req.Canary = strings.Split(canary, ",")
		}
		if soak < 0 || cycle < 0 {
			return cli.Usagef("--soak and --cycle must not be negative")
		}
		req.SoakSeconds, req.CycleSeconds = int64(soak/time.Second), int64(cycle/time.Second)
		if cmd.Flags().Changed("budget") {
			if budget < 0 {
				return cli.Usagef("--budget %d: want at least 0", budget)
			}
			req.Budget = &budget
		}
		req.Release = args[0]
		c, err := a.connect()
		if err != nil {
			return err
		}
		r, err := c.client.StartRollout(cmd.Context(), req)
		if err != nil {
			return c.fail(err)
		}
		return c.show(r, func(w io.Writer) { rolloutTable(w, r) })
	}
	return cmd
}

func (a *app) rolloutStatus(ctx context.Context, pos []string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		r, err := c.client.Rollout(ctx, pos[0])
		if err != nil {
			return c.fail(err)
		}
		return c.show(r, func(w io.Writer) { rolloutTable(w, r) })
	}
	rs, err := c.client.Rollouts(ctx)
	if err != nil {
		return c.fail(err)
	}
	return c.show(nonNil(rs), func(w io.Writer) {
		if len(rs) == 0 {
			fmt.Fprintln(w, "no rollouts")
			return
		}
		row(w, "ROLLOUT", "RELEASE", "LINE", "STATE", "EXPEDITE", "WAVE", "HEALTHY", "HOSTS", "CREATED")
		for i := range rs {
			r := &rs[i]
			h, n := totals(r)
			row(w, r.ID, r.Release, r.Line, state(r), yesNo(r.Expedite), currentWave(r), strconv.Itoa(h), strconv.Itoa(n), ts(r.Created))
		}
	})
}

func (a *app) rolloutAct(ctx context.Context, id, action, reason string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	r, err := c.client.RolloutAction(ctx, id, action, reason)
	if err != nil {
		return c.fail(err)
	}
	return c.show(r, func(w io.Writer) { rolloutTable(w, r) })
}

func state(r *wire.Rollout) string {
	if r.PauseReason != "" {
		return r.State + ": " + r.PauseReason
	}
	return r.State
}

func totals(r *wire.Rollout) (healthy, hosts int) {
	for _, w := range r.Waves {
		for _, p := range w.Progress {
			healthy += p.Healthy
			hosts += p.Hosts
		}
	}
	return healthy, hosts
}

func currentWave(r *wire.Rollout) string {
	cur := ""
	for _, w := range r.Waves {
		if !w.Started.IsZero() && w.Gates {
			cur = w.Name
		}
	}
	return cur
}

// rolloutTable prints a rollout: a header and one row per wave and
// datacenter with the host counts.
func rolloutTable(w io.Writer, r *wire.Rollout) {
	fmt.Fprintf(w, "rollout %s: release %s (line %s, kernel %s) %s\n", cell(r.ID), cell(r.Release), cell(r.Line), cell(r.Kernel), cell(state(r)))
	if r.Expedite {
		fmt.Fprintf(w, "EXPEDITED: %s\n", cell(r.Reason))
	}
	row(w, "WAVE", "DC", "HOSTS", "PENDING", "STAGED", "DRAINING", "REBOOTING", "HEALTHY", "FAILED", "STARTED", "COMPLETED")
	for _, wv := range r.Waves {
		for _, p := range wv.Progress {
			row(w, wv.Name, p.Datacenter, strconv.Itoa(p.Hosts), strconv.Itoa(p.Pending), strconv.Itoa(p.Staged), strconv.Itoa(p.Draining),
				strconv.Itoa(p.Rebooting), strconv.Itoa(p.Healthy), strconv.Itoa(p.Failed), ts(wv.Started), ts(wv.Completed))
		}
	}
}
