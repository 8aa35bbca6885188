package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const cveShowUsage = "cve show CVE-ID"

func (a *app) cveCommand() *cobra.Command {
	return cli.Group("cve", "fleet exposure to a CVE and the playbook per kernel line",
		a.acrossRegions(&cobra.Command{
			Use:   use(cveShowUsage),
			Short: "hosts patched, mitigated, auditing and exposed, per line and datacenter, with the advice per line",
			Long: `Counts every host once, in total, per kernel line and per datacenter:
patched (its running kernel is a release that lists the CVE in fixes, or a
later release of its line, or meets a fixed_in entry of a policy for the CVE),
mitigated (a policy for the CVE enforcing), auditing (only auditing) and
exposed (neither). Per line it names the release with the fix furthest along
the train and advises: expedite the train, rolling (how far), or no fix on the
line: keep the mitigation.`,
			Args: nArgs(1, cveShowUsage),
			RunE: func(cmd *cobra.Command, args []string) error { return a.cveShow(cmd.Context(), args[0]) },
		}, cveShowRegional))
}

// cveShowRegional is cve show across regions: a row per region and
// kernel line with its counts and advice, the region's totals in its
// result line.
func cveShowRegional(args []string) (*regional, error) {
	id := args[0]
	if err := release.CheckCVE(id); err != nil {
		return nil, cli.Usagef("cve show: %v", err)
	}
	return &regional{header: cveLineHeader(), run: func(ctx context.Context, c *coord) (regionResult, error) {
		rep, err := c.client.CVE(ctx, id)
		if err != nil {
			return regionResult{}, err
		}
		t := rep.CVECounts
		return regionResult{value: rep, rows: cveLineRows(rep), summary: fmt.Sprintf("%d hosts: %d patched, %d mitigated, %d auditing, %d exposed",
			t.Hosts(), t.Patched, t.Mitigated, t.Auditing, t.Exposed)}, nil
	}}, nil
}

// cveCounts are the count cells of a row.
func cveCounts(c wire.CVECounts) []string {
	return []string{strconv.Itoa(c.Hosts()), strconv.Itoa(c.Patched), strconv.Itoa(c.Mitigated), strconv.Itoa(c.Auditing), strconv.Itoa(c.Exposed)}
}

// cveLineHeader is the header of the per-line rows.
func cveLineHeader() []string {
	return []string{"LINE", "HOSTS", "PATCHED", "MITIGATED", "AUDITING", "EXPOSED", "FIX-RELEASE", "FIX-STATE", "ADVICE"}
}

// cveLineRows are the per-line rows of a report.
func cveLineRows(rep *wire.CVEReport) [][]string {
	var rows [][]string
	for _, l := range rep.Lines {
		rows = append(rows, append(append([]string{l.Line}, cveCounts(l.CVECounts)...), l.FixRelease, l.FixState, l.Advice))
	}
	return rows
}

func (a *app) cveShow(ctx context.Context, id string) error {
	if err := release.CheckCVE(id); err != nil {
		return cli.Usagef("cve show: %v", err)
	}
	c, err := a.connect()
	if err != nil {
		return err
	}
	rep, err := c.client.CVE(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	return c.show(rep, func(w io.Writer) { cveTable(w, rep) })
}

// cveTable prints the totals, the lines with their advice and the
// datacenters.
func cveTable(w io.Writer, rep *wire.CVEReport) {
	row(w, "CVE", "HOSTS", "PATCHED", "MITIGATED", "AUDITING", "EXPOSED")
	row(w, append([]string{rep.CVE}, cveCounts(rep.CVECounts)...)...)
	fmt.Fprintln(w)
	row(w, cveLineHeader()...)
	for _, r := range cveLineRows(rep) {
		row(w, r...)
	}
	fmt.Fprintln(w)
	row(w, "DC", "HOSTS", "PATCHED", "MITIGATED", "AUDITING", "EXPOSED")
	for _, d := range rep.Datacenters {
		row(w, append([]string{d.Datacenter}, cveCounts(d.CVECounts)...)...)
	}
}
