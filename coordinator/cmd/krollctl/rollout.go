package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	rolloutStartUsage  = "rollout start RELEASE [--id ID] [--waves 0.1,0.5,1] [--canary DC,...] [--soak 24h] [--cycle 672h] [--budget N] [--expedite --reason TEXT] [--force --reason TEXT]"
	rolloutStatusUsage = "rollout status [ID]"
	rolloutWatchUsage  = "rollout watch ID [--interval 2s]"
	rolloutActUsage    = "rollout pause|resume|abort ID [--reason TEXT]"
)

func rolloutCommand() cli.Command {
	act := func(action string) cli.Command {
		return cli.Command{Usage: strings.Replace(rolloutActUsage, "pause|resume|abort", action, 1), Summary: action + " a rollout",
			Run: func(ctx context.Context, env cli.Env, args []string) error { return rolloutAct(ctx, env, args, action) }}
	}
	return group("rollout", "roll a release through the datacenters of its kernel line in waves", map[string]cli.Command{
		"start":  {Usage: rolloutStartUsage, Summary: "start a rollout (staging, control, canary, edge waves)", Run: rolloutStart},
		"status": {Usage: rolloutStatusUsage, Summary: "a rollout's waves with per-datacenter counts (all rollouts without ID)", Run: rolloutStatus},
		"watch":  {Usage: rolloutWatchUsage, Summary: "live progress bars per wave and datacenter (plain lines when not a terminal)", Run: rolloutWatch},
		"pause":  act("pause"),
		"resume": act("resume"),
		"abort":  act("abort"),
	})
}

func rolloutStart(ctx context.Context, env cli.Env, args []string) error {
	var (
		req           wire.RolloutStartRequest
		waves, canary string
		soak, cycle   time.Duration
		budget        int
	)
	c, pos, err := prepare(env, rolloutStartUsage, args, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&req.ID, "id", "", "rollout id (default: the release id)")
		fs.StringVar(&waves, "waves", "", "cumulative fractions of the edge datacenters after the canary (default 0.1,0.5,1)")
		fs.StringVar(&canary, "canary", "", "canary datacenters, comma-separated (default: the smallest edge datacenter)")
		fs.DurationVar(&soak, "soak", 0, "how long staging and canary must stay healthy before later waves start (default 24h, 30m expedited)")
		fs.DurationVar(&cycle, "cycle", 0, "pace the edge waves over this cycle (default 672h = 28 days)")
		fs.IntVar(&budget, "budget", 0, "unhealthy hosts an edge wave may have before the rollout pauses (default 2; staging and canary allow none)")
		fs.BoolVar(&req.Expedite, "expedite", false, "CVE: skip pacing and maintenance windows (never slot limits or floors); needs --reason")
		fs.StringVar(&req.Reason, "reason", "", "why (required with --expedite and --force; recorded in the event log)")
		fs.BoolVar(&req.Force, "force", false, "start a release that a failed rollout rejected for its line, or skip a missing staging or canary wave (no staging or edge datacenter has hosts of the line); needs --reason")
	}, func(fs *flag.FlagSet, pos []string) error {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
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
		if set["budget"] {
			if budget < 0 {
				return cli.Usagef("--budget %d: want at least 0", budget)
			}
			req.Budget = &budget
		}
		return nil
	})
	if err != nil {
		return err
	}
	req.Release = pos[0]
	r, err := c.client.StartRollout(ctx, req)
	if err != nil {
		return c.fail(err)
	}
	return c.show(r, func(w io.Writer) { rolloutTable(w, r) })
}

func rolloutStatus(ctx context.Context, env cli.Env, args []string) error {
	c, pos, err := prepare(env, rolloutStatusUsage, args, varArgs, nil, func(_ *flag.FlagSet, pos []string) error {
		if len(pos) > 1 {
			return usage(rolloutStatusUsage)
		}
		return nil
	})
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

func rolloutAct(ctx context.Context, env cli.Env, args []string, action string) error {
	var reason string
	c, pos, err := prepare(env, strings.Replace(rolloutActUsage, "pause|resume|abort", action, 1), args, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "why, for the event log")
	}, nil)
	if err != nil {
		return err
	}
	r, err := c.client.RolloutAction(ctx, pos[0], action, reason)
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

func rolloutWatch(ctx context.Context, env cli.Env, args []string) error {
	var interval time.Duration
	c, pos, err := prepare(env, rolloutWatchUsage, args, 1, func(fs *flag.FlagSet) {
		fs.DurationVar(&interval, "interval", 2*time.Second, "refresh interval")
	}, func(*flag.FlagSet, []string) error {
		if interval < 100*time.Millisecond {
			return cli.Usagef("--interval %s: want at least 100ms", interval)
		}
		return nil
	})
	if err != nil {
		return err
	}
	tty := false
	if f, ok := env.Stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	last := ""
	for {
		r, err := c.client.Rollout(ctx, pos[0])
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return c.fail(err)
		}
		if tty {
			fmt.Fprint(env.Stdout, "\033[H\033[2J")
			bars(env.Stdout, r)
		} else if s := plain(r); s != last {
			fmt.Fprintf(env.Stdout, "%s %s", time.Now().UTC().Format(time.RFC3339), s)
			last = s
		}
		if r.State == "done" || r.State == "aborted" || r.State == "failed" {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// plain is the non-terminal rendering: one line per wave and datacenter,
// printed again only when something changed.
func plain(r *wire.Rollout) string {
	var b strings.Builder
	h, n := totals(r)
	fmt.Fprintf(&b, "rollout %s %s: %d/%d hosts healthy on %s\n", r.ID, state(r), h, n, r.Kernel)
	for _, w := range r.Waves {
		if w.Started.IsZero() {
			continue
		}
		for _, p := range w.Progress {
			fmt.Fprintf(&b, "  %-10s %-12s pending=%d staged=%d draining=%d rebooting=%d healthy=%d failed=%d\n",
				w.Name, p.Datacenter, p.Pending, p.Staged, p.Draining, p.Rebooting, p.Healthy, p.Failed)
		}
	}
	return b.String()
}

// bars is the terminal rendering: a progress bar per wave and datacenter.
func bars(w io.Writer, r *wire.Rollout) {
	h, n := totals(r)
	fmt.Fprintf(w, "rollout %s: %s → %s (line %s)  %s  %d/%d healthy\n\n", cell(r.ID), cell(r.Release), cell(r.Kernel), cell(r.Line), cell(state(r)), h, n)
	for _, wv := range r.Waves {
		status := "waiting"
		switch {
		case !wv.Passed.IsZero():
			status = "passed"
		case !wv.Completed.IsZero() && (wv.Name == "staging" || wv.Name == "canary"):
			status = "soaking"
		case !wv.Completed.IsZero():
			status = "done"
		case !wv.Started.IsZero():
			status = "running"
		}
		fmt.Fprintf(w, "%s (%s)\n", wv.Name, status)
		for _, p := range wv.Progress {
			fmt.Fprintf(w, "  %-12s %s %3d/%-3d  staged %d  draining %d  rebooting %d  failed %d\n",
				cell(p.Datacenter), bar(p, 30), p.Healthy, p.Hosts, p.Staged, p.Draining, p.Rebooting, p.Failed)
		}
	}
}

// bar draws healthy (#), in progress (~), failed (!) and pending (.) hosts.
func bar(p wire.RolloutDCCount, width int) string {
	if p.Hosts == 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	scale := func(n int) int { return n * width / p.Hosts }
	hh, ff := scale(p.Healthy), scale(p.Failed)
	ip := scale(p.Staged + p.Draining + p.Rebooting)
	rest := max(width-hh-ff-ip, 0)
	return "[" + strings.Repeat("#", hh) + strings.Repeat("~", ip) + strings.Repeat("!", ff) + strings.Repeat(".", rest) + "]"
}
