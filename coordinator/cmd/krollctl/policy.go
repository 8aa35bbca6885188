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

	retire := &cobra.Command{Use: use(policyRetireUsage), Short: "remove a policy fleet-wide", Args: nArgs(1, policyRetireUsage)}
	var reason string
	retire.Flags().StringVar(&reason, "reason", "", "why, for the event log")
	retire.RunE = func(cmd *cobra.Command, args []string) error { return a.policyRetire(cmd.Context(), args[0], reason) }
	return cli.Group("policy", "bpf-lsm mitigation policies: push, coverage, retire", push,
		&cobra.Command{Use: use(policyListUsage), Short: "pushed policies and, per datacenter, how many hosts report each state", Args: nArgs(0, policyListUsage),
			RunE: func(cmd *cobra.Command, _ []string) error { return a.policyList(cmd.Context()) }},
		retire)
}

func (a *app) policyPush(ctx context.Context, pos []string, sigPath string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	if sigPath == "" {
		sigPath = pos[0] + ".sig"
	}
	doc, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	// Precise local errors before any request.
	if _, err := policy.Decode(doc, time.Now()); err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	rawSig, err := os.ReadFile(sigPath)
	if err != nil {
		return err
	}
	if _, err := signing.ParseSignature(rawSig); err != nil {
		return fmt.Errorf("%s: %w", sigPath, err)
	}
	p, err := c.client.PushPolicy(ctx, wire.PolicyPushRequest{Document: string(doc), Signature: []byte(strings.TrimSpace(string(rawSig)))})
	if err != nil {
		return c.fail(err)
	}
	return c.show(p, func(w io.Writer) { policyTable(w, []wire.Policy{*p}) })
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
	row(w, "POLICY", "VERSION", "KIND", "MODE", "CVE", "STATUS", "DC", "COVERAGE")
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
			row(w, p.ID, strconv.FormatInt(p.Version, 10), p.Kind, p.Mode, p.CVE, status, "-", "no hosts")
			continue
		}
		for _, dc := range dcs {
			row(w, p.ID, strconv.FormatInt(p.Version, 10), p.Kind, p.Mode, p.CVE, status, dc, coverage(p.Coverage[dc]))
		}
	}
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
