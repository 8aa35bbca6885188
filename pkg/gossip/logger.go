package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// logWriter adapts memberlist's *log.Logger output ("[DEBUG] memberlist:
// ...") to a slog.Logger, mapping the bracketed level.
type logWriter struct {
	logger *slog.Logger
}

// newStdLogger returns a *log.Logger for memberlist writing to logger.
func newStdLogger(logger *slog.Logger) *log.Logger {
	return log.New(logWriter{logger: logger}, "", 0)
}

func (w logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG]", slog.LevelDebug},
		{"[TRACE]", slog.LevelDebug},
		{"[INFO]", slog.LevelInfo},
		{"[WARN]", slog.LevelWarn},
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
	} {
		if bytes.HasPrefix(line, []byte(l.prefix)) {
			level = l.level
			line = bytes.TrimSpace(line[len(l.prefix):])
			break
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	w.logger.Log(context.Background(), level, string(line), "component", "memberlist")
	return len(p), nil
}
