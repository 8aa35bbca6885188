package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/schedule"
)

// engine is the discrete-event core shared by the rollout simulator (sim)
// and the train simulator (trainSim): the state machine, the simulated
// clock, the event queue, the random source, and the slot bookkeeping of
// the datacenters (waiting lines, wakes, operator calls). Each simulator
// embeds it and keeps only what differs: its hosts, its events' handling
// and its results.
type engine struct {
	ctx    context.Context
	f      *fsm.FSM
	rng    *rand.Rand
	start  time.Time
	now    time.Duration
	seq    uint64
	q      queue
	timing fsm.Timing
	// wakeKind, operatorKind and tickKind are the simulator's event
	// kinds of a datacenter's wake, of an operator's look at it and of a
	// state machine tick.
	wakeKind, operatorKind, tickKind kind
	// operatorDelay is how long an operator takes to look at a
	// datacenter that called one.
	operatorDelay time.Duration
	// tickPending: a tick is scheduled at nextTickAt (earlier ticks
	// supersede later ones).
	tickPending bool
	nextTickAt  time.Duration

	err error
}

// newEngine returns an engine starting at start, its random source seeded
// with seed and salt (each simulator its own salt).
func newEngine(ctx context.Context, seed, salt uint64, start time.Time, wakeKind, operatorKind, tickKind kind, operatorDelay time.Duration) engine {
	return engine{
		ctx: ctx, f: fsm.New(),
		rng:   rand.New(rand.NewPCG(seed, seed^salt)),
		start: start.UTC(),
		timing: fsm.Timing{
			Lease: time.Hour,
			// Longer than drain + reboot + verify + a rollback reboot.
			RebootDeadline: time.Hour,
			// Simulated agents heartbeat at phase changes only: every
			// registered host stays alive for the coordinator.
			AliveWithin: 10 * 365 * 24 * time.Hour,
			// ... and is never expired for its silence.
			ExpireAfter: -1,
		},
		wakeKind: wakeKind, operatorKind: operatorKind, tickKind: tickKind, operatorDelay: operatorDelay,
	}
}

// at is the simulated wall-clock time.
func (e *engine) at() time.Time { return e.start.Add(e.now) }

// push schedules an event of kind k at at.
func (e *engine) push(at time.Duration, k kind, host, dc int32) {
	e.seq++
	e.q.push(event{at: at, seq: e.seq, kind: k, host: host, dc: dc})
}

// uniform draws from r.
func (e *engine) uniform(r Range) time.Duration {
	return minutes(r.MinMinutes + e.rng.Float64()*(r.MaxMinutes-r.MinMinutes))
}

// jitter draws a delay in [0, d).
func (e *engine) jitter(d time.Duration) time.Duration {
	return time.Duration(e.rng.Int64N(int64(d)))
}

// exec runs a command and records the first refusal as the run's error.
func (e *engine) exec(payload any) fsm.Result {
	r := e.f.Exec(e.at(), payload)
	if r.Err != nil && e.err == nil {
		e.err = fmt.Errorf("sim: %T refused at %s: %s: %s", payload, e.at().Format(time.RFC3339), r.Err.Kind, r.Err.Value)
	}
	return r
}

// simulator is one run of a simulator that embeds engine.
type simulator interface {
	// setup builds the fleet and schedules the first events.
	setup() error
	// loop runs the events.
	loop()
	// failed is the run's error, if any.
	failed() error
	// finish computes the results.
	finish()
}

// runSim sets up, runs and finishes s, whose results are res.
func runSim[R any](s simulator, res *R) (*R, error) {
	if err := s.setup(); err != nil {
		return nil, err
	}
	s.loop()
	if err := s.failed(); err != nil {
		return nil, err
	}
	s.finish()
	return res, nil
}

// failed returns the run's first error.
func (e *engine) failed() error { return e.err }

// run pops and handles events in time order until the queue is empty, an
// event lies after until, the run failed or its context ended. It
// returns how many events it handled.
func (e *engine) run(until time.Duration, handle func(event)) int {
	events := 0
	for len(e.q) > 0 && e.err == nil {
		if events&4095 == 0 {
			if err := e.ctx.Err(); err != nil {
				e.err = fmt.Errorf("sim: %w", err)
				return events
			}
		}
		ev := e.q.pop()
		if ev.at > until {
			break
		}
		if ev.at > e.now {
			e.now = ev.at
		}
		events++
		handle(ev)
	}
	return events
}

// scheduleTick schedules a tick at at, unless one is due by then.
func (e *engine) scheduleTick(at time.Duration) {
	if e.tickPending && e.nextTickAt <= at {
		return
	}
	e.tickPending, e.nextTickAt = true, at
	e.push(at, e.tickKind, -1, -1)
}

// addDatacenter registers datacenter d with the state machine and returns
// its bookkeeping.
func (e *engine) addDatacenter(d Datacenter) (simDCBase, error) {
	p, err := d.policy()
	if err != nil {
		return simDCBase{}, fmt.Errorf("sim: datacenter %s: %w", d.Name, err)
	}
	e.exec(fsm.SetDatacenter{Name: d.Name, Update: d.update()})
	return simDCBase{spec: d, policy: p, limit: p.Limit(d.Hosts), floor: p.Floor(d.Hosts)}, nil
}

// simDCBase is the slot bookkeeping of a simulated datacenter that both
// simulators keep alike: its hosts, slot holders, hosts down, the line of
// hosts waiting for a slot and its pending wake.
type simDCBase struct {
	spec    Datacenter
	policy  schedule.Policy
	limit   int
	floor   int
	hosts   []int32
	holders int
	down    int
	// queue holds waiting hosts in FIFO order from qhead.
	queue []int32
	qhead int
	// blocked: the last acquire was denied and nothing changed since.
	blocked bool
	// freed counts slots released since the last wake.
	freed       int
	wakePending bool
	wakeAll     bool
	wakeAt      time.Duration
	wakeGen     uint32
	operator    bool // an operator review is scheduled
}

// popWaiting drops the first waiting host from the line.
func (d *simDCBase) popWaiting() {
	d.qhead++
	if d.qhead == len(d.queue) {
		d.queue, d.qhead = d.queue[:0], 0
	}
}

// woken takes the wake event of generation gen: it returns how many
// waiting hosts may ask (-1: all), or false when a later wake superseded
// it.
func (d *simDCBase) woken(gen uint32) (int, bool) {
	if gen != d.wakeGen || !d.wakePending {
		return 0, false // superseded by an earlier wake
	}
	d.wakePending = false
	n := d.freed
	if d.wakeAll {
		n = -1
	}
	d.freed, d.wakeAll, d.blocked = 0, false, false
	return n, true
}

// wake schedules a wake of datacenter di (d) at at; all lets every
// waiting host ask (else as many as slots were freed).
func (e *engine) wake(d *simDCBase, di int, at time.Duration, all bool) {
	d.wakeAll = d.wakeAll || all
	if d.wakePending && d.wakeAt <= at {
		return
	}
	d.wakeGen++
	d.wakePending, d.wakeAt = true, at
	e.seq++
	e.q.push(event{at: at, seq: e.seq, kind: e.wakeKind, host: -1, dc: int32(di), gen: d.wakeGen})
}

// released counts a slot of datacenter di (d) given back and wakes it:
// the next waiting agent's retry timer fires a moment later (the more
// agents wait, the sooner one of them asks).
func (e *engine) released(d *simDCBase, di int) {
	d.holders--
	d.freed++
	waiting := len(d.queue) - d.qhead
	if waiting == 0 {
		d.blocked = false
		return
	}
	delay := time.Duration(e.rng.Int64N(int64(7*time.Minute+30*time.Second)/int64(waiting) + 1))
	e.wake(d, di, e.now+delay, false)
}

// callOperator schedules an operator's look at datacenter di (d) at at,
// unless one is scheduled already.
func (e *engine) callOperator(d *simDCBase, di int, at time.Duration) {
	if !d.operator {
		d.operator = true
		e.push(at, e.operatorKind, -1, int32(di))
	}
}

// retryDelay is an agent's jittered retry timer: 5–10 minutes.
func (e *engine) retryDelay() time.Duration {
	return 5*time.Minute + e.jitter(5*time.Minute)
}

// denied handles a denial of a slot in datacenter di (d), counted in
// denials: the datacenter is blocked until a wake.
func (e *engine) denied(d *simDCBase, di int, reason schedule.Reason, denials *map[string]int) {
	d.blocked = true
	if *denials == nil {
		*denials = map[string]int{}
	}
	(*denials)[string(reason)]++
	switch reason {
	case schedule.ReasonSemaphoreFull:
		// A release wakes the datacenter.
		if d.holders == 0 {
			e.wake(d, di, e.now+e.retryDelay(), true)
		}
	case schedule.ReasonOutsideWindow:
		open, _ := d.policy.Window.Next(e.at())
		if open.IsZero() {
			return
		}
		// Agents retry on their own timers; with many of them waiting
		// the first one asks within seconds of the opening.
		e.wake(d, di, open.Sub(e.start)+e.jitter(30*time.Second), true)
	case schedule.ReasonCapacityFloor:
		if d.holders == 0 && d.down > 0 {
			// Hosts down for other reasons block the datacenter and
			// no release will wake it: that pages an operator.
			e.callOperator(d, di, e.now+e.operatorDelay)
			return
		}
		e.wake(d, di, e.now+e.retryDelay(), true)
	case schedule.ReasonPaused, schedule.ReasonFailureBudget:
		e.callOperator(d, di, e.now+e.operatorDelay)
	default:
		if e.err == nil {
			e.err = fmt.Errorf("sim: unexpected denial %q in %s", reason, d.spec.Name)
		}
	}
}
