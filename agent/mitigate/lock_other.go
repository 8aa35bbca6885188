//go:build !unix

package mitigate

import (
	"errors"
	"os"
)

// tryLock fails closed where flock does not exist: the state is not
// changed without the lock.
func tryLock(*os.File) (bool, error) {
	return false, errors.New("no file locking on this platform")
}

func unlockFile(*os.File) error { return nil }
