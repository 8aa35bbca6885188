package store

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// slowLockHold is the state-lock wait or hold from which a node logs the
// hold (with its wall time: what a slow request met can be found).
const slowLockHold = 50 * time.Millisecond

// Names the leader's periodic passes view the state under (see
// fsm.FSM.ViewAs): kroll_fsm_lock_*_seconds{op="..."}.
const (
	lockOpLiveness = "liveness"
	lockOpTrains   = "trains"
)

// lockMetrics exports the state machine's lock waits and holds by
// operation (fsm.LockObserver): kroll_fsm_lock_wait_seconds and
// kroll_fsm_lock_hold_seconds.
type lockMetrics struct {
	wait, hold *prometheus.HistogramVec
	log        *slog.Logger
}

// newLockMetrics registers the lock histograms on reg (nil: none; the
// slow holds are logged either way).
func newLockMetrics(reg prometheus.Registerer, log *slog.Logger) (*lockMetrics, error) {
	buckets := prometheus.ExponentialBuckets(10e-6, 4, 10) // 10 µs … 2.6 s
	m := &lockMetrics{
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kroll_fsm_lock_wait_seconds", Help: "Time waited for the state machine's lock, by operation (apply, snapshot, view, liveness, trains, metrics).", Buckets: buckets,
		}, []string{"op"}),
		hold: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kroll_fsm_lock_hold_seconds", Help: "Time the state machine's lock was held, by operation (apply, snapshot, view, liveness, trains, metrics).", Buckets: buckets,
		}, []string{"op"}),
		log: log,
	}
	if reg != nil {
		var err error
		if m.wait, err = register(reg, m.wait); err != nil {
			return nil, err
		}
		if m.hold, err = register(reg, m.hold); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe implements fsm.LockObserver.
func (m *lockMetrics) observe(op string, wait, hold time.Duration) {
	m.wait.WithLabelValues(op).Observe(wait.Seconds())
	m.hold.WithLabelValues(op).Observe(hold.Seconds())
	if wait >= slowLockHold || hold >= slowLockHold {
		m.log.Info("slow state lock", "op", op, "wait", wait, "hold", hold)
	}
}

var _ fsm.LockObserver = (*lockMetrics)(nil).observe
