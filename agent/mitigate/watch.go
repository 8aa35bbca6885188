package mitigate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/policy"
)

// InstalledLister is implemented by Enforcers that can list the ids of
// the policies they have installed (pinned), including ones without
// stored state.
type InstalledLister interface {
	Installed() ([]string, error)
}

// eventSource is implemented by Enforcers whose policies emit events.
type eventSource interface {
	InstalledLister
	// openEvents opens the event ring buffer of installed policy id.
	openEvents(id string) (recordReader, error)
}

// recordReader reads raw event records; Close interrupts Read with an
// error wrapping os.ErrClosed.
type recordReader interface {
	Read() ([]byte, error)
	Close() error
}

// Watch reads the events of every installed policy until ctx is done:
// one structured log line per event (Info when audited, Warn when denied)
// and kroll_mitigation_events_total in metrics (which may be nil).
// Policies installed or removed while it runs are picked up within a
// second. It returns an error only if the Enforcer has no events.
func (m *Manager) Watch(ctx context.Context, logger *slog.Logger, metrics *Metrics) error {
	src, ok := m.enf.(eventSource)
	if !ok {
		return fmt.Errorf("mitigate: watch: %w: this enforcer has no events", bpf.ErrUnavailable)
	}
	if logger == nil {
		logger = slog.Default()
	}
	var wg sync.WaitGroup
	readers := make(map[string]recordReader)
	failed := make(map[string]bool) // logged once until it works
	defer func() {
		for _, r := range readers {
			r.Close()
		}
		wg.Wait()
	}()
	t := time.NewTicker(m.watchInterval)
	defer t.Stop()
	for {
		ids, err := src.Installed()
		if err != nil {
			logger.Warn("mitigation events: listing installed policies", "error", err)
		}
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			seen[id] = true
			if readers[id] != nil {
				continue
			}
			r, err := src.openEvents(id)
			if err != nil {
				if !failed[id] {
					logger.Warn("mitigation events: cannot read policy events", "policy", id, "error", err)
					failed[id] = true
				}
				continue
			}
			delete(failed, id)
			readers[id] = r
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.readEvents(ctx, id, r, logger, metrics)
			}()
		}
		for id, r := range readers {
			if !seen[id] {
				r.Close()
				delete(readers, id)
			}
		}
		for id := range failed {
			if !seen[id] {
				delete(failed, id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// readEvents handles the records of r until it is closed.
func (m *Manager) readEvents(ctx context.Context, id string, r recordReader, logger *slog.Logger, metrics *Metrics) {
	var (
		p      policy.Policy
		pErr   error
		loaded time.Time
	)
	for {
		raw, err := r.Read()
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			logger.Warn("mitigation events: read", "policy", id, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(m.watchInterval):
			}
			continue
		}
		e, err := bpf.ParseEvent(raw)
		if err != nil {
			logger.Warn("mitigation events: bad record", "policy", id, "error", err)
			continue
		}
		// The stored policy gives version and mode; re-read it now and
		// then, as a re-apply may change both.
		if now := time.Now(); now.Sub(loaded) > 5*time.Second {
			p, _, pErr = m.load(id)
			loaded = now
		}
		m.handleEvent(ctx, id, p, pErr, e, logger, metrics)
	}
}

// Verdicts of events (log attribute verdict, label verdict).
const (
	VerdictAudited = "audited"
	VerdictDenied  = "denied"
)

// ExeLabel formats an event's executable as in logs and metrics:
// major:minor:inode of the kernel's view of the file.
func ExeLabel(k bpf.Key) string { return k.String() }

func (m *Manager) handleEvent(ctx context.Context, id string, p policy.Policy, pErr error, e bpf.Event, logger *slog.Logger, metrics *Metrics) {
	verdict, level := VerdictAudited, slog.LevelInfo
	if e.Denied() {
		verdict, level = VerdictDenied, slog.LevelWarn
	}
	mode := string(p.Mode)
	if pErr != nil {
		// No stored state (e.g. pins of a removed policy): the verdict
		// tells the mode.
		mode = string(policy.ModeAudit)
		if e.Denied() {
			mode = string(policy.ModeEnforce)
		}
	}
	exe := ExeLabel(e.Exe)
	attrs := []slog.Attr{
		slog.String("policy", id),
		slog.Int64("version", p.Version),
		slog.String("mode", mode),
		slog.String("verdict", verdict),
		slog.String("kind", e.Kind.String()),
		slog.String("op", e.Op.String()),
		slog.Uint64("pid", uint64(e.PID)),
		slog.Uint64("uid", uint64(e.UID)),
		slog.String("comm", e.CommString()),
		slog.String("exe", exe),
		slog.Uint64("exe_dev", e.Exe.Dev),
		slog.Uint64("exe_ino", e.Exe.Ino),
		slog.Uint64("arg", e.Arg),
	}
	if name := e.NameString(); name != "" {
		attrs = append(attrs, slog.String("name", name))
	}
	logger.LogAttrs(ctx, level, "mitigation event", attrs...)
	metrics.countEvent(id, verdict, exe)
}
