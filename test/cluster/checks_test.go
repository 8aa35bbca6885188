package cluster_test

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// The checks below judge a recorded history from the clients' side. Each
// returns the problems it found, one line each.

// checkOutcomes reports operations that ended in an answer the workload
// never expects (e.g. 401, 400, conflict) or in stale_token.
func checkOutcomes(h []record) []string {
	var probs []string
	for _, r := range h {
		if r.Result.Outcome == outOther || r.Result.Outcome == outStale {
			probs = append(probs, fmt.Sprintf("client %d %s via node %d: %s %s", r.Client, r.Op, r.Node, r.Result, r.Detail))
		}
	}
	return probs
}

// grantWindow is when an acknowledged grant was certainly committed: after
// From and before To.
type grantWindow struct {
	Host     string
	Token    uint64
	From, To int64
}

// grantWindows returns, per datacenter, one window per acknowledged fencing
// token: from the call of the earliest acquire of the client's run of
// unknown acquires just before the acknowledging one (any of them may have
// been the real grant) to the first acknowledging return. This assumes that
// a command takes effect before its client's next definitive answer, which
// Raft gives as long as no request stalls past the clients' timeout.
func grantWindows(h []record) map[string][]grantWindow {
	seen := map[string]map[uint64]bool{}
	out := map[string][]grantWindow{}
	for _, rs := range byClient(h) {
		runStart := int64(-1)
		for _, r := range rs {
			if !r.Result.Outcome.definitive() {
				if runStart < 0 {
					runStart = r.Call
				}
				continue
			}
			from := r.Call
			if runStart >= 0 {
				from = runStart
			}
			runStart = -1
			if r.Result.Outcome != outGranted || seen[r.Op.DC][r.Result.Token] {
				continue
			}
			if seen[r.Op.DC] == nil {
				seen[r.Op.DC] = map[uint64]bool{}
			}
			seen[r.Op.DC][r.Result.Token] = true
			out[r.Op.DC] = append(out[r.Op.DC], grantWindow{Host: r.Op.Host, Token: r.Result.Token, From: from, To: r.Return})
		}
	}
	return out
}

// checkTokens checks the acknowledged fencing tokens: a token names one
// host's grant only, and when one grant was acknowledged before another
// was asked for, its token is smaller.
func checkTokens(h []record) []string {
	var probs []string
	owner := map[string]map[uint64]string{}
	for _, r := range h {
		if r.Result.Outcome != outGranted {
			continue
		}
		if owner[r.Op.DC] == nil {
			owner[r.Op.DC] = map[uint64]string{}
		}
		if o, ok := owner[r.Op.DC][r.Result.Token]; ok && o != r.Op.Host {
			probs = append(probs, fmt.Sprintf("%s: token %d granted to both %s and %s", r.Op.DC, r.Result.Token, o, r.Op.Host))
		}
		owner[r.Op.DC][r.Result.Token] = r.Op.Host
	}
	for dc, ws := range grantWindows(h) {
		// best[i] is the grant with the highest token among the first i+1
		// acknowledged (by return time).
		sort.Slice(ws, func(i, j int) bool { return ws[i].To < ws[j].To })
		best := make([]int, len(ws))
		for i := range ws {
			best[i] = i
			if i > 0 && ws[best[i-1]].Token > ws[i].Token {
				best[i] = best[i-1]
			}
		}
		for _, b := range ws {
			// Grants acknowledged before b's window opened.
			n := sort.Search(len(ws), func(i int) bool { return ws[i].To >= b.From })
			if n == 0 {
				continue
			}
			if a := ws[best[n-1]]; a.Token >= b.Token {
				probs = append(probs, fmt.Sprintf("%s: token %d (%s) was acknowledged before token %d (%s) was asked for", dc, a.Token, a.Host, b.Token, b.Host))
			}
		}
	}
	return probs
}

// checkHolders checks that no datacenter ever had more holders than its
// limit according to the acknowledged history: a slot is certainly held
// from the return of the acquire that acknowledged it until the client
// next called release, or until end.
func checkHolders(h []record, limits map[string]int, end int64) []string {
	type edge struct {
		at    int64
		delta int
		what  string
	}
	edges := map[string][]edge{}
	for _, rs := range byClient(h) {
		for i, r := range rs {
			if r.Result.Outcome != outGranted {
				continue
			}
			until := end
			for _, next := range rs[i+1:] {
				if !next.Op.Acquire {
					until = next.Call
					break
				}
			}
			// Recursive re-acquires before the release add no interval.
			if i > 0 && rs[i-1].Op.Acquire && rs[i-1].Result.Outcome == outGranted && rs[i-1].Result.Token == r.Result.Token {
				continue
			}
			what := fmt.Sprintf("%s#%d", r.Op.Host, r.Result.Token)
			edges[r.Op.DC] = append(edges[r.Op.DC], edge{r.Return, +1, what}, edge{until, -1, what})
		}
	}
	var probs []string
	for dc, es := range edges {
		// Releases first at equal times: intervals are open at the end.
		sort.Slice(es, func(i, j int) bool { return es[i].at < es[j].at || es[i].at == es[j].at && es[i].delta < es[j].delta })
		held := map[string]bool{}
		for _, e := range es {
			if e.delta > 0 {
				held[e.what] = true
			} else {
				delete(held, e.what)
			}
			if len(held) > limits[dc] {
				probs = append(probs, fmt.Sprintf("%s: %d acknowledged holders at %s, limit %d: %v", dc, len(held), time.Duration(e.at), limits[dc], keys(held)))
				break
			}
		}
	}
	return probs
}

// checkFinalSlots compares the slots the cluster shows after the workload
// with what the history says: a slot whose last definitive operation
// acknowledged it must be there with its token unless a later release had
// an unknown outcome; a slot is only there without such an
// acknowledgement if an acquire of that host had an unknown outcome.
func checkFinalSlots(h []record, slots []wire.Slot) []string {
	shown := map[string]wire.Slot{}
	for _, s := range slots {
		shown[s.HostID] = s
	}
	var probs []string
	seen := map[string]bool{}
	for _, rs := range byClient(h) {
		host := rs[0].Op.Host
		seen[host] = true
		var lastDef *record
		unknownAcquire, unknownReleaseAfter := false, false
		for i := range rs {
			r := &rs[i]
			if !r.Result.Outcome.definitive() {
				if r.Op.Acquire {
					unknownAcquire = true
				} else if lastDef != nil {
					unknownReleaseAfter = true
				}
				continue
			}
			lastDef, unknownReleaseAfter = r, false
		}
		s, has := shown[host]
		switch {
		case lastDef != nil && lastDef.Result.Outcome == outGranted:
			if has && s.Token != lastDef.Result.Token {
				probs = append(probs, fmt.Sprintf("%s: holds token %d, but token %d was acknowledged last", host, s.Token, lastDef.Result.Token))
			}
			if !has && !unknownReleaseAfter {
				probs = append(probs, fmt.Sprintf("%s: acknowledged grant of token %d is lost (no slot shown, never released)", host, lastDef.Result.Token))
			}
		case has && !unknownAcquire:
			probs = append(probs, fmt.Sprintf("%s: holds token %d that no acquire of it can explain", host, s.Token))
		}
	}
	for host, s := range shown {
		if !seen[host] {
			probs = append(probs, fmt.Sprintf("%s: holds token %d in %s but never asked", host, s.Token, s.Datacenter))
		}
	}
	return probs
}

// keys returns the keys of m, sorted.
func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// eventCollector follows GET /api/v1/events on the running nodes so that
// the bounded event history (fsm.MaxEvents) is seen whole, in commit order.
type eventCollector struct {
	polls  []func(context.Context, uint64) ([]wire.Event, error)
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	events []wire.Event
	gaps   int
}

// collectEvents starts following events from the nodes of c, round-robin.
func collectEvents(c *cluster) *eventCollector {
	ctx, cancel := context.WithCancel(context.Background())
	ec := &eventCollector{cancel: cancel, done: make(chan struct{})}
	for i := range c.nodes {
		cl := c.admin(i)
		ec.polls = append(ec.polls, func(ctx context.Context, since uint64) ([]wire.Event, error) { return cl.Events(ctx, since, 1000) })
	}
	go func() {
		defer close(ec.done)
		for n := 0; ctx.Err() == nil; n++ {
			if full := ec.poll(ctx, n%len(ec.polls)); !full {
				sleep(ctx, 100*time.Millisecond)
			}
		}
	}()
	return ec
}

// poll fetches the events after the last one seen from node i; it reports
// whether it got a full page (more may be waiting).
func (ec *eventCollector) poll(ctx context.Context, i int) bool {
	ec.mu.Lock()
	var last uint64
	if n := len(ec.events); n > 0 {
		last = ec.events[n-1].ID
	}
	ec.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	evs, err := ec.polls[i](ctx, last)
	if err != nil || len(evs) == 0 {
		return false
	}
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if evs[0].ID != last+1 {
		ec.gaps++
	}
	ec.events = append(ec.events, evs...)
	return len(evs) == 1000
}

// caughtUp reports whether the collector has read some events.
func (ec *eventCollector) caughtUp() bool {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	return len(ec.events) > 0
}

// resetGaps forgets the gaps seen so far (a history longer than the
// bounded one before the collector started).
func (ec *eventCollector) resetGaps() {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	ec.gaps = 0
}

// stop ends the collector, reads what is left from node i, and returns the
// events and the number of gaps (events that had dropped out of the
// history before they were read).
func (ec *eventCollector) stop(i int) ([]wire.Event, int) {
	ec.cancel()
	<-ec.done
	for ec.poll(context.Background(), i) {
	}
	ec.mu.Lock()
	defer ec.mu.Unlock()
	return append([]wire.Event(nil), ec.events...), ec.gaps
}

// checkEvents replays the slot events in commit order: per datacenter the
// tokens of slot_granted strictly increase, a host is granted only while
// it holds nothing and released only while it holds, holders never exceed
// the limit, and every acknowledged grant appears with its host. Without
// gaps the replay starts from the empty state; with gaps only the token
// order is checked.
func checkEvents(evs []wire.Event, gaps int, h []record, limits map[string]int) []string {
	tokenInMessage := regexp.MustCompile(`\(token (\d+)`)
	var probs []string
	lastToken := map[string]uint64{}
	holders := map[string]map[string]uint64{}
	granted := map[string]map[uint64]string{}
	for _, e := range evs {
		switch e.Type {
		case "slot_granted", "slot_released", "slot_force_released":
		default:
			continue
		}
		m := tokenInMessage.FindStringSubmatch(e.Message)
		if m == nil {
			probs = append(probs, fmt.Sprintf("event %d: no token in %q", e.ID, e.Message))
			continue
		}
		tok, _ := strconv.ParseUint(m[1], 10, 64)
		if holders[e.Datacenter] == nil {
			holders[e.Datacenter], granted[e.Datacenter] = map[string]uint64{}, map[uint64]string{}
		}
		hs := holders[e.Datacenter]
		if e.Type == "slot_granted" {
			if tok <= lastToken[e.Datacenter] {
				probs = append(probs, fmt.Sprintf("event %d: %s granted token %d after token %d", e.ID, e.Datacenter, tok, lastToken[e.Datacenter]))
			}
			lastToken[e.Datacenter] = tok
			granted[e.Datacenter][tok] = e.Host
			if gaps > 0 {
				continue
			}
			if old, ok := hs[e.Host]; ok {
				probs = append(probs, fmt.Sprintf("event %d: %s granted token %d while holding %d", e.ID, e.Host, tok, old))
			}
			hs[e.Host] = tok
			if len(hs) > limits[e.Datacenter] {
				probs = append(probs, fmt.Sprintf("event %d: %s has %d holders, limit %d", e.ID, e.Datacenter, len(hs), limits[e.Datacenter]))
			}
			continue
		}
		if gaps > 0 {
			continue
		}
		if hs[e.Host] != tok {
			probs = append(probs, fmt.Sprintf("event %d: %s released token %d while holding %d", e.ID, e.Host, tok, hs[e.Host]))
		}
		delete(hs, e.Host)
	}
	if gaps == 0 {
		for _, r := range h {
			if r.Result.Outcome == outGranted {
				if host, ok := granted[r.Op.DC][r.Result.Token]; !ok || host != r.Op.Host {
					probs = append(probs, fmt.Sprintf("acknowledged grant %s#%d in %s has no slot_granted event (event says %q)", r.Op.Host, r.Result.Token, r.Op.DC, host))
				}
			}
		}
	}
	return probs
}
