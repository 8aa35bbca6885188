package api

import (
	"math"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// schedLatencies is the Go runtime's histogram of the time goroutines
// spend runnable before they run: how long any goroutine of this process —
// Raft's heartbeats to its peers among them — waits for a CPU.
const schedLatencies = "/sched/latencies:seconds"

// Pressure shedding: every pressureEvery, the 99th percentile of the
// scheduling latencies since the last look is compared with the target.
// Above it, the share of heartbeats shed on arrival grows by pressureStep
// (up to pressureMaxShed); below half of it, the share shrinks by
// pressureRelax. The rise is fast and the fall slow: shed agents stay away
// for their Retry-After (5–15 s by default), so the load falls with a
// delay and a fast fall would oscillate.
const (
	pressureEvery   = 100 * time.Millisecond
	pressureStep    = 0.1
	pressureRelax   = 0.02
	pressureMaxShed = 0.95
	// pressureRateWeight is the weight of one sample's arrival rate in
	// the moving average that is compared with the minimum rate (about
	// the last second: one window of 100 ms holds too few arrivals to
	// tell 400/s from 600/s).
	pressureRateWeight = 0.1
)

// pressure sheds heartbeats when this node's CPUs are saturated, before
// its Raft goroutines fall behind: a leader whose heartbeats to its
// followers wait too long for a CPU loses its lease, and then no slot is
// served anywhere. Concurrency and queue bounds (admission) do not catch
// this: a heartbeat answered from local state takes tens of microseconds
// of CPU, so the places rarely fill while the run queue grows. The signal
// is the scheduling latency itself, sampled at most every pressureEvery
// by the requests that ask (no goroutine of its own).
type pressure struct {
	target time.Duration
	// minRate is the arrival rate (per second) below which nothing is
	// shed: shedding a trickle relieves nothing, and a busy machine's
	// latencies must not shed a small region's heartbeats.
	minRate float64
	// arrivals counts the requests that asked since the last sample.
	arrivals atomic.Int64
	// next is when the next sample is due (UnixNano).
	next atomic.Int64
	// last is when the last sample was taken; rate is the moving average
	// of the arrival rate (per second).
	last time.Time
	rate float64
	// shed is the share of heartbeats to shed (math.Float64bits).
	shed atomic.Uint64
	// p99 is the last sample's 99th percentile (nanoseconds).
	p99 atomic.Int64

	mu     sync.Mutex // guards the fields below (TryLock: one sampler)
	sample []metrics.Sample
	prev   []uint64
}

// newPressure returns a pressure gauge with target latency target that
// sheds only while at least minRate requests a second arrive; nil (never
// shed) when target is negative.
func newPressure(target time.Duration, minRate float64) *pressure {
	if target < 0 {
		return nil
	}
	return &pressure{target: target, minRate: minRate, sample: []metrics.Sample{{Name: schedLatencies}}}
}

// shedShare returns the share of heartbeats to shed now, sampling the
// runtime when a sample is due.
func (p *pressure) shedShare(now time.Time) float64 {
	if p == nil {
		return 0
	}
	p.arrivals.Add(1)
	if now.UnixNano() >= p.next.Load() && p.mu.TryLock() {
		if now.UnixNano() >= p.next.Load() {
			p.next.Store(now.Add(pressureEvery).UnixNano())
			if !p.last.IsZero() {
				rate := float64(p.arrivals.Swap(0)) / now.Sub(p.last).Seconds()
				p.rate += pressureRateWeight * (rate - p.rate)
			}
			p.last = now
			p.update(p.read(), p.rate)
		}
		p.mu.Unlock()
	}
	return math.Float64frombits(p.shed.Load())
}

// read returns the 99th percentile of the scheduling latencies since the
// previous read (0 on the first, or when nothing was scheduled).
func (p *pressure) read() time.Duration {
	metrics.Read(p.sample)
	if p.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0 // not provided by this runtime
	}
	h := p.sample[0].Value.Float64Histogram()
	first := p.prev == nil
	if first {
		p.prev = make([]uint64, len(h.Counts))
	}
	delta := make([]uint64, len(h.Counts))
	var total uint64
	for i, c := range h.Counts {
		delta[i] = c - p.prev[i]
		total += delta[i]
		p.prev[i] = c
	}
	if first || total == 0 {
		return 0
	}
	return quantile(delta, h.Buckets, total, 0.99)
}

// quantile returns the upper bound of the bucket holding quantile q of a
// histogram (counts[i] between buckets[i] and buckets[i+1]; an infinite
// bound reads as the finite one).
func quantile(counts []uint64, buckets []float64, total uint64, q float64) time.Duration {
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= want {
			bound := buckets[i+1]
			if math.IsInf(bound, 1) {
				bound = buckets[i]
			}
			return time.Duration(bound * float64(time.Second))
		}
	}
	return 0
}

// update moves the shed share by one sample's 99th percentile and the
// average arrival rate: up while the latency is past the target, down
// while it is below half of it or the rate below the minimum (down
// slowly: shedding itself lowers the rate, agents shed stay away).
func (p *pressure) update(p99 time.Duration, rate float64) {
	p.p99.Store(int64(p99))
	shed := math.Float64frombits(p.shed.Load())
	switch {
	case rate < p.minRate:
		shed = max(0, shed-pressureRelax)
	case p99 > p.target:
		shed = min(pressureMaxShed, shed+pressureStep)
	case p99 < p.target/2:
		shed = max(0, shed-pressureRelax)
	}
	p.shed.Store(math.Float64bits(shed))
}

// collectors returns the gauges that show the pressure: the share of
// heartbeats shed on arrival and the last scheduling latency sample.
func (p *pressure) collectors() []prometheus.Collector {
	if p == nil {
		return nil
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kroll_api_pressure_shed_ratio",
			Help: "Share of heartbeats shed on arrival because goroutines wait too long for a CPU (0 when the node keeps up).",
		}, func() float64 { return math.Float64frombits(p.shed.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kroll_sched_latency_p99_seconds",
			Help: "99th percentile of the Go scheduling latency over the last sample (100 ms) taken by heartbeat admission.",
		}, func() float64 { return time.Duration(p.p99.Load()).Seconds() }),
	}
}
