package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level of hclog's Trace records (below Debug).
const LevelTrace = slog.LevelDebug - 4

// slogLevel maps an hclog level to its slog level.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// hclogSlog is an hclog.Logger writing slog records: hashicorp/raft and
// raft-wal log through it, so their lines are records of the node's own
// log (level mapped, message and key/value pairs as attributes) instead of
// text inside a message. Its level (hclog's SetLevel) is shared by the
// loggers derived from it; the handler's own level filters as well.
type hclogSlog struct {
	h     slog.Handler
	name  string
	args  []any
	level *atomic.Int32
}

// newRaftLogger returns the hclog.Logger of the Raft node, writing to l
// (component "raft") at hclog level Info and above.
func newRaftLogger(l *slog.Logger) hclog.Logger {
	lv := &atomic.Int32{}
	lv.Store(int32(hclog.Info))
	return &hclogSlog{h: l.Handler(), name: "raft", level: lv}
}

func (l *hclogSlog) enabled(level hclog.Level) bool {
	if level == hclog.Off || level < hclog.Level(l.level.Load()) {
		return false
	}
	return l.h.Enabled(context.Background(), slogLevel(level))
}

// emit writes one record; skip is the number of frames between the
// caller of the hclog method and emit.
func (l *hclogSlog) emit(skip int, level hclog.Level, msg string, args []any) {
	if !l.enabled(level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(skip+2, pcs[:])
	r := slog.NewRecord(time.Now(), slogLevel(level), msg, pcs[0])
	r.AddAttrs(slog.String("component", l.name))
	r.AddAttrs(attrs(l.args)...)
	r.AddAttrs(attrs(args)...)
	_ = l.h.Handle(context.Background(), r)
}

// attrs converts hclog's alternating keys and values; a value without a
// key is kept under EXTRA_VALUE_AT_END, as hclog does.
func attrs(args []any) []slog.Attr {
	out := make([]slog.Attr, 0, len(args)/2+1)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, slog.Any("EXTRA_VALUE_AT_END", value(args[i])))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		out = append(out, slog.Any(key, value(args[i+1])))
	}
	return out
}

// value renders hclog's formatting types as their text.
func value(v any) any {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		if f, ok := v[0].(string); ok {
			return fmt.Sprintf(f, v[1:]...)
		}
		return fmt.Sprint(v...)
	case hclog.Hex:
		return fmt.Sprintf("0x%x", int(v))
	case hclog.Octal:
		return fmt.Sprintf("0%o", int(v))
	case hclog.Binary:
		return fmt.Sprintf("0b%b", int(v))
	case hclog.Quote:
		return string(v)
	case fmt.Stringer:
		return v.String()
	}
	return v
}

// Log implements hclog.Logger.
func (l *hclogSlog) Log(level hclog.Level, msg string, args ...any) { l.emit(1, level, msg, args) }

// Trace implements hclog.Logger.
func (l *hclogSlog) Trace(msg string, args ...any) { l.emit(1, hclog.Trace, msg, args) }

// Debug implements hclog.Logger.
func (l *hclogSlog) Debug(msg string, args ...any) { l.emit(1, hclog.Debug, msg, args) }

// Info implements hclog.Logger.
func (l *hclogSlog) Info(msg string, args ...any) { l.emit(1, hclog.Info, msg, args) }

// Warn implements hclog.Logger.
func (l *hclogSlog) Warn(msg string, args ...any) { l.emit(1, hclog.Warn, msg, args) }

// Error implements hclog.Logger.
func (l *hclogSlog) Error(msg string, args ...any) { l.emit(1, hclog.Error, msg, args) }

// IsTrace implements hclog.Logger.
func (l *hclogSlog) IsTrace() bool { return l.enabled(hclog.Trace) }

// IsDebug implements hclog.Logger.
func (l *hclogSlog) IsDebug() bool { return l.enabled(hclog.Debug) }

// IsInfo implements hclog.Logger.
func (l *hclogSlog) IsInfo() bool { return l.enabled(hclog.Info) }

// IsWarn implements hclog.Logger.
func (l *hclogSlog) IsWarn() bool { return l.enabled(hclog.Warn) }

// IsError implements hclog.Logger.
func (l *hclogSlog) IsError() bool { return l.enabled(hclog.Error) }

// ImpliedArgs implements hclog.Logger.
func (l *hclogSlog) ImpliedArgs() []any { return l.args }

// With implements hclog.Logger.
func (l *hclogSlog) With(args ...any) hclog.Logger {
	c := *l
	c.args = append(append([]any(nil), l.args...), args...)
	return &c
}

// Name implements hclog.Logger.
func (l *hclogSlog) Name() string { return l.name }

// Named implements hclog.Logger.
func (l *hclogSlog) Named(name string) hclog.Logger {
	c := *l
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	return &c
}

// ResetNamed implements hclog.Logger.
func (l *hclogSlog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	return &c
}

// SetLevel implements hclog.Logger.
func (l *hclogSlog) SetLevel(level hclog.Level) { l.level.Store(int32(level)) }

// GetLevel implements hclog.Logger.
func (l *hclogSlog) GetLevel() hclog.Level { return hclog.Level(l.level.Load()) }

// StandardLogger implements hclog.Logger.
func (l *hclogSlog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

// StandardWriter implements hclog.Logger: every line written is one
// record, at opts.ForceLevel, else (InferLevels) the level its [ERROR],
// [WARN], [INFO], [DEBUG] or [TRACE] prefix names, else Info.
func (l *hclogSlog) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return &stdWriter{l: l, opts: *opts}
}

type stdWriter struct {
	l    *hclogSlog
	opts hclog.StandardLoggerOptions
}

func (w *stdWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		msg := strings.TrimRight(string(line), "\r\n")
		if msg == "" {
			continue
		}
		level := hclog.Info
		if w.opts.ForceLevel != hclog.NoLevel {
			level = w.opts.ForceLevel
		} else if w.opts.InferLevels {
			level, msg = inferLevel(msg)
		}
		w.l.emit(3, level, msg, nil)
	}
	return len(p), nil
}

// inferLevel reads a level prefix such as "[WARN] " off msg.
func inferLevel(msg string) (hclog.Level, string) {
	for _, p := range []struct {
		prefix string
		level  hclog.Level
	}{{"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error}, {"[WARN]", hclog.Warn}, {"[INFO]", hclog.Info},
		{"[DEBUG]", hclog.Debug}, {"[TRACE]", hclog.Trace}} {
		if rest, ok := strings.CutPrefix(msg, p.prefix); ok {
			return p.level, strings.TrimSpace(rest)
		}
	}
	return hclog.Info, msg
}
