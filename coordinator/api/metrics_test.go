package api

import (
	"crypto/ed25519"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestMetricsFleetStatsCached: concurrent and looping scrapes of the
// unauthenticated /metrics count the fleet once per fleetStatsTTL.
func TestMetricsFleetStatsCached(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra1", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	e.heartbeat("h1", "fra1")
	const scrapes = 16
	var wg sync.WaitGroup
	bodies := make([]string, scrapes)
	for i := range scrapes {
		wg.Go(func() {
			resp, err := e.srv.Client().Get(e.srv.URL + "/metrics")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Error(err)
			}
			bodies[i] = string(b)
		})
	}
	wg.Wait()
	for i, b := range bodies {
		if !strings.Contains(b, `kroll_hosts{datacenter="fra1"} 1`) {
			t.Fatalf("scrape %d lacks the fleet gauges:\n%s", i, b)
		}
	}
	for range 5 {
		e.do(http.MethodGet, "/metrics", "", nil)
	}
	if n := e.api.cfg.Metrics.fleet.computations(); n != 1 {
		t.Fatalf("%d scrapes counted the fleet %d times; want once", scrapes+5, n)
	}
}

// TestFleetCacheTTL: the cached count is served while younger than the
// ttl, counted afresh once it is as old, and after the clock went back.
func TestFleetCacheTTL(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		ttl   time.Duration
		after time.Duration
		want  int // counts taken by the two gets
	}{
		{"fresh", 10 * time.Second, 9 * time.Second, 1},
		{"stale", 10 * time.Second, 10 * time.Second, 2},
		{"clock-back", 10 * time.Second, -time.Second, 2},
		{"no-cache", 0, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fleetCache{ttl: tc.ttl}
			n := 0
			count := func(time.Time) fsm.FleetStats { n++; return fsm.FleetStats{} }
			c.get(t0, count)
			c.get(t0.Add(tc.after), count)
			if n != tc.want || c.computations() != tc.want {
				t.Fatalf("counted %d times (%d recorded), want %d", n, c.computations(), tc.want)
			}
		})
	}
}

// TestMetricsRolloutRace: scrapes while the rollout changes state read
// no live state after the state's lock is released (run with -race).
func TestMetricsRolloutRace(t *testing.T) {
	e := newEnv(t)
	e.api.cfg.Metrics.fleet.setTTL(0)
	pub, req := signedRelease(t, 7, "6.1.192-kroll.1")
	e.api.cfg.ReleaseKeys = []ed25519.PublicKey{pub}
	mustOK(t, e.do("POST", wire.PathReleases, tokOperate, req))
	e.setDC("ams1", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	mustOK(t, e.do("POST", wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "ams1a", Datacenter: "ams1", KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseIdle}))
	r := decodeOK[wire.Rollout](t, e.do("POST", wire.PathRollouts, tokOperate, wire.RolloutStartRequest{
		Release: "6.1.192-kroll.1", Expedite: true, Reason: "race", Canary: []string{"ams1"}, Force: true}))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if r := e.do(http.MethodGet, "/metrics", "", nil); r.status != http.StatusOK {
				t.Errorf("/metrics: %d", r.status)
				return
			}
		}
	})
	for i := range 20 {
		action := "/pause"
		if i%2 == 1 {
			action = "/resume"
		}
		mustOK(t, e.do("POST", wire.PathRollout+r.ID+action, tokOperate, wire.RolloutActionRequest{Reason: "race"}))
	}
	close(done)
	wg.Wait()
}
