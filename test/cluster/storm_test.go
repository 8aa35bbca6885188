package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// The heartbeat storm: stormAgents agents heartbeat every stormInterval,
// spread evenly over the interval and over the nodes; the leader's
// liveness grace is max(alive_within, 3 intervals) = 24 s.
const (
	stormAgents   = 20000
	stormDCs      = 20
	stormInterval = 8 * time.Second
	stormAlive    = 20 * time.Second
	stormGrace    = 3 * stormInterval
	// stormRetryAfter is the mean Retry-After of a shed heartbeat.
	stormRetryAfter = 4 * time.Second
	// stormWorkers send the heartbeats, each for its share of the agents.
	stormWorkers = 200
)

// stormSlots is the [slots] table of the storm cluster.
// A shed agent is heard again within 1.5 × stormRetryAfter + an interval
// (14 s), inside alive_within.
var stormSlots = fmt.Sprintf(`lease = "10m"
reboot_deadline = "1h"
alive_within = %q
heartbeat_interval = %q

[api]
retry_after = %q`, stormAlive, stormInterval, stormRetryAfter)

// storm is the in-process heartbeat load generator.
type storm struct {
	c     *cluster
	hc    *http.Client
	hosts []string
	dcs   map[string]string
	// node is the node each agent talks to; an agent whose node fails
	// moves on to the next one, as kroll-agent does with its list of
	// coordinator URLs.
	node []atomic.Int32
	// lastOK is when each agent's last heartbeat was answered, or shed
	// once registered (ns since start); maxGap is the longest gap seen
	// between two of those.
	start  time.Time
	lastOK []atomic.Int64
	maxGap atomic.Int64
	ok     atomic.Int64
	failed atomic.Int64
	// shed counts heartbeats of registered agents answered 429;
	// notBefore is when each agent may send again (ns since start).
	shed      atomic.Int64
	notBefore []atomic.Int64
	// registered counts agents with an answered heartbeat.
	registered atomic.Int64
	mu         sync.Mutex
	lat        []time.Duration
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func newStorm(c *cluster, hosts []string, dcs map[string]string) *storm {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 4*stormWorkers, 2*stormWorkers
	s := &storm{c: c, hc: &http.Client{Transport: tr, Timeout: requestTimeout}, hosts: hosts, dcs: dcs,
		node: make([]atomic.Int32, len(hosts)), lastOK: make([]atomic.Int64, len(hosts)), notBefore: make([]atomic.Int64, len(hosts)), start: time.Now()}
	for i := range hosts {
		s.node[i].Store(int32(i % len(c.nodes)))
	}
	return s
}

// beat sends agent i's heartbeat, moving it to the next node on failure
// (at most once around the nodes); it reports whether it was answered.
func (s *storm) beat(i int, body []byte, digest string) bool {
	for range len(s.c.nodes) {
		n := int(s.node[i].Load())
		begin := time.Now()
		req, err := http.NewRequest(http.MethodPost, s.c.nodes[n].url()+wire.PathHeartbeat, bytes.NewReader(body))
		if err != nil {
			panic(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.c.agentToken)
		req.Header.Set(wire.HostIDHeader, s.hosts[i])
		req.Header.Set(wire.HeartbeatDigestHeader, digest)
		resp, err := s.hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			shed := resp.StatusCode == http.StatusTooManyRequests && s.lastOK[i].Load() != 0
			if shed {
				// A registered agent shed by an overloaded node (429) was
				// heard all the same (its heartbeat changes nothing, the
				// digest says so): as kroll-agent does, it sends nothing
				// before the Retry-After, then to the next node.
				s.shed.Add(1)
				secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				s.notBefore[i].Store(int64(time.Since(s.start) + time.Duration(secs)*time.Second))
				s.node[i].Store(int32((n + 1) % len(s.c.nodes)))
			}
			if resp.StatusCode == http.StatusOK || shed {
				now := int64(time.Since(s.start))
				if prev := s.lastOK[i].Swap(now); prev == 0 {
					s.registered.Add(1)
				} else {
					for gap := now - prev; ; {
						m := s.maxGap.Load()
						if gap <= m || s.maxGap.CompareAndSwap(m, gap) {
							break
						}
					}
				}
				if shed {
					return true
				}
				s.ok.Add(1)
				s.mu.Lock()
				s.lat = append(s.lat, time.Since(begin))
				s.mu.Unlock()
				return true
			}
		}
		s.failed.Add(1)
		s.node[i].Store(int32((n + 1) % len(s.c.nodes)))
	}
	return false
}

// body is agent i's heartbeat, unchanged from one beat to the next, and
// its wire.HeartbeatDigest.
func (s *storm) body(i int) ([]byte, string) {
	hb := wire.Heartbeat{HostID: s.hosts[i], Datacenter: s.dcs[s.hosts[i]], KernelLine: "6.12",
		Kernel: "6.12.85", Phase: wire.PhaseIdle, BootID: "boot-1", View: &wire.DCView{Alive: stormAgents / stormDCs}}
	b, err := json.Marshal(hb)
	if err != nil {
		panic(err)
	}
	return b, wire.HeartbeatDigest(hb)
}

// run heartbeats every agent every stormInterval, agent i at offset
// i/len·interval, until stop; the first cycle registers them (one
// proposed heartbeat each) and may take longer than an interval.
func (s *storm) run() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	begin := time.Now()
	for w := range stormWorkers {
		s.wg.Go(func() {
			bodies, digests := map[int][]byte{}, map[int]string{}
			for cycle := 0; ; cycle++ {
				for i := w; i < len(s.hosts); i += stormWorkers {
					at := begin.Add(time.Duration(cycle)*stormInterval + time.Duration(int64(stormInterval)*int64(i)/int64(len(s.hosts))))
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Until(at)):
					}
					if int64(time.Since(s.start)) < s.notBefore[i].Load() {
						continue // Retry-After
					}
					if bodies[i] == nil {
						bodies[i], digests[i] = s.body(i)
					}
					s.beat(i, bodies[i], digests[i])
				}
			}
		})
	}
}

func (s *storm) stop() {
	s.cancel()
	s.wg.Wait()
}

// latency returns the p-th percentile of the answered heartbeats.
func (s *storm) latency(p float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lat) == 0 {
		return 0
	}
	l := slices.Clone(s.lat)
	slices.Sort(l)
	return l[min(len(l)-1, int(p*float64(len(l))))]
}

// TestHeartbeatStorm: 20,000 agents heartbeat (real HTTP, three
// kroll-coordinator processes with Raft on disk) while slot clients loop
// acquire → release; the leader is SIGKILLed and stays down. Checked: no
// host is marked silent or lost through the new leader's liveness grace
// and past it, slot holders never exceed a datacenter's limit, the slot
// history is linearizable (porcupine), a slot operation is served again
// within maxFailover of the kill, and heartbeats without a durable change
// do not reach the Raft log.
func TestHeartbeatStorm(t *testing.T) {
	c := newClusterSlots(t, 3, stormSlots)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stormHosts := make([]string, stormAgents)
	where := map[string]string{}
	zero := 0
	for d := range stormDCs {
		dc := fmt.Sprintf("s%02d", d)
		if _, err := c.admin(0).SetDatacenter(ctx, dc, wire.DatacenterUpdate{SlotLimit: ptr(5), MinHealthyPct: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range stormHosts {
		stormHosts[i] = fmt.Sprintf("a%05d", i)
		where[stormHosts[i]] = fmt.Sprintf("s%02d", i%stormDCs)
	}
	limits := map[string]int{"ams": 1, "fra": 2, "lhr": 3}
	slotHosts, slotDCs := hostsAndDCs(12, slices.Sorted(maps.Keys(limits)))
	c.setupDatacenters(limits, slotDCs)

	s := newStorm(c, stormHosts, where)
	began := time.Now()
	s.run()
	for s.registered.Load() < stormAgents {
		if time.Since(began) > 60*time.Second {
			t.Fatalf("%d of %d agents registered within 60 s", s.registered.Load(), stormAgents)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d agents registered in %s", stormAgents, time.Since(began).Round(time.Millisecond))
	// The event history of the registrations is longer than the bounded
	// history (fsm.MaxEvents): follow it from here.
	events := collectEvents(c)
	for !events.caughtUp() {
		time.Sleep(50 * time.Millisecond)
	}
	events.resetGaps()
	raftBefore := sumMetric(t, c, `kroll_heartbeats_total{path="raft"} `)
	okStart, shedStart := s.ok.Load(), s.shed.Load()
	w := startWorkload(c, workloadConfig{Hosts: slotHosts, DCs: slotDCs, HoldMax: 5 * time.Millisecond, Seed: 3})
	time.Sleep(stormInterval + time.Second)
	l := c.waitLeader(10 * time.Second)
	okBefore, shedBefore := s.ok.Load()-okStart, s.shed.Load()-shedStart
	proposed := sumMetric(t, c, `kroll_heartbeats_total{path="raft"} `) - raftBefore
	t.Logf("%d heartbeats answered and %d shed (429) in one interval; %d of them proposed to Raft", okBefore, shedBefore, proposed)
	if okBefore+shedBefore < stormAgents || proposed != 0 {
		t.Errorf("unchanged heartbeats: %d answered, %d shed, %d proposed; want every agent answered or shed, none proposed", okBefore, shedBefore, proposed)
	}

	c.kill(l)
	killedAt := w.now()
	killed := time.Now()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if served, ok := w.firstServedAfter(killedAt); ok {
			took := time.Duration(served - killedAt)
			t.Logf("killed leader %s under the storm; a slot operation was served %s later", c.nodes[l].id, took.Round(time.Millisecond))
			if took > maxFailover {
				t.Errorf("service back after %s, want at most %s", took, maxFailover)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot operation served within 15 s of killing leader %s", c.nodes[l].id)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The slot history ends 5 s after the failover: a longer one only
	// makes the linearizability check slower (24,000 operations with a
	// hundred of unknown outcome did not decide within a minute on a
	// loaded machine).
	time.Sleep(5 * time.Second)
	h := w.stop()
	end := w.now()
	// Past the new leader's grace (from its term start, after the kill)
	// by two liveness scans.
	time.Sleep(time.Until(killed.Add(stormGrace + 3*time.Second)))
	s.stop()
	nl := c.waitLeader(10 * time.Second)
	evs, gaps := events.stop(nl)

	t.Logf("heartbeats: %d answered, %d shed, %d failed attempts (the killed node's), p50 %s, p99 %s, longest gap between answers %s",
		s.ok.Load(), s.shed.Load(), s.failed.Load(), s.latency(0.5), s.latency(0.99), time.Duration(s.maxGap.Load()).Round(time.Millisecond))
	t.Log(summarize(h, w.notSent))
	if gap := time.Duration(s.maxGap.Load()); gap >= stormAlive {
		t.Errorf("an agent went %s without an answered or shed heartbeat (alive_within %s): the load generator fell behind", gap, stormAlive)
	}
	if gaps > 0 {
		t.Errorf("%d gaps in the event history: silent or lost marks may have been missed", gaps)
	}
	marked := 0
	for _, e := range evs {
		// The slot clients (h..) register once and send no heartbeats:
		// the leader rightly marks them silent. A lost slot is never right.
		if e.Type == "host_lost" || (e.Type == "host_silent" && strings.HasPrefix(e.Host, "a")) {
			marked++
			if marked <= 10 {
				t.Errorf("event %d: %s %s: %s", e.ID, e.Type, e.Host, e.Message)
			}
		}
	}
	if marked > 10 {
		t.Errorf("… %d hosts marked silent or lost in all", marked)
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer hcancel()
	hosts, err := c.admin(nl).Hosts(hctx, "")
	if err != nil {
		t.Fatal(err)
	}
	dead := 0
	for _, hv := range hosts {
		if !hv.Alive && strings.HasPrefix(hv.ID, "a") {
			dead++
		}
	}
	if len(hosts) < stormAgents || dead > 0 {
		t.Errorf("%d hosts listed, %d of them not alive; want %d, all alive", len(hosts), dead, stormAgents+len(slotHosts))
	}

	if n := countOutcome(h, outGranted); n < 50 {
		t.Fatalf("only %d grants acknowledged: the slot workload did not run", n)
	}
	report(t, "outcomes", checkOutcomes(h))
	report(t, "holders", checkHolders(h, limits, end))
	names := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		names[i] = nd.id
	}
	res, path, err := checkLinearizable(h, limits, names, checkerTimeout)
	switch {
	case err != nil:
		t.Fatalf("checker: %s; writing the visualization: %v", res, err)
	case res == porcupine.Illegal:
		t.Fatalf("the slot history is NOT linearizable; porcupine's visualization: %s", path)
	case res != porcupine.Ok:
		t.Fatalf("the checker could not decide within %s: %s", checkerTimeout, path)
	}
	t.Logf("%d slot operations are linearizable", len(h))
}

// sumMetric sums the sample named by prefix (name{labels} ) over the
// running nodes' /metrics.
func sumMetric(t *testing.T, c *cluster, prefix string) int64 {
	t.Helper()
	var sum int64
	for _, nd := range c.nodes {
		if !nd.running() {
			continue
		}
		resp, err := c.hc.Get(nd.url() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				var f float64
				if _, err := fmt.Sscan(v, &f); err != nil {
					t.Fatal(err)
				}
				sum += int64(f)
			}
		}
	}
	return sum
}

func ptr[T any](v T) *T { return &v }
