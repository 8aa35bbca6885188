package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/wire"
)

const statusUsage = "status"

// topKernels is how many kernels a status row names before "+N more".
const topKernels = 3

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use: use(statusUsage), Short: "cluster overview and per-datacenter hosts, kernels, slots and phases",
		Args: nArgs(0, statusUsage),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.status(cmd.Context()) },
	}
}

func (a *app) status(ctx context.Context) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	st, err := c.client.Status(ctx)
	if err != nil {
		return c.fail(err)
	}
	sortMembers(st.Members)
	st.Members = nonNil(st.Members)
	slices.SortFunc(st.Datacenters, func(a, b wire.Datacenter) int { return cmp.Compare(a.Name, b.Name) })
	st.Datacenters = nonNil(st.Datacenters)
	return c.show(st, func(w io.Writer) { statusTable(w, st) })
}

func statusTable(w io.Writer, st *wire.Status) {
	leader := cmp.Or(st.Leader, "none")
	members := make([]string, 0, len(st.Members))
	for _, m := range st.Members {
		s := cell(m.ID)
		switch {
		case m.Leader:
			s += " (leader)"
		case !m.Voter:
			s += " (non-voter)"
		}
		members = append(members, s)
	}
	fmt.Fprintf(w, "leader: %s  members: %s\n\n", cell(leader), cmp.Or(strings.Join(members, ", "), "none"))

	// Hosts may report a datacenter the coordinator has no settings for:
	// show those too, with "-" for the settings.
	type dcRow struct {
		wire.Datacenter
		known bool
	}
	var rows []dcRow
	seen := map[string]bool{}
	for _, dc := range st.Datacenters {
		seen[dc.Name] = true
		rows = append(rows, dcRow{dc, true})
	}
	for _, m := range []map[string]map[string]int{st.Phases, st.Kernels} {
		for name := range m {
			if seen[name] {
				continue
			}
			seen[name] = true
			hosts := 0
			for _, n := range st.Phases[name] {
				hosts += n
			}
			rows = append(rows, dcRow{wire.Datacenter{Name: name, Hosts: hosts}, false})
		}
	}
	slices.SortFunc(rows, func(a, b dcRow) int { return cmp.Compare(a.Name, b.Name) })
	if len(rows) == 0 {
		fmt.Fprintln(w, "no datacenters")
		return
	}
	row(w, "DC", "TIER", "HOSTS", "SERVING", "SLOTS", "PAUSED", "KERNELS", "PHASES")
	for _, dc := range rows {
		kernels, phases := kernelSummary(st.Kernels[dc.Name]), phaseSummary(st.Phases[dc.Name])
		if !dc.known {
			row(w, dc.Name, "", strconv.Itoa(dc.Hosts), "", "", "", kernels, phases)
			continue
		}
		row(w, dc.Name, dc.Tier, strconv.Itoa(dc.Hosts), strconv.Itoa(dc.Serving),
			fmt.Sprintf("%d/%d", dc.SlotsHeld, dc.EffectiveLimit), yesNo(dc.Paused), kernels, phases)
	}
}

// kernelSummary names the most common kernels: "6.12.117×38, 6.12.116×2, +1 more".
func kernelSummary(counts map[string]int) string {
	kernels := slices.Collect(maps.Keys(counts))
	slices.SortFunc(kernels, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	var parts []string
	for i, k := range kernels {
		if i == topKernels {
			parts = append(parts, fmt.Sprintf("+%d more", len(kernels)-topKernels))
			break
		}
		parts = append(parts, fmt.Sprintf("%s×%d", cmp.Or(k, "unknown"), counts[k]))
	}
	return strings.Join(parts, ", ")
}

// phaseSummary lists phase counts in lifecycle order: "idle=38 draining=1".
func phaseSummary(counts map[string]int) string {
	// Lifecycle order (DESIGN §4); unknown phases follow alphabetically.
	phaseOrder := []string{
		wire.PhaseIdle, wire.PhaseStaging, wire.PhaseStaged, wire.PhaseInstalling, wire.PhaseWaitingSlot,
		wire.PhaseDraining, wire.PhaseRebooting, wire.PhaseVerifying, wire.PhaseHealthy,
		wire.PhaseStagingFailed, wire.PhaseInstallFailed, wire.PhaseDrainTimeout, wire.PhaseWrongKernel,
		wire.PhaseUnhealthy, wire.PhaseRollback,
	}
	rank := func(p string) int {
		if i := slices.Index(phaseOrder, p); i >= 0 {
			return i
		}
		return len(phaseOrder)
	}
	phases := slices.Collect(maps.Keys(counts))
	slices.SortFunc(phases, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b)) })
	var parts []string
	for _, p := range phases {
		if counts[p] != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", cmp.Or(p, "unknown"), counts[p]))
		}
	}
	return strings.Join(parts, " ")
}

// nonNil makes an empty list print as [] in JSON.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
