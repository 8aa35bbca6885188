package cluster_test

import (
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// semHolder is a holder of a slot in the model; Token 0 means the grant's
// reply was lost, so its fencing token is not known (yet).
type semHolder struct {
	Host  string
	Token uint64
}

// semState is the model state of one datacenter: its holders, by host, and
// the highest fencing token known to have been granted. Values are never
// changed once built (porcupine keeps old states).
type semState struct {
	Holders  []semHolder
	MaxToken uint64
}

// find returns where host is, or would be, in s.Holders and whether it
// holds.
func (s semState) find(host string) (int, bool) {
	return slices.BinarySearchFunc(s.Holders, host, func(h semHolder, host string) int { return strings.Compare(h.Host, host) })
}

// with returns s with host holding token (replacing its entry if any).
func (s semState) with(host string, token uint64) semState {
	i, found := s.find(host)
	hs := slices.Clone(s.Holders)
	if found {
		hs[i].Token = token
	} else {
		hs = slices.Insert(hs, i, semHolder{host, token})
	}
	return semState{Holders: hs, MaxToken: max(s.MaxToken, token)}
}

// without returns s without host's hold; the released token counts as
// granted.
func (s semState) without(host string, token uint64) semState {
	hs := slices.DeleteFunc(slices.Clone(s.Holders), func(h semHolder) bool { return h.Host == host })
	return semState{Holders: hs, MaxToken: max(s.MaxToken, token)}
}

// String describes s, e.g. "{h01#4 h05#?} max #7".
func (s semState) String() string {
	parts := make([]string, len(s.Holders))
	for i, h := range s.Holders {
		tok := "?"
		if h.Token != 0 {
			tok = fmt.Sprint(h.Token)
		}
		parts[i] = h.Host + "#" + tok
	}
	return fmt.Sprintf("{%s} max #%d", strings.Join(parts, " "), s.MaxToken)
}

// semStep is the sequential specification of one datacenter's slots: a
// counting semaphore of size limit with owned, recursive holds and fencing
// tokens. It returns the possible next states (none: the step is
// impossible).
//
//   - acquire by a holder → granted with its token (recursive);
//   - acquire by another host when fewer than limit hold → granted with a
//     token above every token granted before;
//   - acquire when limit hosts hold → semaphore_full;
//   - release by the holder with its token → released;
//   - release by a non-holder → not_holder; with a wrong token →
//     stale_token;
//   - an operation with an unknown outcome either took effect (as above)
//     or never did: both states are possible.
func semStep(s semState, limit int, op slotOp, res slotResult) []semState {
	i, held := s.find(op.Host)
	var cur semHolder
	if held {
		cur = s.Holders[i]
	}
	if op.Acquire {
		switch res.Outcome {
		case outGranted:
			switch {
			case held && cur.Token != 0 && res.Token == cur.Token:
				return []semState{s}
			case held && cur.Token == 0 && res.Token != 0:
				// The grant whose reply was lost: now its token is known.
				return []semState{s.with(op.Host, res.Token)}
			case !held && len(s.Holders) < limit && res.Token > s.MaxToken:
				return []semState{s.with(op.Host, res.Token)}
			}
		case outFull:
			if !held && len(s.Holders) >= limit {
				return []semState{s}
			}
		case outUnknown:
			if held || len(s.Holders) >= limit {
				return []semState{s}
			}
			return []semState{s, s.with(op.Host, 0)}
		}
		return nil
	}
	matches := held && (cur.Token == 0 || cur.Token == op.Token)
	switch res.Outcome {
	case outReleased:
		if matches {
			return []semState{s.without(op.Host, op.Token)}
		}
	case outNotHolder:
		if !held {
			return []semState{s}
		}
	case outStale:
		if held && cur.Token != op.Token {
			return []semState{s}
		}
	case outUnknown:
		if matches {
			return []semState{s, s.without(op.Host, op.Token)}
		}
		return []semState{s}
	}
	return nil
}

// slotModel is the porcupine model of the slot API, partitioned by
// datacenter; limits are the datacenters' slot limits.
func slotModel(limits map[string]int) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byDC := map[string][]porcupine.Operation{}
			var order []string
			for _, op := range h {
				dc := op.Input.(slotOp).DC
				if _, ok := byDC[dc]; !ok {
					order = append(order, dc)
				}
				byDC[dc] = append(byDC[dc], op)
			}
			out := make([][]porcupine.Operation, len(order))
			for i, dc := range order {
				out[i] = byDC[dc]
			}
			return out
		},
		Init: func() []any { return []any{semState{}} },
		Step: func(state, input, output any) []any {
			op := input.(slotOp)
			next := semStep(state.(semState), limits[op.DC], op, output.(slotResult))
			out := make([]any, len(next))
			for i, s := range next {
				out[i] = s
			}
			return out
		},
		Equal: func(a, b any) bool {
			x, y := a.(semState), b.(semState)
			return x.MaxToken == y.MaxToken && slices.Equal(x.Holders, y.Holders)
		},
		Hash: func(state any) uint64 {
			h := fnv.New64a()
			fmt.Fprint(h, state.(semState).String())
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			return fmt.Sprintf("%s → %s", input.(slotOp), output.(slotResult))
		},
		DescribeState: func(state any) string { return state.(semState).String() },
		DescribeOperationMetadata: func(info any) string {
			if info == nil {
				return ""
			}
			return fmt.Sprint(info)
		},
	}
	return nm.ToModel()
}

// settleDelay is how long after an unknown operation returned a request
// it sent may still be on its way to the leader (a follower forwarding it
// was killed, for one); see toPorcupine.
const settleDelay = 250 * time.Millisecond

// toPorcupine converts a history. An operation with an unknown outcome may
// take effect at any time after its call, or never (the model allows
// both), but not forever later: unless its client timed out (the server
// may still be working on it), it takes effect, if ever, before the first
// definitive answer to an operation called settleDelay after it returned.
// That answer was committed by a leader of a later term than any leader
// that may have appended the unknown command (a 5xx or a broken
// connection means that leader lost its leadership, died, or never saw the
// command), and Raft's log matching means a command not committed by then
// never will be. Bounding these operations keeps the checker's search
// small; timed-out ones return after everything else.
func toPorcupine(h []record, nodeNames []string) []porcupine.Operation {
	var end int64
	var defs []record
	for _, r := range h {
		end = max(end, r.Return)
		if r.Result.Outcome.definitive() {
			defs = append(defs, r)
		}
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].Call < defs[j].Call })
	// firstReturn[i] is the earliest return among defs[i:].
	firstReturn := make([]int64, len(defs)+1)
	firstReturn[len(defs)] = end + 1
	for i := len(defs) - 1; i >= 0; i-- {
		firstReturn[i] = min(firstReturn[i+1], defs[i].Return)
	}
	ops := make([]porcupine.Operation, len(h))
	for i, r := range h {
		ret := r.Return
		if r.Result.Outcome == outUnknown {
			ret = end + 1
			if !r.TimedOut {
				after := r.Return + int64(settleDelay)
				ret = max(r.Return, firstReturn[sort.Search(len(defs), func(i int) bool { return defs[i].Call >= after })])
			}
		}
		meta := ""
		if r.Node < len(nodeNames) {
			meta = "via " + nodeNames[r.Node]
		}
		if r.Detail != "" {
			meta += ": " + r.Detail
		}
		ops[i] = porcupine.Operation{ClientId: r.Client, Input: r.Op, Call: r.Call, Output: r.Result, Return: ret, Metadata: meta}
	}
	return ops
}

// checkLinearizable checks a history against slotModel. Unless the
// history is linearizable, it writes porcupine's visualization of the
// first datacenter whose history is not to a temporary file that outlives
// the test and returns its path.
func checkLinearizable(h []record, limits map[string]int, nodeNames []string, timeout time.Duration) (porcupine.CheckResult, string, error) {
	model := slotModel(limits)
	ops := toPorcupine(h, nodeNames)
	// The verdict first: without visualization data the checker stops at
	// the first partition it finds illegal.
	res := porcupine.CheckOperationsTimeout(model, ops, timeout)
	if res == porcupine.Ok {
		return res, "", nil
	}
	// Then the visualization, of one bad partition only (cheaper).
	bad := ops
	for _, part := range model.Partition(ops) {
		if porcupine.CheckOperationsTimeout(model, part, timeout) != porcupine.Ok {
			bad = part
			break
		}
	}
	_, info := porcupine.CheckOperationsVerbose(model, bad, timeout)
	f, err := os.CreateTemp("", "kroll-linearizability-*.html")
	if err != nil {
		return res, "", err
	}
	defer f.Close()
	if err := porcupine.Visualize(model, info, f); err != nil {
		return res, f.Name(), err
	}
	return res, f.Name(), f.Close()
}

// suspects lists operations whose outcome contradicts what the client
// knew for sure, to point at the violation porcupine found: a release of
// a slot the client was granted (and did not try to release before)
// answered not_holder or stale_token, or an acquire by a host that holds
// no slot answered with the token of an earlier grant.
func suspects(h []record) []string {
	var out []string
	for _, rs := range byClient(h) {
		for i := 1; i < len(rs); i++ {
			prev, r := rs[i-1], rs[i]
			if !r.Op.Acquire && prev.Op.Acquire && prev.Result.Outcome == outGranted &&
				(r.Result.Outcome == outNotHolder || r.Result.Outcome == outStale) {
				out = append(out, fmt.Sprintf("client %d: %s → %s at %s, then %s via node %d → %s at %s",
					r.Client, prev.Op, prev.Result, time.Duration(prev.Return), r.Op, r.Node, r.Result, time.Duration(r.Return)))
			}
		}
	}
	return out
}

// TestSlotModel proves that the checker can fail: histories with a double
// grant beyond the limit, a reused token or a lost release are reported
// non-linearizable, while legal ones (including unknown outcomes that did
// or did not take effect) pass.
func TestSlotModel(t *testing.T) {
	acq := func(client int, host string, call, ret int64, out outcome, token uint64) record {
		return record{Client: client, Op: slotOp{Acquire: true, DC: "fra", Host: host}, Result: slotResult{Outcome: out, Token: token}, Call: call, Return: ret}
	}
	rel := func(client int, host string, token uint64, call, ret int64, out outcome) record {
		return record{Client: client, Op: slotOp{DC: "fra", Host: host, Token: token}, Result: slotResult{Outcome: out}, Call: call, Return: ret}
	}
	sec := func(n int64) int64 { return n * int64(time.Second) }
	timedOut := func(r record) record { r.TimedOut = true; return r }
	for _, tc := range []struct {
		name  string
		limit int
		h     []record
		want  porcupine.CheckResult
	}{
		{"sequential grants, full, release, regrant", 2, []record{
			acq(0, "a", 0, 10, outGranted, 1), acq(1, "b", 20, 30, outGranted, 2),
			acq(2, "c", 40, 50, outFull, 0), rel(0, "a", 1, 60, 70, outReleased),
			acq(2, "c", 80, 90, outGranted, 3),
		}, porcupine.Ok},
		{"recursive acquire returns the same token", 1, []record{
			acq(0, "a", 0, 10, outGranted, 7), acq(0, "a", 20, 30, outGranted, 7),
		}, porcupine.Ok},
		{"concurrent acquires, one wins", 1, []record{
			acq(0, "a", 0, 50, outGranted, 1), acq(1, "b", 10, 40, outFull, 0),
		}, porcupine.Ok},
		{"double grant beyond the limit", 1, []record{
			acq(0, "a", 0, 10, outGranted, 1), acq(1, "b", 20, 30, outGranted, 2),
		}, porcupine.Illegal},
		{"concurrent double grant beyond the limit", 2, []record{
			acq(0, "a", 0, 100, outGranted, 1), acq(1, "b", 0, 100, outGranted, 2), acq(2, "c", 0, 100, outGranted, 3),
		}, porcupine.Illegal},
		{"recursive acquire with another token", 1, []record{
			acq(0, "a", 0, 10, outGranted, 1), acq(0, "a", 20, 30, outGranted, 2),
		}, porcupine.Illegal},
		{"fencing token reused after release", 1, []record{
			acq(0, "a", 0, 10, outGranted, 5), rel(0, "a", 5, 20, 30, outReleased), acq(1, "b", 40, 50, outGranted, 5),
		}, porcupine.Illegal},
		{"fencing token goes down", 2, []record{
			acq(0, "a", 0, 10, outGranted, 5), acq(1, "b", 20, 30, outGranted, 4),
		}, porcupine.Illegal},
		{"full while nobody holds", 1, []record{
			acq(0, "a", 0, 10, outGranted, 1), rel(0, "a", 1, 20, 30, outReleased), acq(1, "b", 40, 50, outFull, 0),
		}, porcupine.Illegal},
		{"holder told it holds nothing", 1, []record{
			acq(0, "a", 0, 10, outGranted, 1), rel(0, "a", 1, 20, 30, outNotHolder),
		}, porcupine.Illegal},
		{"release of a slot never granted", 1, []record{
			rel(0, "a", 3, 0, 10, outReleased),
		}, porcupine.Illegal},
		{"unknown acquire took the slot", 1, []record{
			acq(0, "a", 0, 10, outUnknown, 0), acq(1, "b", 20, 30, outFull, 0), acq(0, "a", 40, 50, outGranted, 4),
		}, porcupine.Ok},
		{"unknown acquire never happened", 1, []record{
			acq(0, "a", 0, 10, outUnknown, 0), acq(1, "b", 20, 30, outGranted, 1), rel(1, "b", 1, 40, 50, outReleased),
		}, porcupine.Ok},
		{"unknown release took effect", 1, []record{
			acq(0, "a", 0, 10, outGranted, 1), rel(0, "a", 1, 20, 30, outUnknown),
			rel(0, "a", 1, 40, 50, outNotHolder), acq(1, "b", 60, 70, outGranted, 2),
		}, porcupine.Ok},
		{"unknown acquire cannot take effect long after it returned", 1, []record{
			acq(0, "a", 0, 10, outUnknown, 0), acq(1, "b", sec(2), sec(2)+10, outGranted, 1),
			rel(1, "b", 1, sec(3), sec(3)+10, outReleased), acq(2, "c", sec(4), sec(4)+10, outFull, 0),
		}, porcupine.Illegal},
		{"timed-out acquire may take effect any time later", 1, []record{
			timedOut(acq(0, "a", 0, 10, outUnknown, 0)), acq(1, "b", sec(2), sec(2)+10, outGranted, 1),
			rel(1, "b", 1, sec(3), sec(3)+10, outReleased), acq(2, "c", sec(4), sec(4)+10, outFull, 0),
		}, porcupine.Ok},
		{"unknown outcomes do not excuse a double grant", 1, []record{
			acq(0, "a", 0, 10, outGranted, 1), acq(2, "c", 5, 15, outUnknown, 0), rel(0, "a", 1, 20, 30, outUnknown),
			acq(1, "b", 40, 50, outGranted, 2), acq(0, "a", 60, 70, outGranted, 3),
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, path, err := checkLinearizable(tc.h, map[string]int{"fra": tc.limit}, nil, 10*time.Second)
			if path != "" {
				defer os.Remove(path)
			}
			if err != nil {
				t.Fatal(err)
			}
			if res != tc.want {
				t.Fatalf("checker says %s, want %s", res, tc.want)
			}
			if res == porcupine.Illegal {
				if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
					t.Fatalf("visualization %s: %v", path, err)
				}
			}
		})
	}
}
