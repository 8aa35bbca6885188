//go:build !linux

package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
)

// otherSystem stands in for the real system where kexec and Linux reboot
// commands do not exist: every action fails.
type otherSystem struct{}

func newSystem() system { return otherSystem{} }

func unsupported() error {
	return fmt.Errorf("boot: not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func (otherSystem) kexecFileLoad(*os.File, *os.File, string, int) error { return unsupported() }

func (otherSystem) sync() {}

func (otherSystem) reboot(int) error { return unsupported() }

func (otherSystem) startUnit(context.Context, string, string) error { return unsupported() }

// kexecRefused: without Linux there is no kexec.
func kexecRefused(err error) bool { return errors.Is(err, errors.ErrUnsupported) }
