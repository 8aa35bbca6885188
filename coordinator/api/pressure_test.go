package api

import (
	"context"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func TestQuantile(t *testing.T) {
	buckets := []float64{math.Inf(-1), 0.001, 0.01, 0.1, math.Inf(1)}
	tests := []struct {
		name   string
		counts []uint64
		q      float64
		want   time.Duration
	}{
		{"all fast", []uint64{0, 100, 0, 0}, 0.99, 10 * time.Millisecond},
		{"one percent slow is the 99th", []uint64{0, 99, 0, 1}, 0.99, 10 * time.Millisecond},
		{"two percent slow", []uint64{0, 98, 0, 2}, 0.99, time.Duration(math.Inf(1))},
		{"median", []uint64{0, 50, 50, 0}, 0.5, 10 * time.Millisecond},
		{"slow", []uint64{0, 0, 10, 90}, 0.99, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var total uint64
			for _, c := range tc.counts {
				total += c
			}
			got := quantile(tc.counts, buckets, total, tc.q)
			want := tc.want
			if tc.name == "two percent slow" {
				want = 100 * time.Millisecond // the last bucket reads as its finite bound
			}
			if got != want {
				t.Fatalf("quantile %v: %s, want %s", tc.q, got, want)
			}
		})
	}
}

func TestPressureUpdate(t *testing.T) {
	p := newPressure(10*time.Millisecond, 100)
	share := func() float64 { return math.Round(math.Float64frombits(p.shed.Load())*100) / 100 }
	steps := []struct {
		p99  time.Duration
		rate float64
		want float64
	}{
		{2 * time.Millisecond, 1000, 0},
		{20 * time.Millisecond, 1000, 0.1},
		{20 * time.Millisecond, 1000, 0.2},
		{8 * time.Millisecond, 1000, 0.2}, // between half the target and the target: held
		{4 * time.Millisecond, 1000, 0.18},
		{time.Second, 1000, 0.28},
		{time.Second, 50, 0.26}, // a trickle: the share falls, slowly
	}
	for i, st := range steps {
		p.update(st.p99, st.rate)
		if got := share(); got != st.want {
			t.Fatalf("step %d (p99 %s, %v/s): share %v, want %v", i, st.p99, st.rate, got, st.want)
		}
	}
	for range 50 {
		p.update(time.Second, 50)
	}
	if got := share(); got != 0 {
		t.Fatalf("share after a long trickle %v, want 0", got)
	}
	for range 20 {
		p.update(time.Second, 1000)
	}
	if got := share(); got != pressureMaxShed {
		t.Fatalf("share after a long overload %v, want the cap %v", got, pressureMaxShed)
	}
	if newPressure(-1, 0) != nil || newPressure(-1, 0).shedShare(time.Now()) != 0 {
		t.Fatal("a negative target must disable pressure shedding")
	}
}

// TestPressureShedsHeartbeatsNotSlots saturates the test process's CPUs
// with busy goroutines: the scheduling latency rises past the target, and
// heartbeats are shed on arrival (429, Retry-After) while slot calls are
// still served; a shed heartbeat of a registered host still counts as
// heard (wire.HostIDHeader), one of an unknown or silent host does not.
func TestPressureShedsHeartbeatsNotSlots(t *testing.T) {
	e := newEnv(t)
	rec := &heardRecorder{Store: e.store}
	e.api = New(Config{Store: rec, Auth: testAuth(t), Logger: discardLogger, PeerToken: tokPeer,
		Admission: Admission{PressureTarget: time.Millisecond, PressureMinRate: 1}})
	e.srv.Config.Handler = e.api
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	e.heartbeat("h1", "fra")
	e.heartbeat("h2", "fra")

	ctx, cancel := context.WithCancel(context.Background())
	var spin sync.WaitGroup
	defer func() { cancel(); spin.Wait() }()
	for range 16 {
		spin.Go(func() {
			for x := 0; ctx.Err() == nil; x++ {
				_ = x * x
			}
		})
	}

	// beat sends hb with the headers kroll-agent sends (the digest of hb
	// unless given).
	beat := func(hb wire.Heartbeat, digest string) response {
		if digest == "" {
			digest = wire.HeartbeatDigest(hb)
		}
		return e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, hb, wire.HostIDHeader, hb.HostID, wire.HeartbeatDigestHeader, digest)
	}
	var shed response
	waitFor(t, 30*time.Second, "a heartbeat shed under CPU pressure", func() bool {
		r := beat(wire.Heartbeat{HostID: "h1", Datacenter: "fra"}, "")
		if r.status == http.StatusTooManyRequests {
			shed = r
			return true
		}
		mustOK(t, r)
		return false
	})
	checkError(t, shed, http.StatusTooManyRequests, wire.KindOverloaded)
	if !strings.Contains(string(shed.body), "CPUs are saturated") || shed.header.Get("Retry-After") == "" {
		t.Fatalf("shed answer: %s, Retry-After %q", shed.body, shed.header.Get("Retry-After"))
	}
	// Slot calls are not shed by pressure.
	for range 5 {
		sl := decodeOK[wire.Slot](t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h2", Datacenter: "fra"}))
		mustOK(t, e.do(http.MethodPost, wire.PathSlotRelease, tokAgent, wire.SlotRequest{HostID: "h2", Datacenter: "fra", Token: sl.Token}))
	}
	// Shed heartbeats of a registered host are heard; of an unknown one,
	// or without the header, not.
	rec.take()
	waitFor(t, 30*time.Second, "a shed heartbeat of h2", func() bool {
		return beat(wire.Heartbeat{HostID: "h2", Datacenter: "fra", Phase: wire.PhaseIdle}, "").status == http.StatusTooManyRequests
	})
	// Heartbeats that change something are never shed by pressure: a
	// new gossip view each time, a digest that does not match (an agent
	// that does not send the right one), and no digest at all.
	changes := 0
	for i := range 30 {
		hb := wire.Heartbeat{HostID: "h1", Datacenter: "fra", View: &wire.DCView{Alive: 2, Dead: i % 2}}
		digest := ""
		switch i % 3 {
		case 1:
			hb.View = nil
			digest = strings.Repeat("0", 32)
		case 2:
			hb.View = nil
			digest = "-"
		}
		r := beat(hb, digest)
		if r.status == http.StatusTooManyRequests && strings.Contains(string(r.body), "CPUs are saturated") {
			t.Fatalf("heartbeat %d (%+v, digest %q) was shed by pressure: %s", i, hb, digest, r.body)
		}
		mustOK(t, r)
		// An unknown host (its datacenter does not exist either): never
		// shed, refused, never heard.
		checkError(t, beat(wire.Heartbeat{HostID: "ghost", Datacenter: "nowhere"}, ""), http.StatusNotFound, wire.KindUnknownDatacenter)
		changes++
	}
	if share := e.api.heartbeats.pressure.shedShare(time.Now()); share == 0 {
		t.Fatalf("the pressure was gone before the changed heartbeats were sent (share 0): the check above tested nothing")
	}
	cancel()
	spin.Wait()
	heard := rec.take()
	if _, ok := heard["h2"]; !ok {
		t.Fatalf("a shed heartbeat of registered h2 was not recorded as heard: %v", heard)
	}
	if _, ok := heard["ghost"]; ok {
		t.Fatalf("a heartbeat of an unregistered host was recorded as heard")
	}
	metrics := string(e.do(http.MethodGet, "/metrics", "", nil).body)
	for _, want := range []string{"kroll_api_pressure_shed_ratio ", "kroll_sched_latency_p99_seconds "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// heardRecorder is a store that also records the hosts the server says it
// heard (the leader drains the store's own records into its table).
type heardRecorder struct {
	*store.Store
	mu    sync.Mutex
	heard map[string]time.Time
}

func (r *heardRecorder) Heard(host string, at time.Time) {
	r.mu.Lock()
	if r.heard == nil {
		r.heard = map[string]time.Time{}
	}
	r.heard[host] = at
	r.mu.Unlock()
	r.Store.Heard(host, at)
}

// take returns the hosts heard since the last take.
func (r *heardRecorder) take() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.heard
	r.heard = nil
	return out
}
