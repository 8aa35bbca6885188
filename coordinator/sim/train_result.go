package sim

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// TrainResult is what a train simulation measured. The JSON field names
// are stable (docs and scripts read them); days count from the start.
type TrainResult struct {
	Hosts            int     `json:"hosts"`
	Datacenters      int     `json:"datacenters"`
	Seed             uint64  `json:"seed"`
	Weeks            int     `json:"weeks"`
	Line             string  `json:"line"`
	BuildEveryHours  float64 `json:"build_every_hours"`
	FailBuild        int     `json:"fail_build"`
	StagingSoakHours float64 `json:"staging_soak_hours"`
	ControlSoakHours float64 `json:"control_soak_hours"`
	EdgeCycleHours   float64 `json:"edge_cycle_hours"`
	Departure        string  `json:"departure"`
	Start            string  `json:"start"`
	// Builds are the kernel's builds: build 0 the kernel the fleet ran at
	// the start, then the feed's.
	Builds []BuildResult `json:"builds"`
	// Steps are the train steps the simulated leader applied (train.Decide),
	// supersedes left out.
	Steps []TrainStepResult `json:"steps"`
	// DaysBehind is, per tier ("all", "staging", "control", "edge"), the
	// distribution over hosts of the longest time each host ran a build
	// older than the newest validated one (from the moment a newer build
	// was validated until the host ran it or newer).
	DaysBehind map[string]Dist `json:"days_behind_max"`
	// DaysBehindMean is the distribution of each host's mean over the run.
	DaysBehindMean map[string]Dist `json:"days_behind_mean"`
	// DaysBehindEnd is the distribution at the end of the run.
	DaysBehindEnd map[string]Dist `json:"days_behind_end"`
	// BehindBoundDays is what days behind cannot exceed on a healthy
	// train: a build validated just after a departure waits one edge
	// cycle for the next departure, which paces its waves over one more
	// cycle; plus the canary soak and a day of maintenance windows.
	BehindBoundDays float64 `json:"behind_bound_days"`
	// CVE is the exposure report (nil without a CVE).
	CVE *CVEResult `json:"cve,omitempty"`

	Upgrades                int            `json:"upgrades"`
	HostsFailed             int            `json:"hosts_failed"`
	OperatorActions         int            `json:"operator_actions"`
	Grants                  int            `json:"grants"`
	Denials                 map[string]int `json:"denials"`
	CapacityFloorViolations int            `json:"capacity_floor_violations"`
	SlotLimitViolations     int            `json:"slot_limit_violations"`
	Ticks                   int            `json:"ticks"`
	Events                  int            `json:"events"`
	Commands                uint64         `json:"fsm_commands"`
	// Series are the plot's time series.
	Series TrainSeries `json:"-"`
}

// BuildResult is one build's way through the train (days; -1 = never).
type BuildResult struct {
	Build        int     `json:"build"`
	Release      string  `json:"release"`
	Kernel       string  `json:"kernel"`
	AddedDay     float64 `json:"added_day"`
	StagedDay    float64 `json:"staged_day"`
	ValidatedDay float64 `json:"validated_day"`
	ControlDay   float64 `json:"control_day"`
	DepartedDay  float64 `json:"departed_day"`
	// State is the release state at the end (fsm.Release.State).
	State       string `json:"state"`
	StateReason string `json:"state_reason,omitempty"`
	// HostsAtEnd is how many hosts run the build at the end.
	HostsAtEnd int `json:"hosts_at_end"`
}

// TrainStepResult is one train step the leader applied.
type TrainStepResult struct {
	Day     float64 `json:"day"`
	Action  string  `json:"action"`
	Release string  `json:"release,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	// Refused is the state machine's refusal, if it refused the step.
	Refused string `json:"refused,omitempty"`
}

// Dist is a distribution over hosts (days).
type Dist struct {
	Hosts int     `json:"hosts"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	Max   float64 `json:"max"`
}

// CVEResult is the exposure to a CVE disclosed on Day and fixed in the
// first build published after it.
type CVEResult struct {
	Day float64 `json:"day"`
	// FixBuild is the fixing build (0: none published in the run).
	FixBuild   int    `json:"fix_build"`
	FixRelease string `json:"fix_release,omitempty"`
	// MitigatedHours is when after the disclosure the mitigation covers
	// every host: the push delay plus its propagation.
	MitigateAfterHours        float64 `json:"mitigate_after_hours"`
	PropagationMinutes        float64 `json:"propagation_minutes"`
	ExposureHostDays          float64 `json:"exposure_host_days"`
	ExposureHostDaysMitigated float64 `json:"exposure_host_days_mitigated"`
	// HostsExposedAtEnd run a build without the fix at the end (the
	// mitigation, if pushed, still covers them).
	HostsExposedAtEnd int `json:"hosts_exposed_at_end"`
	// PatchedAllDay is when the last host ran a fixing build (-1: not
	// within the run).
	PatchedAllDay float64 `json:"patched_all_day"`
}

// TrainSeries are the sampled series of the plot.
type TrainSeries struct {
	Hours []float64
	// HostsOnBuild[i][k] is the number of hosts on build k at sample i.
	HostsOnBuild [][]int
	// Exposed and ExposedMitigated are the hosts exposed to the CVE at
	// each sample, without and with the mitigation.
	Exposed          []int
	ExposedMitigated []int
}

func (s *trainSim) finish() {
	r := &s.res
	r.Hosts, r.Datacenters, r.Seed, r.Weeks, r.Line = len(s.hosts), len(s.dcs), s.opt.Seed, s.opt.Weeks, s.fleet.Line
	r.BuildEveryHours, r.FailBuild = s.opt.BuildEvery.Hours(), s.opt.FailBuild
	r.StagingSoakHours, r.ControlSoakHours, r.EdgeCycleHours = s.opt.StagingSoak.Hours(), s.opt.ControlSoak.Hours(), s.opt.EdgeCycle.Hours()
	r.Departure, r.Start = s.opt.Departure, s.start.Format(time.RFC3339)
	r.BehindBoundDays = days(2*s.opt.EdgeCycle + s.opt.ControlSoak + 24*time.Hour)
	if r.Denials == nil {
		r.Denials = map[string]int{}
	}
	if r.Steps == nil {
		r.Steps = []TrainStepResult{}
	}
	if len(r.Series.Hours) == 0 || r.Series.Hours[len(r.Series.Hours)-1] < s.now.Hours() {
		s.sample()
	}
	s.f.View(func(st *fsm.State) {
		for k := 1; k < len(s.builds); k++ {
			if rel := st.Releases[s.builds[k].Release]; rel != nil {
				s.builds[k].State, s.builds[k].StateReason = rel.State, rel.StateReason
			} else {
				s.builds[k].State = "unpublished"
			}
		}
	})
	for k := range s.builds {
		s.builds[k].HostsAtEnd = s.counts[k]
	}
	r.Builds = s.builds
	maxB, meanB, endB := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	var exp, expMit float64 // host-days (a sum of Durations overflows)
	exposedEnd := 0
	for i := range s.hosts {
		h := &s.hosts[i]
		s.account(h, s.end)
		h.since = s.end
		tier := s.dcs[h.dc].spec.tier()
		for _, t := range []string{"all", tier} {
			maxB[t] = append(maxB[t], days(h.maxBehind))
			meanB[t] = append(meanB[t], h.areaBehind/s.end.Hours()/24)
			endB[t] = append(endB[t], days(s.behindNow(h, s.end)))
		}
		exp += days(h.exposed)
		expMit += days(h.exposedMit)
		if h.build < s.fix {
			exposedEnd++
		}
	}
	r.DaysBehind, r.DaysBehindMean, r.DaysBehindEnd = dists(maxB), dists(meanB), dists(endB)
	if s.opt.CVE {
		c := &CVEResult{Day: s.opt.CVEDay, MitigateAfterHours: s.opt.MitigateAfter.Hours(), PropagationMinutes: s.opt.MitigationPropagation.Minutes(),
			ExposureHostDays: round3(exp), ExposureHostDaysMitigated: round3(expMit), HostsExposedAtEnd: exposedEnd, PatchedAllDay: -1}
		if s.fix < len(s.builds) {
			c.FixBuild, c.FixRelease = s.fix, s.builds[s.fix].Release
			for i, hrs := range r.Series.Hours {
				if hrs*float64(time.Hour) >= float64(s.cveAt) && r.Series.Exposed[i] == 0 {
					c.PatchedAllDay = round3(hrs / 24)
					break
				}
			}
		}
		r.CVE = c
	}
	r.Commands = s.f.Applied()
}

// dists returns the distribution of each group's values.
func dists(groups map[string][]float64) map[string]Dist {
	out := make(map[string]Dist, len(groups))
	for k, v := range groups {
		slices.Sort(v)
		out[k] = Dist{Hosts: len(v), P50: round3(quantile(v, 0.5)), P90: round3(quantile(v, 0.9)), Max: round3(v[len(v)-1])}
	}
	return out
}

// quantile returns the nearest-rank q-quantile of sorted v.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// WriteTable writes r as a human-readable report: the builds' way
// through the train, the train's steps, days behind per tier and the CVE
// exposure.
func (r *TrainResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "train simulation: %d hosts, %d datacenters, line %s, %d weeks from %s, seed %d\n", r.Hosts, r.Datacenters, r.Line, r.Weeks, r.Start, r.Seed)
	fmt.Fprintf(tw, "builds every %s, staging soak %s, control soak %s, edge cycle %s, departing %s", hoursDur(r.BuildEveryHours), hoursDur(r.StagingSoakHours),
		hoursDur(r.ControlSoakHours), hoursDur(r.EdgeCycleHours), r.Departure)
	if r.FailBuild > 0 {
		fmt.Fprintf(tw, ", build %d fails staging", r.FailBuild)
	}
	fmt.Fprintf(tw, "\n\nBUILD\tRELEASE\tADDED_D\tSTAGED_D\tVALIDATED_D\tCONTROL_D\tDEPARTED_D\tSTATE\tHOSTS_AT_END\n")
	for _, b := range r.Builds {
		rel := b.Release
		if b.Build == 0 {
			rel = b.Kernel + " (initial)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", b.Build, rel, dayCell(b.AddedDay, b.Build), dayCell(b.StagedDay, b.Build), dayCell(b.ValidatedDay, -1),
			dayCell(b.ControlDay, -1), dayCell(b.DepartedDay, -1), b.State, b.HostsAtEnd)
	}
	fmt.Fprintf(tw, "\nDAY\tSTEP\tRELEASE\tREASON\n")
	for _, st := range r.Steps {
		reason := st.Reason
		if st.Refused != "" {
			reason = "REFUSED: " + st.Refused
		}
		fmt.Fprintf(tw, "%.2f\t%s\t%s\t%s\n", st.Day, st.Action, orDash(st.Release), reason)
	}
	fmt.Fprintf(tw, "\nDAYS BEHIND\tHOSTS\tMAX P50\tMAX P90\tMAX MAX\tMEAN P50\tMEAN P90\tEND P50\tEND MAX\n")
	for _, t := range tierOrder(r.DaysBehind) {
		m, a, e := r.DaysBehind[t], r.DaysBehindMean[t], r.DaysBehindEnd[t]
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n", t, m.Hosts, m.P50, m.P90, m.Max, a.P50, a.P90, e.P50, e.Max)
	}
	fmt.Fprintf(tw, "(bound on a healthy train: %.1f days = 2 edge cycles + control soak + 1 day)\n", r.BehindBoundDays)
	if c := r.CVE; c != nil {
		fix := "none published in the run"
		if c.FixBuild > 0 {
			fix = fmt.Sprintf("build %d (%s)", c.FixBuild, c.FixRelease)
		}
		fmt.Fprintf(tw, "\nCVE disclosed on day %g, fixed in %s\n", c.Day, fix)
		fmt.Fprintf(tw, "exposure_host_days\t%.1f\t(no mitigation)\n", c.ExposureHostDays)
		fmt.Fprintf(tw, "exposure_host_days_mitigated\t%.1f\t(mitigation pushed %gh after disclosure, %g min to propagate)\n", c.ExposureHostDaysMitigated, c.MitigateAfterHours, c.PropagationMinutes)
		fmt.Fprintf(tw, "hosts_exposed_at_end\t%d\t\n", c.HostsExposedAtEnd)
		fmt.Fprintf(tw, "patched_all_day\t%s\t\n", dayCell(c.PatchedAllDay, -1))
	}
	denials := make([]string, 0, len(r.Denials))
	for _, k := range slices.Sorted(maps.Keys(r.Denials)) {
		denials = append(denials, fmt.Sprintf("%s=%d", k, r.Denials[k]))
	}
	fmt.Fprintf(tw, "\nupgrades\t%d\nhosts_failed\t%d\noperator_actions\t%d\ngrants\t%d\ndenials\t%s\ncapacity_floor_violations\t%d\nslot_limit_violations\t%d\nticks\t%d\nevents\t%d\nfsm_commands\t%d\n",
		r.Upgrades, r.HostsFailed, r.OperatorActions, r.Grants, strings.Join(denials, " "), r.CapacityFloorViolations, r.SlotLimitViolations, r.Ticks, r.Events, r.Commands)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("sim: write table: %w", err)
	}
	return nil
}

func tierOrder(m map[string]Dist) []string {
	var out []string
	for _, t := range []string{"all", fsm.TierStaging, fsm.TierControl, fsm.TierEdge} {
		if _, ok := m[t]; ok {
			out = append(out, t)
		}
	}
	return out
}

func hoursDur(h float64) string { return time.Duration(h * float64(time.Hour)).String() }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// dayCell renders a day (-1: never); build 0 has no day at all.
func dayCell(d float64, build int) string {
	if d < 0 || build == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", d)
}

// WriteTrainSVG draws r's series as a standalone SVG document: the hosts
// on each build over time (stacked), and the hosts exposed to the CVE
// without and with the mitigation.
func WriteTrainSVG(w io.Writer, r *TrainResult) error {
	sr := r.Series
	bw := bufio.NewWriter(w)
	charts := 1
	if r.CVE != nil {
		charts = 2
	}
	height := marginTop + charts*chartHeight + (charts-1)*chartGap + 50
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("kroll train simulation: %d hosts, %d weeks, builds every %s, departing %s", r.Hosts, r.Weeks, hoursDur(r.BuildEveryHours), r.Departure)
	if r.FailBuild > 0 {
		title += fmt.Sprintf(", build %d fails", r.FailBuild)
	}
	fmt.Fprintf(bw, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", marginLeft, html.EscapeString(title))
	xmax := max(float64(r.Weeks)*7, 1e-9)
	xs := make([]float64, len(sr.Hours))
	for i, h := range sr.Hours {
		xs[i] = h / 24
	}
	top := marginTop
	ymax := niceCeil(float64(max(r.Hosts, 1)))
	axes(bw, top, xmax, ymax, "hosts on each build (stacked)", "")
	colors := plotColors()
	// Stacked: the line of build k is the hosts on builds ≤ k.
	cum := make([]float64, len(sr.Hours))
	for k := range r.Builds {
		any := false
		for i, c := range sr.HostsOnBuild {
			if k < len(c) {
				cum[i] += float64(c[k])
				any = any || c[k] > 0
			}
		}
		if !any {
			continue
		}
		c := colors[k%len(colors)]
		polyline(bw, top, xs, cum, 1, xmax, ymax, c)
		label := fmt.Sprintf("build %d", k)
		if k == 0 {
			label = "initial"
		}
		if k == r.FailBuild {
			label += " (failed)"
		}
		fmt.Fprintf(bw, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", plotWidth-marginRight+15, top+15+16*(k%18), c, html.EscapeString(label))
	}
	if r.CVE != nil {
		top += chartHeight + chartGap
		peak := 1
		for _, v := range sr.Exposed {
			peak = max(peak, v)
		}
		ymax2 := niceCeil(float64(peak))
		axes(bw, top, xmax, ymax2, fmt.Sprintf("hosts exposed to the CVE disclosed on day %g", r.CVE.Day), "")
		toF := func(v []int) []float64 {
			out := make([]float64, len(v))
			for i, x := range v {
				out[i] = float64(x)
			}
			return out
		}
		polyline(bw, top, xs, toF(sr.Exposed), 1, xmax, ymax2, colors[1])
		polyline(bw, top, xs, toF(sr.ExposedMitigated), 1, xmax, ymax2, colors[2])
		fmt.Fprintf(bw, `<text x="%d" y="%d" fill="%s">no mitigation</text>`+"\n", plotWidth-marginRight+15, top+15, colors[1])
		fmt.Fprintf(bw, `<text x="%d" y="%d" fill="%s">mitigated at +%gh</text>`+"\n", plotWidth-marginRight+15, top+31, colors[2], r.CVE.MitigateAfterHours)
	}
	fmt.Fprintf(bw, `<text x="%d" y="%d" text-anchor="middle">days since the start</text>`+"\n",
		marginLeft+(plotWidth-marginLeft-marginRight)/2, top+chartHeight+38)
	fmt.Fprintln(bw, `</svg>`)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("sim: write svg: %w", err)
	}
	return nil
}
