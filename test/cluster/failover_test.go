package cluster_test

import (
	"testing"
	"time"
)

// maxFailover bounds the time from SIGKILLing the leader until a new leader
// answers a client (Raft heartbeat and election timeouts are 1 s each).
const maxFailover = 8 * time.Second

// report fails t with each problem a check found, at most 20 per check.
func report(t *testing.T, check string, probs []string) {
	t.Helper()
	for i, p := range probs {
		if i == 20 {
			t.Errorf("%s: … and %d more", check, len(probs)-20)
			break
		}
		t.Errorf("%s: %s", check, p)
	}
}

// TestFailoverNoLostGrant runs 16 agents looping acquire → hold → release
// over 4 datacenters (limit 2 each) against random nodes while the leader
// is SIGKILLed and restarted twice, then restarts every node from disk. It
// checks that a new leader serves within maxFailover, that no acknowledged
// grant is lost, that no datacenter ever had more acknowledged holders
// than its limit, that fencing tokens strictly increase per datacenter in
// commit order (replayed from the event history) and in real time, and
// that slots and hosts are intact after the full restart.
func TestFailoverNoLostGrant(t *testing.T) {
	c := newCluster(t, 3)
	dcs := []string{"ams", "fra", "lhr", "sin"}
	limits := map[string]int{}
	for _, dc := range dcs {
		limits[dc] = 2
	}
	hosts, where := hostsAndDCs(16, dcs)
	c.setupDatacenters(limits, where)

	events := collectEvents(c)
	w := startWorkload(c, workloadConfig{Hosts: hosts, DCs: where, HoldMax: 10 * time.Millisecond, Seed: 1})
	time.Sleep(2 * time.Second)
	for range 2 {
		if took := failover(t, c, w); took > maxFailover {
			t.Errorf("failover took %s, want at most %s", took, maxFailover)
		}
		time.Sleep(2 * time.Second)
	}
	h := w.stop()
	end := w.now()
	t.Log(summarize(h, w.notSent))
	if n := countOutcome(h, outGranted); n < 200 {
		t.Errorf("only %d grants acknowledged: the workload did not run", n)
	}
	if n := countOutcome(h, outFull); n == 0 {
		t.Errorf("no acquire was denied: the slot limits were never reached")
	}

	report(t, "outcomes", checkOutcomes(h))
	report(t, "tokens", checkTokens(h))
	report(t, "holders", checkHolders(h, limits, end))
	before := c.waitConverged(20*time.Second, nil)
	report(t, "final slots", checkFinalSlots(h, before.Slots))
	evs, gaps := events.stop(c.waitLeader(10 * time.Second))
	t.Logf("%d events followed, %d gaps; %d slots held at the end", len(evs), gaps, len(before.Slots))
	report(t, "events", checkEvents(evs, gaps, h, limits))

	// Every node down at once (SIGKILL), then back from disk.
	for i := range c.nodes {
		c.kill(i)
	}
	start := time.Now()
	for i := range c.nodes {
		c.start(i)
	}
	for i := range c.nodes {
		c.waitReady(i, 20*time.Second)
	}
	c.waitConverged(20*time.Second, &before)
	t.Logf("all nodes restarted from disk with slots and hosts intact after %s", time.Since(start).Round(time.Millisecond))
}

// countOutcome counts the operations of h that ended in o.
func countOutcome(h []record, o outcome) int {
	n := 0
	for _, r := range h {
		if r.Result.Outcome == o {
			n++
		}
	}
	return n
}
