package install

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// killDelay is how long a cancelled command has after SIGTERM.
const killDelay = 30 * time.Second

// maxOutput bounds the command output kept in an error.
const maxOutput = 8 << 10

// Output is what a command printed.
type Output struct {
	// Stdout is its standard output: what is parsed.
	Stdout []byte
	// Combined is its standard output and error as they came: for
	// messages and errors.
	Combined []byte
}

// Runner runs a host command (dpkg, depmod, update-initramfs, dracut).
// A non-zero exit status is an error. Tests replace it to record command
// lines.
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) (Output, error)
}

// ExecRunner runs commands with os/exec, bounded by the context, without a
// terminal (stdin is /dev/null), in the C locale (messages and formats as
// parsed, whatever the host's locale), with env added to the agent's
// environment.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) (Output, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// dpkg and the initramfs tools clean up on SIGTERM; SIGKILL only if
	// they do not exit within killDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = killDelay
	cmd.Env = append(append(os.Environ(), "LC_ALL=C", "LANG=C", "LANGUAGE="), env...)
	var stdout bytes.Buffer
	combined := &lockedBuffer{}
	cmd.Stdout = io.MultiWriter(&stdout, combined)
	cmd.Stderr = combined
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return Output{Stdout: stdout.Bytes(), Combined: combined.buf.Bytes()}, err
}

// lockedBuffer is a buffer written by the copying goroutines of both
// standard output and standard error.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
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
