package sim

import (
	"container/heap"
	"time"
)

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

// queue is a min-heap of events by (at, seq).
type queue []event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

var _ heap.Interface = (*queue)(nil)
