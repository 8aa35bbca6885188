package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockFile is the name of the data directory's lock file: a running node
// (Open) and an offline recovery (Recover) hold an exclusive flock on it,
// so neither starts while the other runs.
const lockFile = "kroll.lock"

// ErrDataDirInUse is returned when another process holds a data
// directory: a running coordinator node or a recovery.
var ErrDataDirInUse = errors.New("store: data directory in use by another process (a running kroll-coordinator?)")

// dirLock is a held data directory lock.
type dirLock struct{ f *os.File }

// lockDataDir takes the data directory's lock without waiting.
func lockDataDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("store: lock %s: %w", dir, err)
	}
	return &dirLock{f: f}, nil
}

// unlock releases the lock.
func (l *dirLock) unlock() error {
	if l == nil {
		return nil
	}
	return l.f.Close() // closing the descriptor releases the flock
}

// boltFree reports an error when a process holds the WAL's meta database
// (bbolt locks it for as long as it is open): also a node of an older
// version, which takes no kroll.lock, is running on dir.
func boltFree(dir string) error {
	f, err := os.Open(filepath.Join(dir, "wal", "wal-meta.db"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s (its Raft log is open)", ErrDataDirInUse, dir)
		}
		return fmt.Errorf("store: lock %s: %w", f.Name(), err)
	}
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}
