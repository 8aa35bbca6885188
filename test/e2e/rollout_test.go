package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/lifecycle"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
	"github.com/kroll-dev/kroll/test/simhost"
)

// TestRolloutSimulatedHosts: 36 real agents (agent/lifecycle: journal,
// heartbeats, slots with fencing, health checks) on SIMULATED hosts
// (test/simhost: timed fakes of staging, drain and boot) in three edge
// datacenters and a staging one complete a rollout through a real 3-node
// coordinator quorum; no datacenter ever has more hosts out of service than
// its slot limit, and every host ends on the new kernel exactly once
// rebooted.
func TestRolloutSimulatedHosts(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{11}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{ReleaseKeys: []ed25519.PublicKey{pub}, HeartbeatInterval: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	admin := nodes[1].Client // a follower or the leader: writes are forwarded
	dcs := map[string]int{"stg1": 3, "fra1": 15, "ams1": 10, "sin1": 8}
	for dc := range dcs {
		tier := "edge"
		if dc == "stg1" {
			tier = "staging"
		}
		limit, floor := 2, 50
		if _, err := admin.SetDatacenter(ctx, dc, wire.DatacenterUpdate{Tier: &tier, SlotLimit: &limit, MinHealthyPct: &floor}); err != nil {
			t.Fatal(err)
		}
	}
	m := release.Manifest{ID: "6.12.95-kroll.1", Line: "6.12", KernelVersion: "6.12.95+deb12-amd64", UpstreamVersion: "6.12.95",
		Kind: release.KindBundle, Artifacts: []release.Artifact{{Name: "k.tar.gz", URL: "http://127.0.0.1:1/k.tar.gz", Size: 1,
			SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}, Created: time.Now().UTC().Truncate(time.Second)}
	canon, _ := m.Canonical()
	sig, err := release.SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddRelease(ctx, wire.ReleaseAddRequest{Manifest: canon, Signature: sig.Marshal()}); err != nil {
		t.Fatal(err)
	}

	var cls []*client.Client
	for _, n := range nodes {
		c, err := client.New(n.URL, client.Options{Token: testcoord.AgentToken, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cls = append(cls, c)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var hosts []*simhost.Host
	var wg sync.WaitGroup
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer func() { stopAgents(); wg.Wait() }()
	i := 0
	for dc, n := range dcs {
		for j := range n {
			i++
			id := fmt.Sprintf("%s-h%02d", dc, j)
			dir := t.TempDir()
			h, err := simhost.New(id, dir, "6.12.80+deb12-amd64", "6.12.80",
				simhost.Durations{Stage: 200 * time.Millisecond, Drain: 100 * time.Millisecond, Boot: 300 * time.Millisecond}, []ed25519.PublicKey{pub}, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			hosts = append(hosts, h)
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
	}
	// Everyone registered.
	waitUntil(t, ctx, "all hosts registered", func() bool {
		hs, err := admin.Hosts(ctx, "")
		return err == nil && len(hs) == len(hosts)
	})
	if _, err := admin.StartRollout(ctx, wire.RolloutStartRequest{Release: m.ID, SoakSeconds: 1, CycleSeconds: 3, Waves: []float64{0.5, 1}}); err != nil {
		t.Fatal(err)
	}
	// Watch the slots while the rollout runs: never above the limit.
	maxHeld := map[string]int{}
	var last *wire.Rollout
	waitUntil(t, ctx, "rollout done", func() bool {
		slots, err := admin.Slots(ctx, "")
		if err == nil {
			per := map[string]int{}
			for _, s := range slots {
				per[s.Datacenter]++
			}
			for dc, n := range per {
				maxHeld[dc] = max(maxHeld[dc], n)
			}
		}
		r, err := admin.Rollout(ctx, m.ID)
		if err == nil {
			last = r
		}
		if ctx.Err() == nil && time.Until(deadlineOf(ctx)) < time.Second {
			t.Logf("last status: %s", plainRollout(last))
			hs, _ := admin.Hosts(context.Background(), "")
			for _, h := range hs {
				t.Logf("host %s %s %s unhealthy=%v slot=%v", h.ID, h.Phase, h.Kernel, h.Unhealthy, h.Slot != nil)
			}
		}
		return err == nil && r.State == "done"
	})
	for dc, n := range maxHeld {
		if n > 2 {
			t.Errorf("%s: %d slots held at once, limit 2", dc, n)
		}
	}
	for _, h := range hosts {
		if k, boots := h.Kernel(); k != m.KernelVersion || boots != 1 || !h.Announced() {
			t.Errorf("host on %s after %d boots, announced %v", k, boots, h.Announced())
		}
	}
	var waves []string
	for _, w := range last.Waves {
		waves = append(waves, fmt.Sprintf("%s(%d DCs) %s→%s", w.Name, len(w.Progress), w.Started.Format("15:04:05"), w.Completed.Format("15:04:05")))
	}
	t.Logf("rollout of %d simulated hosts through a 3-node quorum: %v; max slots held %v", len(hosts), waves, maxHeld)
}

func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func plainRollout(r *wire.Rollout) string {
	if r == nil {
		return "none"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\n", r.ID, r.State, r.PauseReason)
	for _, w := range r.Waves {
		fmt.Fprintf(&b, "  %s started=%v completed=%v %+v\n", w.Name, !w.Started.IsZero(), !w.Completed.IsZero(), w.Progress)
	}
	return b.String()
}
