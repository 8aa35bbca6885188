package lifecycle

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Pacing of the agent's periodic calls: every interval is jittered ±10 %
// and failures back off exponentially with full jitter, so that agents
// that failed together (a coordinator restart) do not come back together.

// jitterFraction is the ± spread of every periodic interval.
const jitterFraction = 0.1

// minLeaseRetry is the shortest wait between renewal attempts near the
// end of a lease.
const minLeaseRetry = 100 * time.Millisecond

// jitter returns d scaled by a factor drawn uniformly from [0.9, 1.1].
func (a *Agent) jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 - jitterFraction + 2*jitterFraction*a.cfg.Rand()))
}

// errorBackoff is exponential backoff (github.com/cenkalti/backoff) with
// full jitter: the n-th consecutive failure waits a uniform draw from
// [0, min(max, initial·2^(n-1))]; reset after a success.
type errorBackoff struct {
	b    backoff.ExponentialBackOff
	rand func() float64
}

func newErrorBackoff(initial, maxWait time.Duration, rand func() float64) *errorBackoff {
	e := &errorBackoff{rand: rand, b: backoff.ExponentialBackOff{
		InitialInterval:     min(initial, maxWait),
		RandomizationFactor: 0, // the jitter is ours: full, from rand
		Multiplier:          2,
		MaxInterval:         maxWait,
	}}
	e.b.Reset()
	return e
}

// next returns the wait after one more failure.
func (e *errorBackoff) next() time.Duration {
	return time.Duration(e.rand() * float64(e.b.NextBackOff()))
}

// reset starts over after a success.
func (e *errorBackoff) reset() { e.b.Reset() }

// beforeLease caps wait so that the next renewal of a held slot comes
// before its lease runs out: at most half the time left (at least
// minLeaseRetry). The renewal deadline wins over every backoff; without a
// slot, or once the lease ran out, wait is returned unchanged.
func (a *Agent) beforeLease(wait time.Duration) time.Duration {
	sl := a.slot()
	if sl == nil || sl.LeaseExpires.IsZero() {
		return wait
	}
	left := sl.LeaseExpires.Sub(a.cfg.Now())
	if left <= 0 {
		return wait
	}
	return min(wait, max(left/2, minLeaseRetry))
}

// sleep waits d or until ctx ends (then it returns ctx's error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
