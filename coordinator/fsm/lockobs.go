package fsm

import "time"

// Lock operations a LockObserver is told about.
const (
	// LockApply is a command applied (from the Raft log or Exec): the
	// write lock.
	LockApply = "apply"
	// LockSnapshot is a snapshot of the state (read lock).
	LockSnapshot = "snapshot"
	// LockView is a View without a name of its own (read lock).
	LockView = "view"
)

// LockObserver is told, after every hold of the state's lock, what held
// it (op: LockApply, LockSnapshot, LockView or a ViewAs name), how long
// it waited for the lock and how long it held it. It runs outside the
// lock and must be cheap and safe for concurrent use.
type LockObserver func(op string, wait, hold time.Duration)

// ObserveLocks makes o the FSM's lock observer (nil: none). Call it before
// the FSM is shared.
func (f *FSM) ObserveLocks(o LockObserver) { f.lockObs = o }

// lockTimer times one hold of the state's lock for the lock observer.
type lockTimer struct {
	obs      LockObserver
	op       string
	asked    time.Time
	acquired time.Time
}

// timeLock starts timing a lock request of op (nothing without an
// observer).
func (f *FSM) timeLock(op string) lockTimer {
	if f.lockObs == nil {
		return lockTimer{}
	}
	return lockTimer{obs: f.lockObs, op: op, asked: time.Now()}
}

// locked records that the lock was acquired.
func (t *lockTimer) locked() {
	if t.obs != nil {
		t.acquired = time.Now()
	}
}

// unlocked reports the hold to the observer (after the lock is released).
func (t *lockTimer) unlocked() {
	if t.obs != nil {
		t.obs(t.op, t.acquired.Sub(t.asked), time.Since(t.acquired))
	}
}
