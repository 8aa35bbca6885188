package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	releaseAddUsage    = "release add MANIFEST [--signature FILE]"
	releaseListUsage   = "release list [--all]"
	releaseRejectUsage = "release reject ID --reason TEXT"
)

func (a *app) releaseCommand() *cobra.Command {
	add := &cobra.Command{Use: use(releaseAddUsage), Short: "add a signed release manifest (MANIFEST.sig unless --signature)", Args: nArgs(1, releaseAddUsage)}
	var sigPath string
	add.Flags().StringVar(&sigPath, "signature", "", "detached signature `FILE` (default MANIFEST.sig)")
	add.RunE = func(cmd *cobra.Command, args []string) error { return a.releaseAdd(cmd.Context(), args, sigPath) }
	list := &cobra.Command{Use: use(releaseListUsage), Short: "list releases (state, source, the datacenters they target); --all adds the builds the feeds refused",
		Args: nArgs(0, releaseListUsage)}
	var all bool
	list.Flags().BoolVar(&all, "all", false, "also list the feed builds that are no releases (unsigned, bad-signature, mismatch, invalid, conflict)")
	list.RunE = func(cmd *cobra.Command, _ []string) error { return a.releaseList(cmd.Context(), all) }
	reject := &cobra.Command{Use: use(releaseRejectUsage), Short: "reject a release for its line: it never rolls (unless forced); its rollouts are aborted", Args: nArgs(1, releaseRejectUsage)}
	var rejectReason string
	reject.Flags().StringVar(&rejectReason, "reason", "", "why (required; recorded in the event log)")
	reject.RunE = func(cmd *cobra.Command, args []string) error {
		if strings.TrimSpace(rejectReason) == "" {
			return cli.Usagef("release reject needs --reason")
		}
		c, err := a.connect()
		if err != nil {
			return err
		}
		if err := c.client.RejectRelease(cmd.Context(), args[0], rejectReason); err != nil {
			return c.fail(err)
		}
		return c.show(map[string]string{"rejected": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "release %s rejected\n", cell(args[0])) })
	}
	return cli.Group("release", "signed kernel releases", add, reject, list)
}

func (a *app) releaseAdd(ctx context.Context, pos []string, sigPath string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	if sigPath == "" {
		sigPath = pos[0] + ".sig"
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	// Check locally first so a bad file gets a precise error before any
	// request; send the canonical form the signature covers.
	m, err := release.Decode(data)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	canon, err := m.Canonical()
	if err != nil {
		return err
	}
	rawSig, err := os.ReadFile(sigPath)
	if err != nil {
		return err
	}
	if _, err := signing.ParseSignature(rawSig); err != nil {
		return fmt.Errorf("%s: %w", sigPath, err)
	}
	rel, err := c.client.AddRelease(ctx, wire.ReleaseAddRequest{Manifest: canon, Signature: []byte(strings.TrimSpace(string(rawSig)))})
	if err != nil {
		return c.fail(err)
	}
	return c.show(rel, func(w io.Writer) { releaseTable(w, []wire.Release{*rel}) })
}

func (a *app) releaseList(ctx context.Context, all bool) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	rels, err := c.client.Releases(ctx)
	if err != nil {
		return c.fail(err)
	}
	table := func(w io.Writer) {
		if len(rels) == 0 {
			fmt.Fprintln(w, "no releases")
			return
		}
		releaseTable(w, rels)
	}
	if !all {
		return c.show(nonNil(rels), table)
	}
	builds, err := c.client.FeedBuilds(ctx, "")
	if err != nil {
		return c.fail(err)
	}
	out := struct {
		Releases []wire.Release   `json:"releases"`
		Refused  []wire.FeedBuild `json:"refused"`
	}{nonNil(rels), nonNil(builds)}
	return c.show(out, func(w io.Writer) {
		table(w)
		fmt.Fprintln(w)
		if len(builds) == 0 {
			fmt.Fprintln(w, "no refused feed builds")
			return
		}
		feedBuildTable(w, builds)
	})
}

// feedBuildTable lists refused feed builds: never releases, never rolled.
func feedBuildTable(w io.Writer, builds []wire.FeedBuild) {
	row(w, "FEED", "LINE", "BUILD", "RELEASE", "STATUS", "SEEN", "REASON")
	for _, b := range builds {
		name := b.Key
		if b.Package != "" {
			name = b.Package + " " + b.Version
		}
		row(w, b.Feed, b.Line, name, b.Release, b.Status, ts(b.Seen), b.Reason)
	}
}

func releaseTable(w io.Writer, rels []wire.Release) {
	row(w, "ID", "LINE", "KERNEL", "UPSTREAM", "KIND", "STATE", "SOURCE", "CREATED", "KEY", "TARGETED", "REJECTED")
	for _, r := range rels {
		var rejected []string
		for _, line := range slices.Sorted(maps.Keys(r.Rejected)) {
			rejected = append(rejected, line+" ("+r.Rejected[line]+")")
		}
		row(w, r.ID, r.Line, r.KernelVersion, r.UpstreamVersion, r.Kind, r.State, r.Source, ts(r.Created), r.KeyID, strings.Join(r.Targeted, ","), strings.Join(rejected, "; "))
	}
}
