package testcoord_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// linesRelease signs a release of line with priv and adds it.
func linesRelease(t *testing.T, ctx context.Context, c *client.Client, priv ed25519.PrivateKey, id, line, kernel string) {
	t.Helper()
	m := release.Manifest{ID: id, Line: line, KernelVersion: kernel, Kind: release.KindBundle,
		Artifacts: []release.Artifact{{Name: "k.tar.gz", URL: "http://127.0.0.1:1/k.tar.gz", Size: 1,
			SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}, Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	canon, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := release.SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddRelease(ctx, wire.ReleaseAddRequest{Manifest: canon, Signature: sig.Marshal()}); err != nil {
		t.Fatal(err)
	}
}

// TestHostLinesThroughQuorum: on a real three-node cluster, operators
// assign lines through a follower (forwarded to the leader): a host's
// line, a datacenter rule for a share of the hosts; agents' answers carry
// the assigned line and its target release on every node, the views say
// where each line comes from, a line no release is of is refused with
// its kind, and every node holds the same assignments.
func TestHostLinesThroughQuorum(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	cs := testcoord.StartCluster(t, 3, testcoord.Options{ReleaseKeys: []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}, TickInterval: time.Hour})
	setupDC(t, cs, "fra")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var follower *testcoord.Coordinator
	for _, c := range cs {
		if !c.Store.IsLeader() {
			follower = c
		}
	}
	op := follower.Client
	linesRelease(t, ctx, op, priv, "k612", "6.12", "6.12.90")
	linesRelease(t, ctx, op, priv, "k618", "6.18", "6.18.4")
	for _, id := range []string{"k612", "k618"} {
		if _, err := op.SetDatacenter(ctx, "fra", wire.DatacenterUpdate{TargetRelease: ptr(id)}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 40
	hb := func(i int) wire.Heartbeat {
		return wire.Heartbeat{HostID: fmt.Sprintf("fra-h%02d", i), Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85", Phase: wire.PhaseIdle}
	}
	for i := range n {
		beat(t, cs[i%3], hb(i))
	}

	// An unknown line is refused, with its kind; forced it would pass.
	var apiErr *client.APIError
	if _, err := op.SetHostLine(ctx, "fra-h00", wire.HostLineRequest{Line: "6.19"}); !errors.As(err, &apiErr) || apiErr.Kind != wire.KindInvalidRequest {
		t.Fatalf("unknown line: %v", err)
	}
	h, err := op.SetHostLine(ctx, "fra-h00", wire.HostLineRequest{Line: "6.18", Reason: "early 6.18"})
	if err != nil {
		t.Fatal(err)
	}
	if h.KernelLine != "6.18" || h.LineSource != fsm.LineSourceOperator || h.OperatorLine != "6.18" || h.AgentLine != "6.12" {
		t.Fatalf("after set-line: %+v", h)
	}
	dc, err := op.SetDatacenter(ctx, "fra", wire.DatacenterUpdate{Line: ptr("6.18"), LinePct: ptr(25)})
	if err != nil {
		t.Fatal(err)
	}
	var ruled []string
	for i := range n {
		if id := hb(i).HostID; fsm.InLineRule(id, 25) {
			ruled = append(ruled, id)
		}
	}
	if dc.LineRule == nil || dc.LineRule.Hosts != len(ruled) || dc.LineRule.Following != len(ruled) || len(ruled) == 0 {
		t.Fatalf("line rule view %+v, want %d hosts selected and following", dc.LineRule, len(ruled))
	}
	// Every node answers every host with its line and that line's target.
	quiet(t, cs)
	for i := range n {
		id := hb(i).HostID
		want, release := "6.12", "k612"
		if i == 0 || fsm.InLineRule(id, 25) {
			want, release = "6.18", "k618"
		}
		for _, c := range cs {
			ds := beat(t, c, hb(i))
			if ds.KernelLine != want || ds.Release == nil || ds.Release.ID != release {
				t.Fatalf("%s via %s: line %q release %v, want %s and %s", id, c.ID, ds.KernelLine, ds.Release, want, release)
			}
		}
	}
	hosts, err := cs[0].Client.Hosts(ctx, "fra")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		source := fsm.LineSourceAgent
		switch {
		case h.ID == "fra-h00":
			source = fsm.LineSourceOperator
		case fsm.InLineRule(h.ID, 25):
			source = fsm.LineSourceDCRule
		}
		if h.LineSource != source {
			t.Errorf("%s: line %s from %s, want from %s", h.ID, h.KernelLine, h.LineSource, source)
		}
	}
	// The replicas agree.
	quiet(t, cs)
	lines := func(c *testcoord.Coordinator) string {
		var b bytes.Buffer
		c.Store.FSM().View(func(st *fsm.State) {
			for i := range n {
				h := st.Hosts[hb(i).HostID]
				fmt.Fprintf(&b, "%s=%s/%s/%s;", h.ID, h.KernelLine, h.LineSource, h.OperatorLine)
			}
		})
		return b.String()
	}
	for _, c := range cs[1:] {
		if a, b := lines(cs[0]), lines(c); a != b {
			t.Fatalf("%s and %s disagree:\n%s\n%s", cs[0].ID, c.ID, a, b)
		}
	}
}
