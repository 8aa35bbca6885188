package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/lifecycle"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
	"github.com/kroll-dev/kroll/test/simhost"
)

// TestLineMigrationSimulatedHosts: 40 real agents (agent/lifecycle) on
// SIMULATED hosts (test/simhost), configured for line 6.12, run against a
// real 3-node coordinator quorum. An operator sets the datacenter's line
// rule to 6.18 for 10 % of its hosts: exactly the hosts the stable hash
// selects learn line 6.18 from their desired state, take the datacenter's
// 6.18 target through real slots (never more than the slot limit at
// once), reboot into it once and report following 6.18; every other host
// stays on 6.12 untouched, and a host an operator moves back to 6.12
// afterwards is refused (never a downgrade) and stays on 6.18.
func TestLineMigrationSimulatedHosts(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{12}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{ReleaseKeys: []ed25519.PublicKey{pub}, HeartbeatInterval: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	admin := nodes[1].Client
	const dc, n, limit = "fra1", 40, 2
	if _, err := admin.SetDatacenter(ctx, dc, wire.DatacenterUpdate{Tier: ptr("edge"), SlotLimit: ptr(limit), MinHealthyPct: ptr(50)}); err != nil {
		t.Fatal(err)
	}
	addRelease := func(id, line, kernel, upstream string) {
		m := release.Manifest{ID: id, Line: line, KernelVersion: kernel, UpstreamVersion: upstream,
			Kind: release.KindBundle, Artifacts: []release.Artifact{{Name: "k.tar.gz", URL: "http://127.0.0.1:1/k.tar.gz", Size: 1,
				SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}, Created: time.Now().UTC().Truncate(time.Second)}
		canon, err := m.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		sig, err := release.SignManifest(priv, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.AddRelease(ctx, wire.ReleaseAddRequest{Manifest: canon, Signature: sig.Marshal()}); err != nil {
			t.Fatal(err)
		}
	}
	const oldKernel, newKernel = "6.12.80+deb12-amd64", "6.18.4+deb13-amd64"
	addRelease("6.12.80-kroll.1", "6.12", oldKernel, "6.12.80") // what 6.12 runs: nothing to do
	addRelease("6.18.4-kroll.1", "6.18", newKernel, "6.18.4")
	for _, id := range []string{"6.12.80-kroll.1", "6.18.4-kroll.1"} {
		if _, err := admin.SetDatacenter(ctx, dc, wire.DatacenterUpdate{TargetRelease: ptr(id)}); err != nil {
			t.Fatal(err)
		}
	}

	var cls []*client.Client
	for _, node := range nodes {
		c, err := client.New(node.URL, client.Options{Token: testcoord.AgentToken, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cls = append(cls, c)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hosts := map[string]*simhost.Host{}
	var selected []string
	var wg sync.WaitGroup
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer func() { stopAgents(); wg.Wait() }()
	for i := range n {
		id := fmt.Sprintf("%s-edge%02d", dc, i)
		if fsm.InLineRule(id, 10) {
			selected = append(selected, id)
		}
		dir := t.TempDir()
		h, err := simhost.New(id, dir, oldKernel, "6.12.80",
			simhost.Durations{Stage: 200 * time.Millisecond, Drain: 100 * time.Millisecond, Boot: 300 * time.Millisecond}, []ed25519.PublicKey{pub}, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		hosts[id] = h
		fo, err := client.NewFailover(cls[i%3], cls[(i+1)%3], cls[(i+2)%3])
		if err != nil {
			t.Fatal(err)
		}
		cfg := lifecycle.Config{HostID: id, Datacenter: dc, KernelLine: "6.12", Coordinator: fo,
			RetryInterval: 200 * time.Millisecond, HeartbeatInterval: time.Second, RenewInterval: time.Second}
		wg.Go(func() {
			if err := h.Agent(agentCtx, cfg, filepath.Join(dir, "state"), quiet); err != nil {
				t.Errorf("%s: %v", id, err)
			}
		})
	}
	if len(selected) == 0 || len(selected) > n/4 {
		t.Fatalf("10%% of %d hosts selects %d", n, len(selected))
	}
	waitUntil(t, ctx, "all hosts registered", func() bool {
		hs, err := admin.Hosts(ctx, dc)
		return err == nil && len(hs) == n
	})
	rule, err := admin.SetDatacenter(ctx, dc, wire.DatacenterUpdate{Line: ptr("6.18"), LinePct: ptr(10)})
	if err != nil {
		t.Fatal(err)
	}
	if rule.LineRule == nil || rule.LineRule.Hosts != len(selected) {
		t.Fatalf("line rule %+v, want %d hosts selected", rule.LineRule, len(selected))
	}
	maxHeld := 0
	waitUntil(t, ctx, "the selected hosts healthy on 6.18", func() bool {
		if slots, err := admin.Slots(ctx, dc); err == nil {
			maxHeld = max(maxHeld, len(slots))
		}
		hs, err := admin.Hosts(ctx, dc)
		if err != nil {
			return false
		}
		done := 0
		for _, h := range hs {
			if slices.Contains(selected, h.ID) && h.Kernel == newKernel && h.AssignedLine == "6.18" && h.Slot == nil &&
				(h.Phase == wire.PhaseIdle || h.Phase == wire.PhaseHealthy) {
				done++
			}
		}
		return done == len(selected)
	})
	if maxHeld > limit {
		t.Errorf("%d slots held at once, limit %d", maxHeld, limit)
	}
	hs, err := admin.Hosts(ctx, dc)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		k, boots := hosts[h.ID].Kernel()
		want, wantBoots, wantLine, source := oldKernel, 0, "6.12", fsm.LineSourceAgent
		if slices.Contains(selected, h.ID) {
			want, wantBoots, wantLine, source = newKernel, 1, "6.18", fsm.LineSourceDCRule
		}
		if k != want || boots != wantBoots || h.KernelLine != wantLine || h.LineSource != source || h.AgentLine != "6.12" {
			t.Errorf("%s: runs %s after %d boots, line %s (%s, agent %s); want %s after %d, line %s (%s)",
				h.ID, k, boots, h.KernelLine, h.LineSource, h.AgentLine, want, wantBoots, wantLine, source)
		}
	}
	// Back to 6.12 would be a downgrade of a migrated host: refused.
	back, err := admin.SetHostLine(ctx, selected[0], wire.HostLineRequest{Line: "6.12", Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if back.KernelLine != "6.18" || back.PendingLine != "6.12" {
		t.Fatalf("moved back: %+v", back)
	}
	events, err := admin.Events(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var refused, moved int
	for _, e := range events {
		switch {
		case e.Type == "line_refused" && e.Host == selected[0]:
			refused++
		case e.Type == "line_changed":
			moved++
		}
	}
	if refused != 1 || moved != len(selected) {
		t.Fatalf("events: %d refusals of %s, %d moves; want 1 and %d", refused, selected[0], moved, len(selected))
	}
	t.Logf("%d of %d hosts moved to line 6.18 through at most %d slots at once: %v", len(selected), n, maxHeld, selected)
}

func ptr[T any](v T) *T { return &v }
