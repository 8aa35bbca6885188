package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// NotifyReady tells systemd (Type=notify) that the daemon is ready and,
// when the unit sets WatchdogSec, pings the watchdog at half its interval
// until ctx ends. The returned function reports STOPPING; call it when the
// daemon shuts down. Without systemd (no NOTIFY_SOCKET) all of it is a
// no-op.
func NotifyReady(ctx context.Context, log *slog.Logger) (stopping func()) {
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY", "err", err)
	}
	if iv, err := daemon.SdWatchdogEnabled(false); err == nil && iv > 0 {
		go func() {
			t := time.NewTicker(iv / 2)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
				}
			}
		}()
	}
	return func() { _, _ = daemon.SdNotify(false, daemon.SdNotifyStopping) }
}
