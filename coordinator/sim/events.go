package sim

import "time"

// kind is the type of a simulation event.
type kind uint8

const (
	// evNotice: a host's heartbeat answer names the release (its wave
	// started); it starts staging.
	evNotice kind = iota
	// evStaged: the host finished staging and asks for a slot.
	evStaged
	// evDrained: the host's routes are withdrawn; it reboots.
	evDrained
	// evBooted: the host runs the new (or, in a rollback, old) kernel.
	evBooted
	// evVerified: the host's health checks finished.
	evVerified
	// evRolledBack: the host is back on the old kernel after a rollback.
	evRolledBack
	// evRepaired: a lost host was power-cycled by an operator and is back
	// on its old kernel.
	evRepaired
	// evWake: waiting hosts of a datacenter ask for slots again.
	evWake
	// evOperator: an operator looks at a paused datacenter.
	evOperator
	// evTick: the state machine is ticked (rollouts move on, reboot
	// deadlines expire).
	evTick
	// evSample: the plot series are sampled.
	evSample
)

// event is one scheduled event. Events at the same time run in the order
// they were scheduled (seq), which makes runs deterministic.
type event struct {
	at   time.Duration // since the simulation's start
	seq  uint64
	kind kind
	host int32
	dc   int32
	gen  uint32 // wake generation (evWake)
}

// queue is a binary min-heap of events by (at, seq), typed (no
// container/heap: no interface conversion per push and pop). seq is unique,
// so the order of pops is fully determined.
type queue []event

// less orders events by time, then by scheduling order.
func (a event) less(b event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

// push adds e.
func (q *queue) push(e event) {
	h := append(*q, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	*q = h
}

// pop removes and returns the earliest event; q must not be empty.
func (q *queue) pop() event {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}
