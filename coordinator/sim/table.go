package sim

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable writes r as a human-readable table: the headline metrics
// (under their JSON names) and one row per rollout wave.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	state := r.RolloutState
	if r.PauseReason != "" {
		state += ": " + r.PauseReason
	}
	denials := make([]string, 0, len(r.Denials))
	for _, k := range slices.Sorted(maps.Keys(r.Denials)) {
		denials = append(denials, fmt.Sprintf("%s=%d", k, r.Denials[k]))
	}
	rows := [][2]string{
		{"scenario", scenarioName(r)},
		{"seed", fmt.Sprint(r.Seed)},
		{"hosts", fmt.Sprint(r.Hosts)},
		{"datacenters", fmt.Sprint(r.Datacenters)},
		{"makespan_hours", fmt.Sprintf("%.2f", r.MakespanHours)},
		{"lower_bound_hours", fmt.Sprintf("%.2f", r.LowerBoundHours)},
		{"efficiency", fmt.Sprintf("%.3f", r.Efficiency)},
		{"max_dc_out_fraction", fmt.Sprintf("%.3f", r.MaxDCOutFraction)},
		{"capacity_floor_violations", fmt.Sprint(r.CapacityFloorViolations)},
		{"slot_limit_violations", fmt.Sprint(r.SlotLimitViolations)},
		{"completed", fmt.Sprintf("%v (rollout %s)", r.Completed, state)},
		{"hosts_updated", fmt.Sprint(r.HostsUpdated)},
		{"hosts_failed", fmt.Sprint(r.HostsFailed)},
		{"hosts_lost", fmt.Sprint(r.HostsLost)},
		{"rollout_budget", fmt.Sprintf("%d per wave", r.RolloutBudget)},
		{"grants", fmt.Sprint(r.Grants)},
		{"denials", strings.Join(denials, " ")},
		{"operator_actions", fmt.Sprintf("%d (%d datacenter resumes)", r.OperatorActions, r.DatacenterResumes)},
	}
	if len(r.DatacentersLeftPaused) > 0 {
		rows = append(rows, [2]string{"datacenters_left_paused", strings.Join(r.DatacentersLeftPaused, ",")})
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	fmt.Fprintf(tw, "\nWAVE\tDCS\tHOSTS\tSTARTED_H\tDONE_H\tBOUND_START_H\tBOUND_DONE_H\n")
	for _, wv := range r.Waves {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%.2f\t%.2f\n", wv.Name, wv.Datacenters, wv.Hosts, hoursCell(wv.Started), hoursCell(wv.Completed), wv.BoundStart, wv.BoundDone)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("sim: write table: %w", err)
	}
	return nil
}

func hoursCell(h float64) string {
	if h < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", h)
}
