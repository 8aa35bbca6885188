package cluster_test

import (
	"maps"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// checkerTimeout bounds porcupine's search; a history it cannot decide in
// time fails the test too.
const checkerTimeout = 60 * time.Second

// pauseFor is how long a paused leader stays stopped: long enough for the
// others to elect a new leader, shorter than the clients' timeout.
const pauseFor = 4 * time.Second

// TestLinearizable records every acquire and release of agents spread
// over datacenters with slot limits from 1 to 6 while the cluster suffers leader faults,
// and checks the history with porcupine against a per-datacenter counting
// semaphore with owned, recursive holds and fencing tokens (semStep).
// Operations with an unknown outcome (timeouts, broken connections, 5xx)
// may have taken effect, or not (see toPorcupine). A non-linearizable
// history fails the test, with porcupine's visualization written to a file
// named in the log. The faults:
//
//   - sigkill: 12 agents; the leader is SIGKILLed and restarted, twice;
//     clients talk to random nodes (followers forward to the leader);
//   - sigstop: 24 agents; the leader is stopped (SIGSTOP, think of a long
//     GC pause or a stalled VM) for pauseFor while a new leader is
//     elected, then continued, four times; clients talk to the leader of
//     the moment, so that commands are in flight on the leader when it
//     stalls.
func TestLinearizable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		limits     map[string]int
		agents     int
		faults     int
		leaderOnly bool
		fault      func(t *testing.T, c *cluster, w *workload)
	}{
		{"sigkill", map[string]int{"ams": 1, "fra": 2, "lhr": 3}, 12, 2, false,
			func(t *testing.T, c *cluster, w *workload) { failover(t, c, w) }},
		{"sigstop", map[string]int{"ams": 1, "fra": 2, "lhr": 3, "sin": 6}, 24, 4, true, pauseLeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3)
			limits := tc.limits
			hosts, where := hostsAndDCs(tc.agents, slices.Sorted(maps.Keys(limits)))
			c.setupDatacenters(limits, where)

			cfg := workloadConfig{Hosts: hosts, DCs: where, HoldMax: 5 * time.Millisecond, Seed: 2}
			var target atomic.Int64 // node the clients talk to when leaderOnly
			if tc.leaderOnly {
				target.Store(int64(c.waitLeader(10 * time.Second)))
				cfg.Node = func() int { return int(target.Load()) }
			}
			w := startWorkload(c, cfg)
			time.Sleep(2 * time.Second)
			for range tc.faults {
				target.Store(int64(c.waitLeader(10 * time.Second)))
				time.Sleep(500 * time.Millisecond)
				tc.fault(t, c, w)
				time.Sleep(1500 * time.Millisecond)
			}
			h := w.stop()
			t.Log(summarize(h, w.notSent))
			if n := countOutcome(h, outGranted); n < 200 {
				t.Fatalf("only %d grants acknowledged: the workload did not run", n)
			}
			names := make([]string, len(c.nodes))
			for i, nd := range c.nodes {
				names[i] = nd.id
			}
			start := time.Now()
			res, path, err := checkLinearizable(h, limits, names, checkerTimeout)
			took := time.Since(start).Round(time.Millisecond)
			switch {
			case err != nil:
				t.Fatalf("checker: %s after %s; writing the visualization: %v", res, took, err)
			case res == porcupine.Illegal:
				for _, s := range suspects(h) {
					t.Logf("suspect: %s", s)
				}
				t.Fatalf("the history is NOT linearizable (checked in %s); porcupine's visualization: %s", took, path)
			case res != porcupine.Ok:
				t.Fatalf("the checker could not decide within %s; porcupine's partial visualization: %s", checkerTimeout, path)
			}
			t.Logf("%d operations are linearizable (checked in %s)", len(h), took)

			// The same history with one denial turned into a grant beyond
			// the limit must be rejected: the checker can fail on real data.
			bad := append([]record(nil), h...)
			for i, r := range bad {
				if r.Op.DC == "ams" && r.Result.Outcome == outFull {
					bad[i].Result = slotResult{Outcome: outGranted, Token: 1 << 40}
					break
				}
			}
			res, path, err = checkLinearizable(bad, limits, names, checkerTimeout)
			if path != "" {
				defer os.Remove(path)
			}
			if err != nil || res != porcupine.Illegal {
				t.Fatalf("a history with a grant beyond the limit was judged %s (%v), want %s", res, err, porcupine.Illegal)
			}
		})
	}
}

// pauseLeader stops the leader with SIGSTOP for pauseFor, continues it, and
// waits until a leader serves a client.
func pauseLeader(t *testing.T, c *cluster, w *workload) {
	t.Helper()
	l := c.waitLeader(10 * time.Second)
	p := c.nodes[l].cmd.Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pauseFor)
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := w.now()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if s, ok := w.firstServedAfter(resumed); ok {
			t.Logf("paused leader %s for %s; clients served %s after it continued (leader now %s)",
				c.nodes[l].id, pauseFor, time.Duration(s-resumed).Round(time.Millisecond), c.nodes[c.waitLeader(10*time.Second)].id)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no operation served within 15s of continuing %s", c.nodes[l].id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
