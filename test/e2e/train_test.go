package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/lifecycle"
	"github.com/kroll-dev/kroll/coordinator/clock"
	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/aptrepo"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
	"github.com/kroll-dev/kroll/test/simhost"
)

// fastClock is a clock running speed times faster than the host's, wall
// and monotonic alike: the coordinators stamp their commands with it, so
// the state machine's time (soaks, departures, leases) is compressed.
type fastClock struct {
	start time.Time
	speed time.Duration
	sys   *clock.System
}

func (c *fastClock) Mono() time.Duration { return c.sys.Mono() * c.speed }
func (c *fastClock) Wall() time.Time     { return c.start.Add(c.Mono()) }

// TestTrainFromFeed is the release train end to end, on compressed time
// (1 s = 10 min): a real 3-node quorum polling a real apt repository the
// test builds (dpkg-deb, dpkg-scanpackages) and serves over HTTP, real
// agents on simulated hosts in a staging, a control and two edge
// datacenters, and the train of line 6.12 departing a few hours after it
// is set. Nobody runs `release add`: each weekly build is published to
// the repository (the .deb, the Packages index, the signed manifest next
// to the .deb) and the coordinators' feed makes it a candidate. The first
// build fails staging (its kernel fails the staging hosts' health check)
// and is rejected: it never reaches control or the edge. The second is
// validated after its soak, the control tier takes it at once, before the
// departure, and the edge train departs with it at the departure time.
func TestTrainFromFeed(t *testing.T) {
	const speed = 600
	fc := &fastClock{start: time.Now().UTC(), speed: speed, sys: clock.NewSystem()}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{12}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	// The weekly-build repository: empty until the first build.
	repo, err := aptrepo.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Index(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repo.Dir)))
	defer srv.Close()
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{ReleaseKeys: []ed25519.PublicKey{pub}, HeartbeatInterval: time.Second,
		Clocks: map[string]clock.Clock{"c1": fc, "c2": fc, "c3": fc},
		// Leases and reboot deadlines run on the compressed state time;
		// the leader's liveness pass on the host's (AliveWithin and
		// LivenessGrace are real seconds to it).
		Timing: fsm.Timing{Lease: 2 * time.Hour, RebootDeadline: 4 * time.Hour, AliveWithin: 10 * time.Second, LivenessGrace: 10 * time.Second, ExpireAfter: 30 * 24 * time.Hour},
		Feeds: []feed.Config{{Name: "weekly", Kind: feed.KindApt, URL: srv.URL + "/", Suite: aptrepo.Suite, Component: aptrepo.Component,
			Arch: aptrepo.Arch, Package: "linux-image-6.12.*-amd64", Line: "6.12", Interval: time.Second}}})
	ctx, cancel := context.WithTimeout(t.Context(), 180*time.Second)
	defer cancel()
	admin := nodes[1].Client
	dcs := []struct {
		name, tier string
		hosts      int
	}{{"stg1", fsm.TierStaging, 2}, {"ctl1", fsm.TierControl, 2}, {"fra1", fsm.TierEdge, 3}, {"ams1", fsm.TierEdge, 2}}
	for _, dc := range dcs {
		tier, limit := dc.tier, 2
		if tier == fsm.TierStaging {
			// One staging host boots at a time: the other has staged the
			// build and waits for the slot when the first one fails it.
			limit = 1
		}
		if _, err := admin.SetDatacenter(ctx, dc.name, wire.DatacenterUpdate{Tier: &tier, SlotLimit: &limit}); err != nil {
			t.Fatal(err)
		}
	}
	bad, good := "6.12.81+deb12-amd64", "6.12.82+deb12-amd64"

	var cls []*client.Client
	for _, n := range nodes {
		c, err := client.New(n.URL, client.Options{Token: testcoord.AgentToken, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cls = append(cls, c)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hosts := map[string][]*simhost.Host{}
	resets := map[string]string{}
	var wg sync.WaitGroup
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer func() { stopAgents(); wg.Wait() }()
	i := 0
	for _, dc := range dcs {
		for j := range dc.hosts {
			i++
			id := fmt.Sprintf("%s-h%d", dc.name, j)
			dir := t.TempDir()
			h, err := simhost.New(id, dir, "6.12.80+deb12-amd64", "6.12.80",
				simhost.Durations{Stage: 100 * time.Millisecond, Drain: 50 * time.Millisecond, Boot: 200 * time.Millisecond}, []ed25519.PublicKey{pub}, uint64(100+i))
			if err != nil {
				t.Fatal(err)
			}
			if dc.tier == fsm.TierStaging {
				h.SetUnhealthyOn(bad)
			}
			hosts[dc.name] = append(hosts[dc.name], h)
			fo, err := client.NewFailover(cls[i%3], cls[(i+1)%3], cls[(i+2)%3])
			if err != nil {
				t.Fatal(err)
			}
			cfg := lifecycle.Config{HostID: id, Datacenter: dc.name, KernelLine: "6.12", Coordinator: fo,
				RetryInterval: 200 * time.Millisecond, HeartbeatInterval: time.Second, RenewInterval: time.Second,
				ResetFile: filepath.Join(dir, "reset")}
			resets[id] = cfg.ResetFile
			log := quiet
			if dc.tier == fsm.TierStaging && os.Getenv("KROLL_TRAIN_DEBUG") != "" {
				log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", id)
			}
			wg.Go(func() {
				if err := h.Agent(agentCtx, cfg, filepath.Join(dir, "state"), log); err != nil {
					t.Errorf("%s: %v", id, err)
				}
			})
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		bg := context.Background()
		evs, _ := admin.Events(bg, 0, 1000)
		for _, e := range evs[max(0, len(evs)-80):] {
			t.Logf("event %s %s %s %s", e.Time.Format(time.RFC3339), e.Type, e.Host, e.Message)
		}
		hs, _ := admin.Hosts(bg, "")
		for _, h := range hs {
			t.Logf("host %s %s %s unhealthy=%v", h.ID, h.Phase, h.Kernel, h.Unhealthy)
		}
		rs, _ := admin.Releases(bg)
		for _, r := range rs {
			t.Logf("release %s %s source=%s", r.ID, r.State, r.Source)
		}
		ros, _ := admin.Rollouts(bg)
		for _, r := range ros {
			t.Logf("rollout %s release=%s state=%s", r.ID, r.Release, r.State)
		}
		if tr, err := admin.Train(bg, "6.12"); err == nil {
			t.Logf("train: staging blocked %q, edge release %q", tr.StagingBlocked, tr.EdgeRelease)
			for _, e := range tr.Events {
				t.Logf("train event %s %s", e.Time.Format(time.RFC3339), e.Message)
			}
		}
	})
	waitUntil(t, ctx, "all hosts registered", func() bool {
		hs, err := admin.Hosts(ctx, "")
		return err == nil && len(hs) == i
	})
	stateNow := func() time.Time {
		var now time.Time
		nodes[0].Store.FSM().View(func(st *fsm.State) { now = st.Now })
		return now
	}
	// The departure: the first whole minute 10 hours (60 s) from now:
	// room for both builds to stage on a loaded machine.
	due := stateNow().Add(10 * time.Hour).Truncate(time.Minute).Add(time.Minute)
	departure := fmt.Sprintf("%s %s UTC", due.Weekday().String()[:3], due.Format("15:04"))
	tr, err := admin.SetTrain(ctx, "6.12", wire.TrainSetRequest{Staging: []string{"stg1"}, StagingSoakSeconds: 3600, ControlSoakSeconds: 3600,
		EdgeCycleSeconds: 7 * 24 * 3600, Departure: departure})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.NextDeparture.Equal(due) {
		t.Fatalf("next departure %s, want %s", tr.NextDeparture, due)
	}

	// publish is the build system's weekly job: the .deb into the pool,
	// the Packages index, the signed manifest next to the .deb.
	publish := func(id, kernel, upstream string) {
		t.Helper()
		deb, err := repo.BuildDeb(ctx, "linux-image-"+kernel, upstream+"-1")
		if err != nil {
			t.Fatal(err)
		}
		m := release.Manifest{ID: id, Line: "6.12", KernelVersion: kernel, UpstreamVersion: upstream,
			Kind: release.KindDeb, Artifacts: []release.Artifact{deb.Artifact(srv.URL)}, Created: time.Now().UTC().Truncate(time.Second)}
		if err := repo.Publish(deb, m, priv); err != nil {
			t.Fatal(err)
		}
		if err := repo.Index(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	releaseState := func(id string) string {
		rs, err := admin.Releases(ctx)
		if err != nil {
			return ""
		}
		for _, r := range rs {
			if r.ID == id {
				return r.State
			}
		}
		return ""
	}
	onKernel := func(dc, kernel string) bool {
		for _, h := range hosts[dc] {
			if k, _ := h.Kernel(); k != kernel {
				return false
			}
		}
		return true
	}

	// Week 1: the build fails staging.
	publish("6.12.81-w1", bad, "6.12.81")
	waitUntil(t, ctx, "the first build rejected", func() bool { return releaseState("6.12.81-w1") == fsm.ReleaseRejected })
	// No staging host gets a slot for it any more, whatever its agent
	// still believes (through any node of the quorum).
	for i, h := range hosts["stg1"] {
		_, err := cls[i%3].AcquireSlot(ctx, wire.SlotRequest{HostID: h.ID(), Datacenter: "stg1", Release: "6.12.81-w1"})
		if kind := client.ErrorKind(err); kind != wire.KindReleaseWithdrawn {
			t.Fatalf("slot for the rejected build on %s: %v (kind %q), want %s", h.ID(), err, kind, wire.KindReleaseWithdrawn)
		}
	}
	// The staging host that waited for the slot when the build failed
	// never boots it (checked at the end): its slot for the rejected
	// build is refused.
	// Week 2: the next build arrives while the staging hosts that failed
	// wait for an operator: the train waits too.
	publish("6.12.82-w2", good, "6.12.82")
	waitUntil(t, ctx, "the feed found the second build", func() bool { return releaseState("6.12.82-w2") != "" })
	waitUntil(t, ctx, "the train waiting for staging", func() bool {
		tr, err := admin.Train(ctx, "6.12")
		return err == nil && strings.Contains(tr.StagingBlocked, "an operator must reset it")
	})
	if s := releaseState("6.12.82-w2"); s != fsm.ReleaseCandidate {
		t.Fatalf("the second build is %s while staging is not ready", s)
	}
	// The operator resets each staging host the bad build failed, as it
	// ends up failed (one may still be booting the build it had staged).
	waitUntil(t, ctx, "the staging hosts reset", func() bool {
		hs, err := admin.Hosts(ctx, "stg1")
		if err != nil {
			return false
		}
		idle := 0
		for _, h := range hs {
			switch h.Phase {
			case wire.PhaseFailed:
				if err := os.WriteFile(resets[h.ID], nil, 0o644); err != nil {
					t.Fatal(err)
				}
			case wire.PhaseIdle:
				if !h.Unhealthy {
					idle++
				}
			}
		}
		return idle == len(hs)
	})
	waitUntil(t, ctx, "the second build validated", func() bool {
		s := releaseState("6.12.82-w2")
		return s == fsm.ReleaseValidated || s == fsm.ReleaseRolling
	})
	waitUntil(t, ctx, "the control tier on the second build", func() bool { return onKernel("ctl1", good) })
	if now := stateNow(); !now.Before(due) {
		t.Fatalf("the control tier took the build at %s, not before the departure %s", now, due)
	}
	for _, dc := range []string{"fra1", "ams1"} {
		if onKernel(dc, good) {
			t.Fatalf("%s took the build before the departure", dc)
		}
	}
	waitUntil(t, ctx, "the edge train departed", func() bool {
		tr, err := admin.Train(ctx, "6.12")
		return err == nil && tr.EdgeRelease == "6.12.82-w2"
	})
	tr, err = admin.Train(ctx, "6.12")
	if err != nil {
		t.Fatal(err)
	}
	edge, err := admin.Rollout(ctx, tr.EdgeRollout)
	if err != nil {
		t.Fatal(err)
	}
	if edge.Created.Before(due) || edge.Created.After(due.Add(time.Hour)) {
		t.Fatalf("the edge train departed at %s, due %s", edge.Created, due)
	}
	if !tr.NextDeparture.Equal(due.Add(7 * 24 * time.Hour)) {
		t.Fatalf("next departure %s", tr.NextDeparture)
	}
	// The canary takes it.
	canary := edge.Waves[0]
	if canary.Name != fsm.WaveCanary || len(canary.Progress) != 1 {
		t.Fatalf("edge waves %+v", edge.Waves)
	}
	waitUntil(t, ctx, "the canary on the second build", func() bool { return onKernel(canary.Progress[0].Datacenter, good) })

	// The rejected build never left staging.
	ros, err := admin.Rollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ros {
		if r.Release == "6.12.81-w1" && !strings.HasPrefix(r.ID, "train-6.12-staging-") {
			t.Errorf("the rejected build has rollout %s", r.ID)
		}
	}
	for _, dc := range []string{"ctl1", "fra1", "ams1"} {
		for _, h := range hosts[dc] {
			if h.Ran(bad) {
				t.Errorf("a %s host ran the rejected build", dc)
			}
		}
	}
	ranBad := 0
	for _, h := range hosts["stg1"] {
		if h.Ran(bad) {
			ranBad++
		}
	}
	if ranBad != 1 {
		t.Errorf("%d staging hosts ran the rejected build, want 1: the one that failed it (slot limit 1)", ranBad)
	}
	// Nobody ran `release add`: both releases came from the feed.
	rels, err := admin.Releases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 2 {
		t.Errorf("releases %+v: want the two weekly builds", rels)
	}
	for _, r := range rels {
		if r.Source != "feed:weekly" {
			t.Errorf("release %s has source %q, want feed:weekly", r.ID, r.Source)
		}
	}
	for _, e := range tr.Events {
		t.Logf("%s %s", e.Time.Format(time.RFC3339), e.Message)
	}
}
