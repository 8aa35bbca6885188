package install

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// killDelay is how long a cancelled command has after SIGTERM.
const killDelay = 30 * time.Second

// maxOutput bounds the command output kept in an error.
const maxOutput = 8 << 10

// Runner runs a host command (dpkg, depmod, update-initramfs, dracut).
// It returns the command's combined output; a non-zero exit status is an
// error. Tests replace it to record command lines.
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec, bounded by the context, without a
// terminal (stdin is /dev/null), with env added to the agent's environment.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// dpkg and the initramfs tools clean up on SIGTERM; SIGKILL only if
	// they do not exit within killDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = killDelay
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return out.Bytes(), err
}

// cmdError is the error of a failed command with its (tail of) output.
func cmdError(name string, args []string, out []byte, err error) error {
	s := strings.TrimSpace(string(out))
	if len(s) > maxOutput {
		s = "…" + s[len(s)-maxOutput:]
	}
	line := strings.Join(append([]string{name}, args...), " ")
	if s == "" {
		return fmt.Errorf("%s: %w", line, err)
	}
	return fmt.Errorf("%s: %w: %s", line, err, s)
}
