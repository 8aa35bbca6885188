package main

// rollout watch: a rollout's progress until it ends, readable at 330
// datacenters (a summary line per wave, detail only for the datacenters
// of the waves in motion), with an ETA, the soak countdown and why a wave
// or datacenter waits; its exit status says how the rollout ended.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Rollout states and wave names as the coordinator reports them.
const (
	rolloutDone    = "done"
	rolloutAborted = "aborted"
	rolloutFailed  = "failed"
	rolloutPaused  = "paused"
	waveStaging    = "staging"
	waveControl    = "control"
	waveCanary     = "canary"
)

// maxDCDetail is how many datacenters of a wave in motion watch details;
// the rest are counted in one line.
const maxDCDetail = 20

func (a *app) rolloutWatchCommand() *cobra.Command {
	cmd := &cobra.Command{Use: use(rolloutWatchUsage), Short: "follow a rollout until it ends: waves, ETA, soak, what waits (exit 1 unless done)",
		Long: `Follow a rollout until it ends: a line per wave (state, healthy hosts, the
soak countdown of staging and canary, why a wave has not started), the
datacenters of the waves in motion with why they wait (paused, maintenance
window closed, slots in use), and an ETA from the progress seen so far, the
soak and the pacing of the edge waves.

On a terminal the view is redrawn every --interval; otherwise it is printed
again when something changed (with -o json, one JSON object per line).

Exit status: 0 when the rollout is done; 1 when it was aborted, failed, or
paused on failures (an operator's pause is waited out), the coordinator
could not be asked, or the watch was interrupted (the rollout continues).`,
		Args: nArgs(1, rolloutWatchUsage)}
	var interval time.Duration
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh interval")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if interval < 100*time.Millisecond {
			return cli.Usagef("--interval %s: want at least 100ms", interval)
		}
		return a.rolloutWatch(cmd.Context(), args[0], interval)
	}
	return cmd
}

func (a *app) rolloutWatch(ctx context.Context, id string, interval time.Duration) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	tty := false
	if f, ok := a.env.Stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !c.json {
		tty = true
	}
	var (
		last  string
		first progressSample
	)
	for {
		r, err := c.client.Rollout(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return errWatchInterrupted(id)
			}
			return c.fail(err)
		}
		var dcs map[string]wire.Datacenter
		var dcErr error
		if inMotion(r) {
			var list []wire.Datacenter
			if list, dcErr = c.client.Datacenters(ctx); dcErr == nil {
				dcs = make(map[string]wire.Datacenter, len(list))
				for _, d := range list {
					dcs[d.Name] = d
				}
			}
		}
		now := time.Now()
		h, _ := totals(r)
		if first.at.IsZero() {
			first = progressSample{at: now, healthy: h}
		}
		v := newWatchView(r, dcs, now, first)
		if dcErr != nil {
			v.Note = "datacenter details unavailable: " + printable(c.fail(dcErr).Error())
		}
		switch sig := v.signature(); {
		case tty:
			fmt.Fprint(a.env.Stdout, "\033[H\033[2J")
			v.render(a.env.Stdout)
		case sig == last:
		case c.json:
			data, err := json.Marshal(v)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "%s\n", data)
			last = sig
		default:
			fmt.Fprintf(a.env.Stdout, "%s ", now.UTC().Format(time.RFC3339))
			v.render(a.env.Stdout)
			last = sig
		}
		if err := watchEnd(r); err != nil || r.State == rolloutDone {
			return err
		}
		select {
		case <-ctx.Done():
			return errWatchInterrupted(id)
		case <-time.After(interval):
		}
	}
}

// errWatchInterrupted is what watch ends with when interrupted (SIGINT,
// SIGTERM) before the rollout ended: exit 1, as a script must not take it
// for done.
func errWatchInterrupted(id string) error {
	return fmt.Errorf("rollout %s: watch interrupted; the rollout continues", printable(id))
}

// watchEnd is nil while the rollout goes on (or is done) and the error
// watch ends with otherwise: aborted, failed, or paused on failures.
func watchEnd(r *wire.Rollout) error {
	switch {
	case r.State == rolloutAborted, r.State == rolloutFailed:
		return fmt.Errorf("rollout %s %s: %s", printable(r.ID), r.State, printable(cmp.Or(r.PauseReason, "no reason given")))
	case r.State == rolloutPaused && pausedOnFailures(r):
		return fmt.Errorf("rollout %s paused on failures: %s (after a look: krollctl rollout resume %s)", printable(r.ID), printable(r.PauseReason), printable(r.ID))
	}
	return nil
}

// pausedOnFailures reports whether a paused rollout stopped for failed
// hosts (the failure budget of a wave) rather than only an operator's
// pause: the coordinator's reason says so, or a wave in motion has failed
// hosts.
func pausedOnFailures(r *wire.Rollout) bool {
	if strings.Contains(r.PauseReason, "failure budget") || strings.Contains(r.PauseReason, "unhealthy") {
		return true
	}
	for _, w := range r.Waves {
		if !w.Started.IsZero() && w.Completed.IsZero() {
			for _, p := range w.Progress {
				if p.Failed > 0 {
					return true
				}
			}
		}
	}
	return false
}

// inMotion reports whether a wave has started and not completed.
func inMotion(r *wire.Rollout) bool {
	for _, w := range r.Waves {
		if !w.Started.IsZero() && w.Completed.IsZero() {
			return true
		}
	}
	return false
}

// progressSample is the healthy host count when watch began, for the rate
// behind the ETA.
type progressSample struct {
	at      time.Time
	healthy int
}

// watchView is what watch shows of a rollout at one moment (and prints
// as JSON with -o json).
type watchView struct {
	Time     time.Time `json:"time"`
	Rollout  string    `json:"rollout"`
	Release  string    `json:"release"`
	Kernel   string    `json:"kernel"`
	Line     string    `json:"line"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Expedite bool      `json:"expedite,omitempty"`
	Healthy  int       `json:"healthy"`
	Failed   int       `json:"failed"`
	Hosts    int       `json:"hosts"`
	// ETA is when the rollout is expected to be done (zero: unknown);
	// ETANote says what it rests on or why there is none.
	ETA     time.Time  `json:"eta,omitzero"`
	ETANote string     `json:"eta_note,omitempty"`
	Waves   []waveView `json:"waves"`
	Note    string     `json:"note,omitempty"`
}

// waveView is one wave: its status, counts and what it waits for.
type waveView struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // waiting, running, soaking, passed, done
	Healthy int    `json:"healthy"`
	Active  int    `json:"in_progress"`
	Failed  int    `json:"failed"`
	Hosts   int    `json:"hosts"`
	DCs     int    `json:"datacenters"`
	// Waits says why a waiting wave has not started.
	Waits string `json:"waits,omitempty"`
	// SoakEnds is when a soaking wave passes unless a host fails.
	SoakEnds time.Time `json:"soak_ends,omitzero"`
	// NotBefore is the pacing of a waiting edge wave.
	NotBefore time.Time `json:"not_before,omitzero"`
	// InMotion are the datacenters of a running wave not yet through,
	// with why they wait.
	InMotion []dcView `json:"in_motion,omitempty"`
}

// dcView is a datacenter of a wave in motion.
type dcView struct {
	wire.RolloutDCCount
	Waits string `json:"waits,omitempty"`
}

// newWatchView computes the view of r at now; dcs (may be nil) are the
// datacenters' settings, first the progress when watching began.
func newWatchView(r *wire.Rollout, dcs map[string]wire.Datacenter, now time.Time, first progressSample) watchView {
	v := watchView{Time: now.UTC(), Rollout: r.ID, Release: r.Release, Kernel: r.Kernel, Line: r.Line, State: r.State,
		Reason: r.PauseReason, Expedite: r.Expedite}
	soak := time.Duration(r.SoakSeconds) * time.Second
	cycle := time.Duration(r.CycleSeconds) * time.Second
	edgeWaves := 0
	for _, w := range r.Waves {
		if w.Name != waveStaging && w.Name != waveControl {
			edgeWaves++
		}
	}
	var (
		blocker   string // why later waves wait: the first gate not open
		edgeStart time.Time
		edgeIndex int
		bound     time.Time // no earlier than this: soak and pacing
	)
	for _, w := range r.Waves {
		wv := waveView{Name: w.Name, DCs: len(w.Progress)}
		for _, p := range w.Progress {
			wv.Healthy += p.Healthy
			wv.Failed += p.Failed
			wv.Active += p.Staged + p.Draining + p.Rebooting
			wv.Hosts += p.Hosts
		}
		v.Healthy, v.Failed, v.Hosts = v.Healthy+wv.Healthy, v.Failed+wv.Failed, v.Hosts+wv.Hosts
		strict := w.Name == waveStaging || w.Name == waveCanary
		isEdge := w.Name != waveStaging && w.Name != waveControl
		switch {
		case !w.Passed.IsZero():
			wv.Status = "passed"
		case strict && !w.Completed.IsZero():
			wv.Status = "soaking"
			wv.SoakEnds = w.Completed.Add(soak).UTC()
			bound = later(bound, wv.SoakEnds)
		case !w.Completed.IsZero():
			wv.Status = "done"
		case !w.Started.IsZero():
			wv.Status = "running"
			if strict {
				bound = later(bound, now.Add(soak))
			}
			wv.InMotion = dcsInMotion(w, dcs, r.Expedite, now)
		default:
			wv.Status = "waiting"
		}
		if w.Started.IsZero() {
			var why []string
			if blocker != "" {
				why = append(why, blocker)
			}
			if isEdge && edgeIndex > 0 && !r.Expedite && edgeWaves > 0 {
				if !edgeStart.IsZero() {
					wv.NotBefore = edgeStart.Add(time.Duration(edgeIndex) * (cycle / time.Duration(edgeWaves))).UTC()
					bound = later(bound, wv.NotBefore)
					if now.Before(wv.NotBefore) {
						why = append(why, fmt.Sprintf("paced: not before %s (in %s)", wv.NotBefore.Format(time.RFC3339), roundDur(wv.NotBefore.Sub(now))))
					}
				} else {
					why = append(why, fmt.Sprintf("paced over the %s cycle", roundDur(cycle)))
				}
			}
			if strict {
				bound = later(bound, later(bound, now).Add(soak))
			}
			if r.State == rolloutPaused {
				why = append([]string{"rollout paused"}, why...)
			}
			wv.Waits = strings.Join(why, "; ")
		} else if isEdge && edgeIndex == 0 {
			edgeStart = w.Started
		}
		if isEdge {
			edgeIndex++
		}
		if blocker == "" && w.Gates {
			switch {
			case w.Started.IsZero() || w.Completed.IsZero():
				blocker = fmt.Sprintf("after wave %s completes (%d/%d healthy)", w.Name, wv.Healthy, wv.Hosts)
			case strict && w.Passed.IsZero():
				blocker = fmt.Sprintf("after wave %s passes its soak (%s left)", w.Name, roundDur(max(wv.SoakEnds.Sub(now), 0)))
			}
		}
		v.Waves = append(v.Waves, wv)
	}
	v.ETA, v.ETANote = eta(r, v, now, first, bound)
	return v
}

// eta estimates when r is done: the hosts left at the rate seen since
// watch began, no earlier than the soak and pacing still ahead.
func eta(r *wire.Rollout, v watchView, now time.Time, first progressSample, bound time.Time) (time.Time, string) {
	switch r.State {
	case rolloutDone, rolloutAborted, rolloutFailed:
		return time.Time{}, ""
	case rolloutPaused:
		return time.Time{}, "paused"
	}
	left := v.Hosts - v.Healthy - v.Failed
	gained, took := v.Healthy-first.healthy, now.Sub(first.at)
	var t time.Time
	note := ""
	switch {
	case left <= 0:
		t = now
	case gained > 0 && took > 0:
		t = now.Add(time.Duration(float64(took) * float64(left) / float64(gained)))
		note = fmt.Sprintf("%d hosts left at %.1f/h", left, float64(gained)/took.Hours())
	default:
		if bound.After(now) {
			return bound.UTC(), "soak and pacing ahead; host rate not known yet"
		}
		return time.Time{}, "not known until hosts progress"
	}
	if bound.After(t) {
		t, note = bound, "soak and pacing ahead"
	}
	return t.UTC(), note
}

// dcsInMotion returns the datacenters of a running wave that are not yet
// through, busiest first, with why they wait.
func dcsInMotion(w wire.RolloutWave, dcs map[string]wire.Datacenter, expedite bool, now time.Time) []dcView {
	var out []dcView
	for _, p := range w.Progress {
		if p.Healthy+p.Failed >= p.Hosts {
			continue
		}
		out = append(out, dcView{RolloutDCCount: p, Waits: dcWaits(p, dcs, expedite, now)})
	}
	slices.SortStableFunc(out, func(a, b dcView) int {
		return cmp.Or(cmp.Compare(b.Draining+b.Rebooting+b.Failed, a.Draining+a.Rebooting+a.Failed), cmp.Compare(a.Datacenter, b.Datacenter))
	})
	return out
}

// dcWaits says why a datacenter's hosts wait: a pause, a closed
// maintenance window (not for an expedited rollout), all slots in use.
func dcWaits(p wire.RolloutDCCount, dcs map[string]wire.Datacenter, expedite bool, now time.Time) string {
	d, ok := dcs[p.Datacenter]
	if !ok {
		return ""
	}
	var why []string
	if d.Paused {
		why = append(why, "paused: "+cmp.Or(d.PauseReason, "no reason given"))
	}
	if !expedite && d.Window != "" {
		if win, err := schedule.ParseWindow(d.Window); err == nil && !win.IsAlways() && !win.Contains(now) {
			start, _ := win.Next(now)
			why = append(why, fmt.Sprintf("window closed, opens in %s (%s)", roundDur(start.Sub(now)), d.Window))
		}
	}
	switch {
	case d.EffectiveLimit == 0:
		why = append(why, "no slots (limit 0)")
	case d.SlotsHeld >= d.EffectiveLimit && p.Staged > 0:
		why = append(why, fmt.Sprintf("slots in use %d/%d", d.SlotsHeld, d.EffectiveLimit))
	}
	return strings.Join(why, "; ")
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// roundDur formats d for people: 3d4h, 2h5m, 12m30s, 45s.
func roundDur(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		days := d / (24 * time.Hour)
		return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Second).String()
}

// signature is what watch compares to print a changed view only: the
// view without its clock-driven parts.
func (v watchView) signature() string {
	v.Time, v.ETA, v.ETANote = time.Time{}, time.Time{}, ""
	for i := range v.Waves {
		w := &v.Waves[i]
		if w.Status == "soaking" || w.Waits != "" {
			w.Waits = strings.SplitN(w.Waits, "(", 2)[0]
		}
		for j := range w.InMotion {
			w.InMotion[j].Waits = strings.SplitN(w.InMotion[j].Waits, "(", 2)[0]
		}
	}
	data, _ := json.Marshal(v)
	return string(data)
}

// render writes the view as text: a headline, a line per wave, the
// datacenters in motion under their wave.
func (v watchView) render(w io.Writer) {
	fmt.Fprintf(w, "rollout %s: %s → %s (line %s)  %s", cell(v.Rollout), cell(v.Release), cell(v.Kernel), cell(v.Line), cell(v.State))
	if v.Reason != "" {
		fmt.Fprintf(w, ": %s", printable(v.Reason))
	}
	fmt.Fprintf(w, "  %d/%d healthy", v.Healthy, v.Hosts)
	if v.Failed > 0 {
		fmt.Fprintf(w, ", %d failed", v.Failed)
	}
	switch {
	case !v.ETA.IsZero():
		fmt.Fprintf(w, "  ETA %s (in %s; %s)", v.ETA.Format(time.RFC3339), roundDur(max(v.ETA.Sub(v.Time), 0)), cmp.Or(v.ETANote, "estimate"))
	case v.ETANote != "":
		fmt.Fprintf(w, "  ETA: %s", v.ETANote)
	}
	fmt.Fprintln(w)
	if v.Expedite {
		fmt.Fprintln(w, "EXPEDITED")
	}
	for _, wv := range v.Waves {
		line := fmt.Sprintf("  %-10s %-8s %s %d/%d healthy", printable(wv.Name), wv.Status, bar(wire.RolloutDCCount{Hosts: wv.Hosts, Healthy: wv.Healthy, Failed: wv.Failed, Staged: wv.Active}, 20), wv.Healthy, wv.Hosts)
		if wv.Active > 0 {
			line += fmt.Sprintf(", %d in progress", wv.Active)
		}
		if wv.Failed > 0 {
			line += fmt.Sprintf(", %d failed", wv.Failed)
		}
		line += fmt.Sprintf(" in %d DCs", wv.DCs)
		if !wv.SoakEnds.IsZero() {
			line += fmt.Sprintf("  soak: %s left (until %s)", roundDur(max(wv.SoakEnds.Sub(v.Time), 0)), wv.SoakEnds.Format(time.RFC3339))
		}
		if wv.Waits != "" {
			line += "  waits: " + wv.Waits
		}
		fmt.Fprintln(w, line)
		for i, d := range wv.InMotion {
			if i == maxDCDetail {
				fmt.Fprintf(w, "      … %d more datacenters in motion (krollctl rollout status %s)\n", len(wv.InMotion)-maxDCDetail, cell(v.Rollout))
				break
			}
			line := fmt.Sprintf("      %-12s %s %3d/%-3d staged %d draining %d rebooting %d failed %d", cell(d.Datacenter), bar(d.RolloutDCCount, 20),
				d.Healthy, d.Hosts, d.Staged, d.Draining, d.Rebooting, d.Failed)
			if d.Waits != "" {
				line += "  waits: " + printable(d.Waits)
			}
			fmt.Fprintln(w, line)
		}
	}
	if v.Note != "" {
		fmt.Fprintln(w, v.Note)
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
