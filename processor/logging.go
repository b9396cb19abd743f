package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
)

// Log levels accepted by --log-level, in any case.
var logLevels = []string{"debug", "info", "warn", "error"}

// parseLevel returns the slog level of name, which is one of logLevels in any
// case.
func parseLevel(name string) (slog.Level, error) {
	switch strings.ToLower(name) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level %q is not one of %s", name, strings.Join(logLevels, ", "))
}

// NewLogger returns a text slog logger on w at the named level; an unknown
// level logs at info.
func NewLogger(w io.Writer, level string) *slog.Logger {
	l, err := parseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// WatermillLogger adapts log for watermill components. Watermill's own info
// messages (handler started, subscriber closed) are demoted to debug, so a
// processor at info level logs only what an operator acts on. Lines below
// the logger's level are dropped before their fields are converted: watermill
// logs a trace line for every message, and converting its fields to be
// thrown away costs microseconds per message.
func WatermillLogger(log *slog.Logger) watermill.LoggerAdapter {
	return gatedLogger{
		LoggerAdapter: watermill.NewSlogLoggerWithLevelMapping(log, map[slog.Level]slog.Level{
			slog.LevelInfo: slog.LevelDebug,
		}),
		log: log,
	}
}

// gatedLogger skips the lines log would drop anyway.
type gatedLogger struct {
	watermill.LoggerAdapter
	log *slog.Logger
}

func (g gatedLogger) enabled(l slog.Level) bool { return g.log.Enabled(context.Background(), l) }

// Info logs watermill's info line at debug level, if debug is enabled.
func (g gatedLogger) Info(msg string, fields watermill.LogFields) {
	if g.enabled(slog.LevelDebug) {
		g.LoggerAdapter.Info(msg, fields)
	}
}

// watermillStopLine is what watermill logs as an error when every handler
// stopped: the router stops its handlers itself when it drains, so for a
// processor the line is routine.
const watermillStopLine = "All handlers stopped, closing router"

// Error logs at error level, except watermill's routine stop line, which
// goes to debug.
func (g gatedLogger) Error(msg string, err error, fields watermill.LogFields) {
	if msg == watermillStopLine {
		if g.enabled(slog.LevelDebug) {
			g.LoggerAdapter.Debug(msg, fields)
		}
		return
	}
	g.LoggerAdapter.Error(msg, err, fields)
}

// Debug logs at debug level, if enabled.
func (g gatedLogger) Debug(msg string, fields watermill.LogFields) {
	if g.enabled(slog.LevelDebug) {
		g.LoggerAdapter.Debug(msg, fields)
	}
}

// Trace logs at watermill's trace level, if enabled.
func (g gatedLogger) Trace(msg string, fields watermill.LogFields) {
	if g.enabled(watermill.LevelTrace) {
		g.LoggerAdapter.Trace(msg, fields)
	}
}

// With returns a gated logger that adds fields to every line.
func (g gatedLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return gatedLogger{LoggerAdapter: g.LoggerAdapter.With(fields), log: g.log.With(slogArgs(fields)...)}
}

func slogArgs(fields watermill.LogFields) []any {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return args
}

// lookupEnv is os.LookupEnv that treats an empty value as unset, as
// urfave/cli does.
func lookupEnv(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	return v, ok && v != ""
}
