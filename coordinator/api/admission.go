package api

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Admission bounds the requests a node works on at once, per class. Past a
// class's capacity (Concurrency running plus Queue waiting at most
// QueueWait), requests are answered 429 with Retry-After and the error
// kind "overloaded". Heartbeats form one class; slot acquire, renew and
// release, health reports and FleetLock form the priority class, which
// has its own capacity, so no heartbeat load ever sheds or delays them.
// Zero fields take the defaults.
type Admission struct {
	// HeartbeatConcurrency is how many heartbeats a node serves at once;
	// default 128.
	HeartbeatConcurrency int
	// HeartbeatQueue is how many more heartbeats wait for a place; default
	// 512, negative: none wait.
	HeartbeatQueue int
	// HeartbeatQueueWait is how long a heartbeat waits for a place before
	// it is shed; default 200 ms.
	HeartbeatQueueWait time.Duration
	// PriorityConcurrency is how many slot, health and FleetLock calls a
	// node serves at once; default 256.
	PriorityConcurrency int
	// PriorityQueue is how many more of them wait; default 4096, negative:
	// none wait.
	PriorityQueue int
	// PriorityQueueWait is how long they wait before being shed; default
	// 10 s.
	PriorityQueueWait time.Duration
	// PressureTarget is the scheduling latency (99th percentile, sampled
	// every 100 ms) past which heartbeats are shed on arrival, a growing
	// share while it lasts (see pressure); default 10 ms, negative: never.
	// It keeps a node whose CPUs are saturated answering slot calls and
	// its Raft peers in time.
	PressureTarget time.Duration
	// PressureMinRate is the heartbeat arrival rate per second below
	// which pressure sheds nothing; default 500 (a region of 15,000
	// agents heartbeating every 10 s spread over three nodes).
	PressureMinRate float64
	// RetryAfter is the mean of the Retry-After a shed request is told;
	// each answer draws uniformly from [RetryAfter/2, 3·RetryAfter/2],
	// whole seconds, at least 1. Default the heartbeat interval.
	RetryAfter time.Duration
}

// WithDefaults returns a with its zero fields set to the defaults
// (RetryAfter: heartbeat, the interval agents are told).
func (a Admission) WithDefaults(heartbeat time.Duration) Admission {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&a.HeartbeatConcurrency, 128)
	def(&a.HeartbeatQueue, 512)
	def(&a.PriorityConcurrency, 256)
	def(&a.PriorityQueue, 4096)
	defDur(&a.HeartbeatQueueWait, 200*time.Millisecond)
	defDur(&a.PriorityQueueWait, 10*time.Second)
	defDur(&a.RetryAfter, heartbeat)
	if a.PressureTarget == 0 {
		a.PressureTarget = 10 * time.Millisecond
	}
	if a.PressureMinRate <= 0 {
		a.PressureMinRate = 500
	}
	return a
}

// Admission classes.
const (
	classHeartbeat = "heartbeat"
	classPriority  = "priority"
)

// admission is one class's gate: a semaphore of places and a bounded
// number of waiters.
type admission struct {
	class string
	// pressure, when set, sheds a share of the class's requests on
	// arrival while the node's CPUs are saturated.
	pressure *pressure

	places  chan struct{}
	queue   int64
	wait    time.Duration
	waiting atomic.Int64
}

func newAdmission(class string, concurrency, queue int, wait time.Duration) *admission {
	return &admission{class: class, places: make(chan struct{}, max(concurrency, 1)), queue: int64(max(queue, 0)), wait: wait}
}

// admit takes a place, waiting at most a.wait when the queue has room; it
// returns false when the request is to be shed (or ctx ended). A true
// answer must be followed by done.
func (a *admission) admit(ctx context.Context) bool {
	select {
	case a.places <- struct{}{}:
		return true
	default:
	}
	if a.waiting.Add(1) > a.queue {
		a.waiting.Add(-1)
		return false
	}
	defer a.waiting.Add(-1)
	t := time.NewTimer(a.wait)
	defer t.Stop()
	select {
	case a.places <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// done gives back a place taken by admit.
func (a *admission) done() { <-a.places }

// admitted runs h when the class admits the request, else answers 429.
// An agent's heartbeat may also be shed by CPU pressure (see pressure),
// but only one that carries nothing durable (unchangedBeat); a shed
// heartbeat of that kind still counts as hearing its host.
func (s *Server) admitted(a *admission, w http.ResponseWriter, r *http.Request, id Identity, h func()) {
	agentBeat := a.class == classHeartbeat && r.URL.Path == wire.PathHeartbeat
	checked, unchanged, host := false, false, ""
	check := func() bool {
		if !checked {
			checked = true
			host, unchanged = s.unchangedBeat(r, id)
		}
		return unchanged
	}
	why := ""
	if share := a.pressure.shedShare(time.Now()); agentBeat && share > 0 && rand.Float64() < share && check() {
		why = "this coordinator node's CPUs are saturated"
	} else if !a.admit(r.Context()) {
		why = "this coordinator node is past its " + a.class + " capacity"
	}
	if why != "" {
		s.cfg.Metrics.shed.WithLabelValues(a.class).Inc()
		if agentBeat && check() {
			// It reached this node and changes nothing: the host is
			// heard, and shedding never makes a live host look silent.
			s.cfg.Store.Heard(host, time.Now())
		}
		s.writeOverloaded(w, why)
		return
	}
	defer a.done()
	h()
}

// unchangedBeat reports whether an agent's heartbeat, unread, carries no
// durable change: its wire.HeartbeatDigestHeader equals the digest of
// what the state holds of its host (fsm.State.ShedDigest). The host is
// the agent certificate's, else the wire.HostIDHeader. A heartbeat
// without the headers (an older agent) counts as changed.
func (s *Server) unchangedBeat(r *http.Request, id Identity) (host string, unchanged bool) {
	host = r.Header.Get(wire.HostIDHeader)
	if id.Via == "certificate" && id.Role == RoleAgent {
		host = id.Name
	}
	digest := r.Header.Get(wire.HeartbeatDigestHeader)
	if digest == "" || !fsm.ValidName(host) {
		return "", false
	}
	var held string
	var ok bool
	s.cfg.Store.FSM().View(func(st *fsm.State) { held, ok = st.ShedDigest(host) })
	return host, ok && held == digest
}

// writeOverloaded answers 429 with a jittered Retry-After, so that shed
// agents do not come back in step.
func (s *Server) writeOverloaded(w http.ResponseWriter, why string) {
	secs := s.retryAfter()
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, wire.KindOverloaded, why+"; retry after "+strconv.Itoa(secs)+" s")
}

// retryAfter draws a Retry-After in whole seconds from [RetryAfter/2,
// 3·RetryAfter/2], at least 1.
func (s *Server) retryAfter() int {
	mean := s.cfg.Admission.RetryAfter
	lo := mean / 2
	d := lo + time.Duration(rand.Int64N(int64(mean)+1))
	return max(1, int((d+time.Second/2)/time.Second))
}
