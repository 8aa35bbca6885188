package mitigate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// lockFile is the lock in the state directory that serializes every
// change to the policy state and the pins across processes: the daemon
// and one-shot commands (kroll-agent mitigations) share them.
const lockFile = ".lock"

// lockPoll is how often a busy lock is tried again.
const lockPoll = 20 * time.Millisecond

// lockState takes the state directory's exclusive lock (flock), waiting
// while another process holds it, until ctx is done. The returned
// function releases it.
func (m *Manager) lockState(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(m.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("mitigate: state dir: %w", err)
	}
	path := filepath.Join(m.stateDir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mitigate: lock: %w", err)
	}
	for {
		busy, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("mitigate: lock %s: %w", path, err)
		}
		if !busy {
			return func() { _ = unlockFile(f); f.Close() }, nil
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("mitigate: lock %s held by another process: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}
