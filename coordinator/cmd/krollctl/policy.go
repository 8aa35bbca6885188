package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	policyPushUsage   = "policy push SIGNED_POLICY [--signature FILE]"
	policyListUsage   = "policy list"
	policyRetireUsage = "policy retire ID [--reason TEXT]"
)

func (a *app) policyCommand() *cobra.Command {
	push := &cobra.Command{Use: use(policyPushUsage), Short: "push a signed policy (POLICY.sig unless --signature) to the agents of its datacenters", Args: nArgs(1, policyPushUsage)}
	var sigPath string
	push.Flags().StringVar(&sigPath, "signature", "", "detached signature `FILE` (default SIGNED_POLICY.sig)")
	push.RunE = func(cmd *cobra.Command, args []string) error { return a.policyPush(cmd.Context(), args, sigPath) }
	a.acrossRegions(push, func(args []string) (*regional, error) { return policyPushRegional(args, sigPath, a.env.Stderr) })

	retire := &cobra.Command{Use: use(policyRetireUsage), Short: "remove a policy fleet-wide", Args: nArgs(1, policyRetireUsage)}
	var reason string
	retire.Flags().StringVar(&reason, "reason", "", "why, for the event log")
	retire.RunE = func(cmd *cobra.Command, args []string) error { return a.policyRetire(cmd.Context(), args[0], reason) }
	a.acrossRegions(retire, func(args []string) (*regional, error) { return policyRetireRegional(args[0], reason), nil })
	list := &cobra.Command{Use: use(policyListUsage), Short: "pushed policies and, per datacenter, how many hosts report each state", Args: nArgs(0, policyListUsage),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.policyList(cmd.Context()) }}
	a.acrossRegions(list, func([]string) (*regional, error) { return policyListRegional(), nil })
	return cli.Group("policy", "bpf-lsm mitigation policies: push, coverage, retire", push, list, retire)
}

func (a *app) policyPush(ctx context.Context, pos []string, sigPath string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	req, warn, err := readPolicyPush(pos[0], sigPath)
	if err != nil {
		return err
	}
	if warn != "" {
		fmt.Fprintln(a.env.Stderr, "krollctl: warning: "+warn)
	}
	p, err := c.client.PushPolicy(ctx, req)
	if err != nil {
		return c.fail(err)
	}
	return c.show(p, func(w io.Writer) { policyTable(w, []wire.Policy{*p}) })
}

// readPolicyPush reads a signed policy and its signature (path.sig
// unless sigPath) and checks both locally: precise errors before any
// request. warn is the version-skew warning of fixedInSkew ("" when none).
func readPolicyPush(path, sigPath string) (req wire.PolicyPushRequest, warn string, err error) {
	if sigPath == "" {
		sigPath = path + ".sig"
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		return wire.PolicyPushRequest{}, "", err
	}
	p, err := policy.Decode(doc, time.Now())
	if err != nil {
		return wire.PolicyPushRequest{}, "", fmt.Errorf("%s: %w", path, err)
	}
	rawSig, err := os.ReadFile(sigPath)
	if err != nil {
		return wire.PolicyPushRequest{}, "", err
	}
	if _, err := signing.ParseSignature(rawSig); err != nil {
		return wire.PolicyPushRequest{}, "", fmt.Errorf("%s: %w", sigPath, err)
	}
	return wire.PolicyPushRequest{Document: string(doc), Signature: []byte(strings.TrimSpace(string(rawSig)))}, fixedInSkew(p.AppliesTo.FixedIn), nil
}

// fixedInSkew warns of fixed_in entries in the build or Debian-package
// form: agents older than this release reject the whole policy (see
// docs/operations.md, version skew). "" when every entry is upstream.
func fixedInSkew(fixedIn []string) string {
	var newer []string
	for _, s := range fixedIn {
		if f, err := kversion.ParseFix(s); err == nil && f.Form() != kversion.FixUpstream {
			newer = append(newer, fmt.Sprintf("%s (%s)", s, f.Form()))
		}
	}
	if len(newer) == 0 {
		return ""
	}
	return "applies_to.fixed_in lists " + strings.Join(newer, ", ") +
		": agents older than this release reject the whole policy (nothing enforced there); upgrade them first"
}

// policyPushRegional pushes the same signed document and signature to
// every region (a version-skew warning goes to stderr once).
func policyPushRegional(pos []string, sigPath string, stderr io.Writer) (*regional, error) {
	req, warn, err := readPolicyPush(pos[0], sigPath)
	if err != nil {
		return nil, err
	}
	if warn != "" {
		fmt.Fprintln(stderr, "krollctl: warning: "+warn)
	}
	return &regional{header: policyHeader(), write: true, run: func(ctx context.Context, c *coord) (regionResult, error) {
		p, err := c.client.PushPolicy(ctx, req)
		if err != nil {
			return regionResult{}, err
		}
		return regionResult{value: p, rows: policyRows([]wire.Policy{*p}), summary: fmt.Sprintf("pushed %s version %d", cell(p.ID), p.Version)}, nil
	}}, nil
}

// policyListRegional lists every region's policies.
func policyListRegional() *regional {
	return &regional{header: policyHeader(), run: func(ctx context.Context, c *coord) (regionResult, error) {
		ps, err := c.client.Policies(ctx)
		if err != nil {
			return regionResult{}, err
		}
		return regionResult{value: nonNil(ps), rows: policyRows(ps), summary: fmt.Sprintf("%d policies", len(ps))}, nil
	}}
}

// policyRetireRegional retires policy id in every region.
func policyRetireRegional(id, reason string) *regional {
	return &regional{header: policyHeader(), write: true, run: func(ctx context.Context, c *coord) (regionResult, error) {
		p, err := c.client.RetirePolicy(ctx, wire.PolicyRetireRequest{ID: id, Reason: reason})
		if err != nil {
			return regionResult{}, err
		}
		return regionResult{value: p, rows: policyRows([]wire.Policy{*p}), summary: "retired " + cell(p.ID)}, nil
	}}
}

func (a *app) policyList(ctx context.Context) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	ps, err := c.client.Policies(ctx)
	if err != nil {
		return c.fail(err)
	}
	return c.show(nonNil(ps), func(w io.Writer) {
		if len(ps) == 0 {
			fmt.Fprintln(w, "no policies")
			return
		}
		policyTable(w, ps)
	})
}

func (a *app) policyRetire(ctx context.Context, id, reason string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	p, err := c.client.RetirePolicy(ctx, wire.PolicyRetireRequest{ID: id, Reason: reason})
	if err != nil {
		return c.fail(err)
	}
	return c.show(p, func(w io.Writer) { policyTable(w, []wire.Policy{*p}) })
}

// policyTable prints one row per policy and datacenter: the coverage, so
// the operator sees where a mitigation is in force, not just intent.
func policyTable(w io.Writer, ps []wire.Policy) {
	row(w, policyHeader()...)
	for _, cells := range policyRows(ps) {
		row(w, cells...)
	}
}

// policyHeader heads the rows of policyRows.
func policyHeader() []string {
	return []string{"POLICY", "VERSION", "KIND", "MODE", "CVE", "STATUS", "DC", "COVERAGE"}
}

// policyRows are the rows of policyTable, in the order of ps.
func policyRows(ps []wire.Policy) [][]string {
	var out [][]string
	for _, p := range ps {
		status := "active"
		if p.Retired {
			status = "retired"
		}
		dcs := make([]string, 0, len(p.Coverage))
		for dc := range p.Coverage {
			dcs = append(dcs, dc)
		}
		slices.Sort(dcs)
		if len(dcs) == 0 {
			out = append(out, []string{p.ID, strconv.FormatInt(p.Version, 10), p.Kind, p.Mode, p.CVE, status, "-", "no hosts"})
			continue
		}
		for _, dc := range dcs {
			out = append(out, []string{p.ID, strconv.FormatInt(p.Version, 10), p.Kind, p.Mode, p.CVE, status, dc, coverage(p.Coverage[dc])})
		}
	}
	return out
}

// coverage formats state counts, in-force states first.
func coverage(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		for i, p := range []string{string(wire.PolicyEnforcing), string(wire.PolicyAuditing), string(wire.PolicyUnavailable), string(wire.PolicyRetired), string(wire.PolicyRejected), "missing"} {
			if strings.HasPrefix(k, p) {
				return i
			}
		}
		return 9
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, counts[k])
	}
	return strings.Join(parts, " ")
}
