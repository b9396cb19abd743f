package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/router"
)

// Processor describes one processor binary.
type Processor struct {
	// Name is the binary name and the default processor id.
	Name string
	// Usage is the one-line description shown by --help.
	Usage string
	// Handlers are the processor's handlers with their default queues; each
	// queue becomes a flag.
	Handlers []Handler
	// Flags are the processor's own further flags, added to the common ones.
	Flags []cli.Flag
	// Setup, if set, runs after the handlers are registered, to read the
	// processor's own flags from c or register more handlers. An error that
	// wraps schema.ErrInvalidTopic, or a UsageError, exits with status 2;
	// any other exits with status 1.
	Setup func(c *cli.Context, r *router.Router) error
}

// Config is everything a processor is configured with.
type Config struct {
	// ID names the processor: the default subscription (consumer group)
	// name and the "processor" label of its metrics. Default: the binary name.
	ID string
	// LogLevel is debug, info, warn or error, in any case.
	LogLevel string
	// MetricsAddr is where /metrics, /healthz and /readyz are served
	// (host:port); empty turns them off.
	MetricsAddr string
	// StatsInterval, if positive, logs a stats line at this interval.
	StatsInterval time.Duration
	// Router says how handlers consume.
	Router router.Config
	// Backend selects and reaches the broker.
	Backend backend.Config
}

// Defaults of the processor flags.
const (
	DefaultLogLevel    = "info"
	DefaultMetricsAddr = ":8000"
	// ProgressInterval is how often a slow connection is reported.
	ProgressInterval = 5 * time.Second
)

// Flags returns the common flags of every processor, bound to cfg: its id,
// logging, concurrency, draining, endpoints, and the backend flags.
func Flags(cfg *Config) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "id", Aliases: []string{"i"}, Usage: "processor id; also the subscription (consumer group) name (default: the binary name)", Destination: &cfg.ID},
		LogLevelFlag(&cfg.LogLevel),
		&cli.IntFlag{Name: "concurrency", EnvVars: []string{"CONCURRENCY"}, Value: router.DefaultConcurrency, Destination: &cfg.Router.Concurrency,
			Usage: "messages each handler handles at once; no more are taken from the broker while all slots are busy"},
		&cli.DurationFlag{Name: "drain-timeout", EnvVars: []string{"DRAIN_TIMEOUT"}, Value: router.DefaultDrainTimeout, Destination: &cfg.Router.DrainTimeout,
			Usage: "on SIGINT/SIGTERM, how long in-flight messages may take to finish"},
		&cli.StringFlag{Name: "metrics-addr", EnvVars: []string{"METRICS_ADDR"}, Value: DefaultMetricsAddr, Destination: &cfg.MetricsAddr,
			Usage: "host:port serving /metrics (Prometheus), /healthz and /readyz; empty turns them off"},
		&cli.DurationFlag{Name: "stats-interval", EnvVars: []string{"STATS_INTERVAL"}, Destination: &cfg.StatsInterval,
			Usage: "log a stats line at this interval (0: only at exit)"},
	}
	return append(flags, backend.Flags(&cfg.Backend)...)
}

// LogLevelFlag returns the --log-level flag bound to level.
func LogLevelFlag(level *string) cli.Flag {
	return &cli.StringFlag{Name: "log-level", Aliases: []string{"l"}, EnvVars: []string{"LOG_LEVEL"}, Value: DefaultLogLevel,
		Usage: strings.Join(logLevels, ", ") + " (any case)", Destination: level}
}

// Validate reports the first invalid setting as a one-line error.
func (c Config) Validate() error {
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.StatsInterval < 0 {
		return fmt.Errorf("--stats-interval must not be negative, got %s", c.StatsInterval)
	}
	if c.Router.Concurrency < 1 {
		return fmt.Errorf("--concurrency must be at least 1, got %d", c.Router.Concurrency)
	}
	if err := c.Router.Validate(); err != nil {
		return err
	}
	return c.Backend.Validate()
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
	handlers := append([]Handler(nil), p.Handlers...)
	flags := append(Flags(&cfg), queueFlags(handlers)...)
	flags = append(flags, p.Flags...)
	app := &cli.App{
		Name:            p.Name,
		Usage:           p.Usage,
		Version:         Version(),
		Flags:           flags,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Suggest:         true,
		OnUsageError:    UsageErrorHandler(),
		ExitErrHandler:  func(*cli.Context, error) {},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return Usagef("unexpected argument %q", c.Args().First())
			}
			if cfg.ID == "" {
				cfg.ID = p.Name
			}
			return p.serve(ctx, c, cfg, handlers, stderr)
		},
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	err = nameEnvSource(err, args[1:], flags)
	fmt.Fprintf(stderr, "%s: %s\n", p.Name, Redact(OneLine(err.Error()), cfg.Backend.Secrets()...))
	return ExitCode(err)
}

func (p Processor) serve(ctx context.Context, c *cli.Context, cfg Config, handlers []Handler, stderr io.Writer) error {
	// Validate what the flags gave before SetDefaults, which would replace
	// an explicit zero (--mqtt-port 0) with the default.
	if err := cfg.Validate(); err != nil {
		return &UsageError{Err: err}
	}
	cfg.Router.ID = cfg.ID
	cfg.Backend.ClientName = cfg.ID
	cfg.Backend.Debug = strings.EqualFold(cfg.LogLevel, "debug")
	cfg.Backend.SetDefaults()
	log := NewLogger(stderr, cfg.LogLevel)
	wmLogger := WatermillLogger(log)
	start := time.Now()

	// Parse the queues before connecting: a bad name is a usage error
	// whether or not the broker is there.
	if err := parseQueues(handlers); err != nil {
		return err
	}

	b, err := Connect(ctx, cfg.Backend, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := b.Close(); err != nil {
			log.Error("closing backend", "error", Redact(err.Error(), cfg.Backend.Secrets()...))
		}
	}()
	r, err := router.New(cfg.Router, b, wmLogger)
	if err != nil {
		return err
	}
	if err := registerAll(r, handlers); err != nil {
		return err
	}
	if p.Setup != nil {
		if err := p.Setup(c, r); err != nil {
			return err
		}
	}

	health := backendHealth(b)
	ready := &readiness{health: health}
	metricsAt := "off"
	if cfg.MetricsAddr != "" {
		m := newMetrics(cfg.ID, Version(), b.Name(), r, health)
		r.Observe(m)
		e, err := serveEndpoints(cfg.MetricsAddr, m.reg, ready.check)
		if err != nil {
			return &UsageError{Err: err}
		}
		defer e.close()
		metricsAt = e.Addr()
	}
	r.OnReady(func() {
		ready.running.Store(true)
		log.Info("ready", "processor", cfg.ID, "version", Version(), "backend", b.Name(),
			"broker", Redact(cfg.Backend.Address(), cfg.Backend.Secrets()...), "metrics", metricsAt,
			"handlers", describeHandlers(r.Handlers()), "startup", time.Since(start).Round(time.Millisecond).String())
	})
	if cfg.StatsInterval > 0 {
		stop := logStats(ctx, log, r, cfg.StatsInterval)
		defer stop()
	}
	runErr := r.Run(ctx)
	ready.running.Store(false)
	select {
	case <-r.Running():
		log.Info("stopped", "processor", cfg.ID, "summary", router.SummaryLine(r.Stats()))
	default:
		// It never ran: the error, printed by the caller, is the one line.
	}
	return runErr
}

// Connect connects to the backend cfg names. While the connection takes
// long it logs a progress line every ProgressInterval.
func Connect(ctx context.Context, cfg backend.Config, log *slog.Logger) (router.Backend, error) {
	limit := connectLimit(cfg)
	done := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(ProgressInterval)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				log.Info(fmt.Sprintf("still connecting to %s (%s of %s)", Redact(cfg.Address(), cfg.Secrets()...),
					time.Since(start).Round(time.Second), limit))
			}
		}
	}()
	b, err := backend.New(ctx, cfg, WatermillLogger(log))
	close(done)
	<-progressDone
	if err != nil {
		return nil, fmt.Errorf("connecting to %s backend at %s: %w", cfg.Name, Redact(cfg.Address(), cfg.Secrets()...), err)
	}
	return b, nil
}

// connectLimit is the bound the backend puts on connecting, for progress lines.
func connectLimit(cfg backend.Config) time.Duration {
	switch cfg.Name {
	case backend.MQTT:
		if cfg.MQTT.ConnectTimeout > 0 {
			return cfg.MQTT.ConnectTimeout
		}
	case backend.Pulsar:
		if cfg.Pulsar.OperationTimeout > 0 {
			return cfg.Pulsar.OperationTimeout
		}
	case backend.RabbitMQ:
		if cfg.RabbitMQ.ConnectTimeout > 0 {
			return cfg.RabbitMQ.ConnectTimeout
		}
	case backend.Kafka:
		if cfg.Kafka.RequestTimeout > 0 {
			return cfg.Kafka.RequestTimeout
		}
	}
	return 30 * time.Second
}

// backendHealth returns the backend's health check, or one that always
// reports healthy for a backend that cannot tell.
func backendHealth(b router.Backend) func() error {
	if h, ok := b.(router.HealthChecker); ok {
		return h.Health
	}
	return func() error { return nil }
}

// describeHandlers formats handlers for the ready line.
func describeHandlers(hs []router.HandlerInfo) string {
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		out := "(sink)"
		if h.Output != nil {
			out = h.Output.String()
		}
		sub := h.Subscription
		if h.Input.Class().Exclusive() {
			sub = "own " + sub + "-*"
		}
		parts = append(parts, fmt.Sprintf("%s: %s -> %s [subscription %s, concurrency %d]", h.Name, h.Input, out, sub, h.Concurrency))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// logStats logs the router's counters every interval until ctx ends or the
// returned stop is called.
func logStats(ctx context.Context, log *slog.Logger, r *router.Router, every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-t.C:
				log.Info("stats", "summary", router.SummaryLine(r.Stats()))
			}
		}
	}()
	return func() { close(done); <-finished }
}
