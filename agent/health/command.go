package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// outputTail is how many trailing bytes of a failed command's combined
// output go into the Check's Detail.
const outputTail = 200

// waitDelay bounds how long a command's output is still collected after
// it was killed, in case a process outside its process group holds the
// output pipe open.
const waitDelay = 5 * time.Second

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// Write implements io.Writer.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		p = p[len(p)-t.max:]
		t.buf = append(t.buf[:0], p...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the kept bytes.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// runCommand runs cc in its own process group and reports the outcome. On
// timeout or when ctx ends, the whole process group is killed.
func runCommand(ctx context.Context, cc CommandCheck) (bool, string) {
	cctx, cancel := context.WithTimeout(ctx, cc.Timeout)
	defer cancel()
	out := &tailBuffer{max: outputTail}
	cmd := exec.CommandContext(cctx, cc.Command[0], cc.Command[1:]...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid addresses the process group, which Setpgid
		// made equal to the command's pid.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	if err == nil {
		return true, fmt.Sprintf("exit status 0 after %v", elapsed)
	}
	var status string
	var exitErr *exec.ExitError
	switch {
	case errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		status = fmt.Sprintf("timed out after %v, process group killed", cc.Timeout)
	case errors.As(err, &exitErr):
		status = exitErr.ProcessState.String() // "exit status 3", "signal: killed"
	default:
		status = err.Error()
	}
	return false, fmt.Sprintf("%s; output tail: %s", status, strconv.Quote(out.String()))
}
