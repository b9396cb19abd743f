package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/schema"
)

// Processor describes one processor binary.
type Processor struct {
	// Name is the binary name and the default processor id.
	Name string
	// Usage is the one-line description shown by --help.
	Usage string
	// Flags are the processor's own flags, added to the common ones.
	Flags []cli.Flag
	// Setup registers the processor's handlers. It may read its own flags
	// from c. An error that wraps schema.ErrInvalidTopic, or a UsageError,
	// exits with status 2; any other exits with status 1.
	Setup func(c *cli.Context, r *Router) error
}

// Main runs the processor with the process arguments and exits: 0 after a
// clean stop on SIGINT or SIGTERM, 2 for a configuration mistake, 1 for any
// other failure, each failure as one line on stderr.
func (p Processor) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := p.Run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run is Main without the signal handling and the exit: it runs until ctx is
// cancelled and returns the exit status.
func (p Processor) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg Config
	var secrets []string
	app := &cli.App{
		Name:            p.Name,
		Usage:           p.Usage,
		Flags:           append(Flags(&cfg), p.Flags...),
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &UsageError{Err: err}
		},
		ExitErrHandler: func(*cli.Context, error) {},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return Usagef("unexpected argument %q", c.Args().First())
			}
			if cfg.ID == "" {
				cfg.ID = p.Name
			}
			secrets = cfg.secrets()
			return p.serve(ctx, c, cfg, stderr)
		},
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %s\n", p.Name, Redact(oneLine(err.Error()), secrets...))
	return ExitCode(err)
}

// ExitCode maps an error to a process exit status: 2 for configuration
// mistakes (UsageError, an invalid queue name), 1 otherwise, 0 for nil.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var u *UsageError
	if errors.As(err, &u) || errors.Is(err, schema.ErrInvalidTopic) {
		return 2
	}
	return 1
}

func (p Processor) serve(ctx context.Context, c *cli.Context, cfg Config, stderr io.Writer) error {
	// Validate what the flags gave before SetDefaults, which would replace
	// an explicit zero (--mqtt-port 0, --concurrency 0) with the default.
	if err := cfg.Validate(); err != nil {
		return &UsageError{Err: err}
	}
	cfg.SetDefaults()
	log := NewLogger(stderr, cfg.LogLevel)
	wmLogger := WatermillLogger(log)
	start := time.Now()

	backend, err := NewBackend(ctx, cfg, wmLogger)
	if err != nil {
		return fmt.Errorf("connecting to %s backend: %w", cfg.Backend, err)
	}
	defer func() {
		if err := backend.Close(); err != nil {
			log.Error("closing backend", "error", Redact(err.Error(), cfg.secrets()...))
		}
	}()
	r, err := New(cfg, backend, wmLogger)
	if err != nil {
		return err
	}
	if p.Setup != nil {
		if err := p.Setup(c, r); err != nil {
			return err
		}
	}
	r.onReady = func() {
		log.Info("ready", "processor", cfg.ID, "backend", cfg.Backend, "concurrency", cfg.Concurrency, "startup", time.Since(start).Round(time.Millisecond).String())
	}
	runErr := r.Run(ctx)
	select {
	case <-r.Running():
		log.Info("stopped", "processor", cfg.ID, "summary", SummaryLine(r.Stats()))
	default:
		// It never ran: the error, printed by the caller, is the one line.
	}
	return runErr
}

func (c Config) secrets() []string {
	return []string{c.Pulsar.APIKey, c.MQTT.Password}
}

// Redact replaces every non-empty secret in s with "***".
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// NewLogger returns a text slog logger on w at the named level.
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
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
