package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/coordinator/train"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	trainSetUsage      = "train set LINE --staging DC,... --staging-soak 72h --control-soak 24h --edge-cycle 672h --departure \"Tue 09:00 UTC\" [--freeze 2026-12-20..2027-01-04 ...]"
	trainShowUsage     = "train show [LINE]"
	trainActUsage      = "train hold|resume|skip LINE --reason TEXT"
	trainExpediteUsage = "train expedite LINE RELEASE --reason TEXT"
)

func (a *app) trainCommand() *cobra.Command {
	act := func(action, short string) *cobra.Command {
		synopsis := strings.Replace(trainActUsage, "hold|resume|skip", action, 1)
		cmd := &cobra.Command{Use: use(synopsis), Short: short, Args: nArgs(1, synopsis)}
		var reason string
		cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the event log)")
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return cli.Usagef("train %s needs --reason", action)
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			t, err := c.client.TrainAction(cmd.Context(), args[0], action, reason)
			if err != nil {
				return c.fail(err)
			}
			return c.show(t, func(w io.Writer) { trainTable(w, t) })
		}
		if action == "skip" {
			return cmd
		}
		return a.acrossRegions(cmd, func(args []string) (*regional, error) {
			if strings.TrimSpace(reason) == "" {
				return nil, cli.Usagef("train %s needs --reason", action)
			}
			return trainActRegional(args[0], action, reason), nil
		})
	}
	show := a.acrossRegions(&cobra.Command{Use: use(trainShowUsage), Short: "a line's train: next departure, edge and control releases, validated and staging releases, holds, freezes, events", Args: rangeArgs(0, 1, trainShowUsage),
		RunE: func(cmd *cobra.Command, args []string) error { return a.trainShow(cmd.Context(), args) }},
		func(args []string) (*regional, error) { return trainShowRegional(args), nil })
	return cli.Group("train", "the release train of a kernel line: staging, control, then the edge on its cadence",
		a.trainSetCommand(), show, act("hold", "stop every automatic step of the line's train"), act("resume", "end a hold"),
		act("skip", "skip the next departure only"), a.trainExpediteCommand())
}

func (a *app) trainSetCommand() *cobra.Command {
	cmd := &cobra.Command{Use: use(trainSetUsage), Short: "create or change a line's train", Args: nArgs(1, trainSetUsage)}
	var (
		staging                  string
		stagingSoak, controlSoak time.Duration
		edgeCycle                time.Duration
		departure                string
		freezes                  []string
	)
	fs := cmd.Flags()
	fs.StringVar(&staging, "staging", "", "staging datacenters that stage every candidate, comma-separated (required)")
	fs.DurationVar(&stagingSoak, "staging-soak", 72*time.Hour, "how long staging must stay healthy before a release is validated")
	fs.DurationVar(&controlSoak, "control-soak", 24*time.Hour, "soak of the control rollouts and of the edge train's canary wave")
	fs.DurationVar(&edgeCycle, "edge-cycle", 672*time.Hour, "departure cadence and the time an edge train's waves are paced over (whole weeks)")
	fs.StringVar(&departure, "departure", "", "departure weekday, time and zone, e.g. \"Tue 09:00 UTC\" (required)")
	fs.StringArrayVar(&freezes, "freeze", nil, "FIRST..LAST dates (inclusive, in the departure's zone) with no departure and no control or edge rollout start; repeatable")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if staging == "" || departure == "" {
			return cli.Usagef("train set needs --staging and --departure")
		}
		// Check what needs no coordinator here, for one clear error.
		if _, err := train.SetTrain(train.Settings{Line: args[0], StagingSoak: stagingSoak, ControlSoak: controlSoak, EdgeCycle: edgeCycle,
			Departure: departure, Freezes: freezes}, time.Now()); err != nil {
			return cli.Usagef("%v", err)
		}
		if stagingSoak <= 0 || controlSoak <= 0 || edgeCycle <= 0 {
			return cli.Usagef("--staging-soak, --control-soak and --edge-cycle must be positive")
		}
		req := wire.TrainSetRequest{Staging: strings.Split(staging, ","), StagingSoakSeconds: int64(stagingSoak / time.Second),
			ControlSoakSeconds: int64(controlSoak / time.Second), EdgeCycleSeconds: int64(edgeCycle / time.Second),
			Departure: departure, Freezes: freezes}
		c, err := a.connect()
		if err != nil {
			return err
		}
		t, err := c.client.SetTrain(cmd.Context(), args[0], req)
		if err != nil {
			return c.fail(err)
		}
		return c.show(t, func(w io.Writer) { trainTable(w, t) })
	}
	return cmd
}

func (a *app) trainExpediteCommand() *cobra.Command {
	cmd := &cobra.Command{Use: use(trainExpediteUsage), Short: "depart a validated release now (expedited: no pacing, maintenance windows ignored)", Args: nArgs(2, trainExpediteUsage)}
	var reason string
	cmd.Flags().StringVar(&reason, "reason", "", "why, e.g. the CVE (required; recorded in the event log)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if strings.TrimSpace(reason) == "" {
			return cli.Usagef("train expedite needs --reason")
		}
		c, err := a.connect()
		if err != nil {
			return err
		}
		t, err := c.client.ExpediteTrain(cmd.Context(), args[0], wire.TrainExpediteRequest{Release: args[1], Reason: reason})
		if err != nil {
			return c.fail(err)
		}
		return c.show(t, func(w io.Writer) { trainTable(w, t) })
	}
	return cmd
}

func (a *app) trainShow(ctx context.Context, pos []string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		t, err := c.client.Train(ctx, pos[0])
		if err != nil {
			return c.fail(err)
		}
		return c.show(t, func(w io.Writer) { trainTable(w, t) })
	}
	ts, err := c.client.Trains(ctx)
	if err != nil {
		return c.fail(err)
	}
	return c.show(nonNil(ts), func(w io.Writer) {
		if len(ts) == 0 {
			fmt.Fprintln(w, "no trains (krollctl train set)")
			return
		}
		row(w, trainHeader()...)
		for _, r := range trainRows(ts) {
			row(w, r...)
		}
	})
}

// trainHeader is the header of the one-row-per-train table.
func trainHeader() []string {
	return []string{"LINE", "NEXT DEPARTURE", "EDGE", "CONTROL", "WAITING", "HELD", "FROZEN"}
}

// trainRows are the rows of trains, one each.
func trainRows(ts []wire.Train) [][]string {
	rows := make([][]string, 0, len(ts))
	for i := range ts {
		t := &ts[i]
		rows = append(rows, []string{t.Line, ts0(t.NextDeparture), orDash(t.EdgeRelease), orDash(t.ControlRelease), orDash(t.Waiting), held(t), frozen(t)})
	}
	return rows
}

// trainShowRegional is train show across regions: a row per region and
// train (of the line given, or every line).
func trainShowRegional(args []string) *regional {
	return &regional{header: trainHeader(), run: func(ctx context.Context, c *coord) (regionResult, error) {
		if len(args) == 1 {
			t, err := c.client.Train(ctx, args[0])
			if err != nil {
				return regionResult{}, err
			}
			return regionResult{value: t, rows: trainRows([]wire.Train{*t}), summary: "train " + cell(t.Line)}, nil
		}
		ts, err := c.client.Trains(ctx)
		if err != nil {
			return regionResult{}, err
		}
		return regionResult{value: nonNil(ts), rows: trainRows(ts), summary: fmt.Sprintf("%d trains", len(ts))}, nil
	}}
}

// trainActRegional holds or resumes a line's train in every region.
func trainActRegional(line, action, reason string) *regional {
	return &regional{header: trainHeader(), write: true, run: func(ctx context.Context, c *coord) (regionResult, error) {
		t, err := c.client.TrainAction(ctx, line, action, reason)
		if err != nil {
			return regionResult{}, err
		}
		return regionResult{value: t, rows: trainRows([]wire.Train{*t}), summary: action + " " + cell(t.Line)}, nil
	}}
}

func ts0(t time.Time) string { return ts(t) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func held(t *wire.Train) string {
	if t.Held {
		return "HELD: " + t.HoldReason
	}
	return "no"
}

func frozen(t *wire.Train) string {
	for _, f := range t.Freezes {
		if f.Active {
			return f.Spec
		}
	}
	return "no"
}

// trainTable prints a train: its settings, where its releases stand and
// its latest events.
func trainTable(w io.Writer, t *wire.Train) {
	fmt.Fprintf(w, "train %s: departs %s every %s; next departure %s\n", cell(t.Line), cell(t.Departure),
		time.Duration(t.EdgeCycleSeconds)*time.Second, ts(t.NextDeparture))
	fmt.Fprintf(w, "staging %s (soak %s), control soak %s\n", cell(strings.Join(t.Staging, ",")),
		time.Duration(t.StagingSoakSeconds)*time.Second, time.Duration(t.ControlSoakSeconds)*time.Second)
	if t.Held {
		fmt.Fprintf(w, "HELD: %s\n", cell(t.HoldReason))
	}
	if t.SkipNext {
		fmt.Fprintf(w, "the next departure is SKIPPED: %s\n", cell(t.SkipReason))
	}
	for _, f := range t.Freezes {
		active := ""
		if f.Active {
			active = " (IN FORCE)"
		}
		fmt.Fprintf(w, "freeze %s%s\n", cell(f.Spec), active)
	}
	fmt.Fprintf(w, "edge: %s (rollout %s, departed %s); control: %s; waiting for the next departure: %s\n",
		cell(orDash(t.EdgeRelease)), cell(orDash(t.EdgeRollout)), ts(t.Departed), cell(orDash(t.ControlRelease)), cell(orDash(t.Waiting)))
	if t.StagingBlocked != "" {
		fmt.Fprintf(w, "staging not ready: %s\n", cell(t.StagingBlocked))
	}
	for _, a := range t.Attention {
		fmt.Fprintf(w, "attention: %s\n", cell(a))
	}
	if len(t.Releases) > 0 {
		row(w, "RELEASE", "KERNEL", "STATE", "WHY")
		for _, r := range t.Releases {
			row(w, r.ID, r.Kernel, r.State, r.StateReason)
		}
	}
	for _, e := range t.Events {
		fmt.Fprintf(w, "%s  %s\n", ts(e.Time), cell(e.Message))
	}
}
