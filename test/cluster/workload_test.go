package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// slotOp is the input of one recorded client operation: an agent acquire
// (Token 0) or release of Host's slot in DC.
type slotOp struct {
	Acquire bool
	DC      string
	Host    string
	// Token is the fencing token a release gives back.
	Token uint64
}

// String describes o, e.g. "release(h03, #17)".
func (o slotOp) String() string {
	if o.Acquire {
		return fmt.Sprintf("acquire(%s)", o.Host)
	}
	return fmt.Sprintf("release(%s, #%d)", o.Host, o.Token)
}

// outcome is how an operation ended, as far as its client can tell.
type outcome int

// The outcomes. outUnknown covers timeouts, broken connections and 5xx
// answers (outcome_unknown, internal): the command may or may not have
// been applied, now or later. A 503 no_leader is not an outcome: the
// command was never proposed (see classify).
const (
	outUnknown   outcome = iota
	outGranted           // acquire: 200 with a slot (new or held)
	outFull              // acquire: 409 failed_lock_semaphore_full
	outReleased          // release: 200
	outNotHolder         // release: 409 not_holder
	outStale             // release: 409 stale_token
	outOther             // any other answer: never expected
)

// String names o after the API's answer.
func (o outcome) String() string {
	switch o {
	case outGranted:
		return "granted"
	case outFull:
		return "semaphore_full"
	case outReleased:
		return "released"
	case outNotHolder:
		return "not_holder"
	case outStale:
		return "stale_token"
	case outOther:
		return "unexpected"
	}
	return "unknown"
}

// definitive reports whether the client knows the operation's effect.
func (o outcome) definitive() bool { return o != outUnknown }

// slotResult is the output of one recorded operation.
type slotResult struct {
	Outcome outcome
	// Token is the granted slot's fencing token.
	Token uint64
}

// String describes r, e.g. "granted #17".
func (r slotResult) String() string {
	if r.Outcome == outGranted {
		return fmt.Sprintf("granted #%d", r.Token)
	}
	return r.Outcome.String()
}

// record is one completed client operation with its call and return times
// (nanoseconds since the workload started, monotonic).
type record struct {
	Client int
	Node   int
	Op     slotOp
	Result slotResult
	Call   int64
	Return int64
	// TimedOut marks an unknown outcome where the client gave up waiting:
	// the server may still be working on the request.
	TimedOut bool
	// Detail is the error of unknown and unexpected outcomes.
	Detail string
}

// classify turns an API call's error into an outcome; sent is false when
// the command provably never reached Raft: the request failed to connect,
// or the node answered no_leader (no leader took the command; the API
// says outcome_unknown when one may have).
func classify(acquire bool, err error) (out outcome, sent bool) {
	switch {
	case err == nil && acquire:
		return outGranted, true
	case err == nil:
		return outReleased, true
	case isDialError(err):
		return outUnknown, false
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return outUnknown, true // timeout, reset connection, ...
	}
	switch {
	case ae.Kind == wire.KindNoLeader:
		return outUnknown, false
	case acquire && ae.Kind == wire.KindSemaphoreFull:
		return outFull, true
	case !acquire && ae.Kind == wire.KindNotHolder:
		return outNotHolder, true
	case !acquire && ae.Kind == wire.KindStaleToken:
		return outStale, true
	case ae.Status >= 500:
		return outUnknown, true
	}
	return outOther, true
}

// workloadConfig shapes a workload: one agent per host, agent i acting for
// host Hosts[i] in datacenter DCs[Hosts[i]].
type workloadConfig struct {
	Hosts []string
	DCs   map[string]string
	// HoldMax bounds how long a client keeps a granted slot.
	HoldMax time.Duration
	// Seed seeds the clients' choices (node, hold time).
	Seed uint64
	// Node, when set, picks the node of each request instead of chance.
	Node func() int
}

// hostsAndDCs returns n host ids spread round-robin over dcs.
func hostsAndDCs(n int, dcs []string) ([]string, map[string]string) {
	hosts := make([]string, n)
	where := map[string]string{}
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%02d", i)
		where[hosts[i]] = dcs[i%len(dcs)]
	}
	return hosts, where
}

// workload runs agents that loop acquire → short hold → release against
// random nodes of a cluster and records every operation.
type workload struct {
	start   time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	records []record
	notSent int
}

// startWorkload starts the clients; stop ends them.
func startWorkload(c *cluster, cfg workloadConfig) *workload {
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{start: time.Now(), cancel: cancel}
	clients := make([]*client.Client, len(c.nodes))
	for i := range clients {
		clients[i] = c.agent(i)
	}
	for i := range cfg.Hosts {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.agent(ctx, clients, cfg, i, rng)
		}()
	}
	return w
}

// stop ends the clients (each finishes its current operation) and returns
// the history.
func (w *workload) stop() []record {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]record(nil), w.records...)
}

// now is the workload's clock.
func (w *workload) now() int64 { return int64(time.Since(w.start)) }

// agent is one client's loop. It knows whether it holds a slot; after an
// unknown acquire it acquires again (locks are recursive, so that tells
// it), after an unknown release it releases again.
func (w *workload) agent(ctx context.Context, clients []*client.Client, cfg workloadConfig, id int, rng *rand.Rand) {
	host := cfg.Hosts[id]
	dc := cfg.DCs[host]
	var held uint64 // fencing token of the slot the client knows it holds
	for ctx.Err() == nil {
		nodeIdx := rng.IntN(len(clients))
		if cfg.Node != nil {
			nodeIdx = cfg.Node()
		}
		cl := clients[nodeIdx]
		op := slotOp{Acquire: held == 0, DC: dc, Host: host, Token: held}
		call := w.now()
		var (
			slot *wire.Slot
			err  error
		)
		// Not ctx: stopping the workload must not cut operations short.
		opCtx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		if op.Acquire {
			slot, err = cl.AcquireSlot(opCtx, wire.SlotRequest{HostID: host, Datacenter: dc})
		} else {
			err = cl.AgentRelease(opCtx, wire.SlotRequest{HostID: host, Datacenter: dc, Token: held})
		}
		cancel()
		ret := w.now()
		out, sent := classify(op.Acquire, err)
		if !sent {
			w.mu.Lock()
			w.notSent++
			w.mu.Unlock()
			sleep(ctx, 50*time.Millisecond)
			continue
		}
		r := record{Client: id, Node: nodeIdx, Op: op, Result: slotResult{Outcome: out}, Call: call, Return: ret}
		if err != nil && out != outFull && out != outNotHolder {
			r.Detail = err.Error()
		}
		if out == outGranted {
			r.Result.Token = slot.Token
		}
		if out == outUnknown {
			r.TimedOut = isTimeout(err)
		}
		w.mu.Lock()
		w.records = append(w.records, r)
		w.mu.Unlock()
		switch out {
		case outGranted:
			held = slot.Token
			sleep(ctx, time.Duration(rng.Int64N(int64(cfg.HoldMax)+1)))
		case outFull:
			sleep(ctx, time.Duration(1+rng.IntN(5))*time.Millisecond)
		case outReleased, outNotHolder, outStale:
			held = 0
		case outUnknown:
			// The cluster is failing over: back off.
			sleep(ctx, time.Duration(150+rng.IntN(150))*time.Millisecond)
		case outOther:
			held = 0
			sleep(ctx, 100*time.Millisecond)
		}
	}
}

// isTimeout reports whether err is the client giving up on a request.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// firstServedAfter returns the return time of the first operation called
// at or after t whose outcome is definitive: only a leader gives one.
func (w *workload) firstServedAfter(t int64) (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	best, ok := int64(0), false
	for _, r := range w.records {
		if r.Call >= t && r.Result.Outcome.definitive() && (!ok || r.Return < best) {
			best, ok = r.Return, true
		}
	}
	return best, ok
}

// failover SIGKILLs the current leader while the workload runs, waits
// until a new leader serves a client (a definitive answer to an operation
// called after the kill), restarts the old leader and waits until it is
// ready. It returns the time from the kill to the first served operation.
func failover(t *testing.T, c *cluster, w *workload) time.Duration {
	t.Helper()
	old := c.waitLeader(10 * time.Second)
	c.kill(old)
	killedAt := w.now() // the process is gone: only a new leader answers now
	deadline := time.Now().Add(15 * time.Second)
	var served int64
	for {
		if s, ok := w.firstServedAfter(killedAt); ok {
			served = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no operation served within 15s of killing leader %s", c.nodes[old].id)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Duration(served - killedAt)
	t.Logf("killed leader %s; new leader %s served a client after %s", c.nodes[old].id, c.nodes[c.waitLeader(10*time.Second)].id, took.Round(time.Millisecond))
	c.start(old)
	c.waitReady(old, 20*time.Second)
	return took
}

// byClient groups a history by client, each in call order (a client's
// operations are sequential).
func byClient(h []record) map[int][]record {
	out := map[int][]record{}
	for _, r := range h {
		out[r.Client] = append(out[r.Client], r)
	}
	for _, rs := range out {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Call < rs[j].Call })
	}
	return out
}

// summarize counts outcomes, for the test log.
func summarize(h []record, notSent int) string {
	counts := map[outcome]int{}
	for _, r := range h {
		counts[r.Result.Outcome]++
	}
	return fmt.Sprintf("%d operations: %d granted, %d semaphore_full, %d released, %d not_holder, %d stale_token, %d unknown, %d unexpected; %d not sent (connection refused) or not proposed (no_leader)",
		len(h), counts[outGranted], counts[outFull], counts[outReleased], counts[outNotHolder], counts[outStale], counts[outUnknown], counts[outOther], notSent)
}
