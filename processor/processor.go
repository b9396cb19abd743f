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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/flow"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
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
	// Flows, when set, makes a flow processor: these handlers run on the
	// flows the configuration service assigns to --id (see package flow)
	// instead of fixed queues, and Handlers and Setup are not used.
	Flows []flow.Spec
	// FlowSetup, if set, runs before a flow processor connects, to read its
	// own flags from c. Errors exit as Setup's do.
	FlowSetup func(c *cli.Context) error
	// Collectors are the processor's own Prometheus metrics, served on
	// /metrics with the common ones.
	Collectors []prometheus.Collector
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
	// MetricsPort and NoMetrics are TrustGraph's spellings of MetricsAddr
	// (--metrics-port 8000, --no-metrics); they win over it when given.
	MetricsPort int
	NoMetrics   bool
	// ConfigPush is the configuration push queue of a flow processor.
	ConfigPush string
	// ConfigTimeout bounds one configuration request, in seconds.
	ConfigTimeout int
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
		&cli.IntFlag{Name: "max-in-flight", EnvVars: []string{"MAX_IN_FLIGHT"}, Destination: &cfg.Router.MaxInFlight, DefaultText: fmt.Sprintf("%d; on Pulsar --pulsar-receiver-queue-size (%d); at least --concurrency", router.DefaultMaxInFlight, pulsarpubsub.DefaultReceiverQueueSize),
			Usage: "inputs of each handler taken and not yet acked: outputs are sent without waiting for the broker and each input is acked once its outputs are confirmed; set it to --concurrency to confirm every output before the next input"},
		&cli.DurationFlag{Name: "drain-timeout", EnvVars: []string{"DRAIN_TIMEOUT"}, Value: router.DefaultDrainTimeout, Destination: &cfg.Router.DrainTimeout,
			Usage: "on SIGINT/SIGTERM, how long in-flight messages may take to finish"},
		&cli.StringFlag{Name: "metrics-addr", EnvVars: []string{"METRICS_ADDR"}, Value: DefaultMetricsAddr, Destination: &cfg.MetricsAddr,
			Usage: "host:port serving /metrics (Prometheus), /healthz and /readyz; empty turns them off"},
		&cli.DurationFlag{Name: "stats-interval", EnvVars: []string{"STATS_INTERVAL"}, Destination: &cfg.StatsInterval,
			Usage: "log a stats line at this interval (0: only at exit)"},
	}
	flags = append(flags, backend.Flags(&cfg.Backend)...)
	return append(flags, trustgraphFlags(cfg)...)
}

// trustgraphFlags accept the command lines of TrustGraph's processors, so a
// switchyard processor can take a Python one's place unchanged.
func trustgraphFlags(cfg *Config) []cli.Flag {
	const cat = "TrustGraph compatibility"
	var ignored string
	var ignoredBool bool
	return []cli.Flag{
		&cli.IntFlag{Name: "metrics-port", Aliases: []string{"P"}, Destination: &cfg.MetricsPort, Category: cat,
			Usage: "serve the endpoints on this port of every interface (TrustGraph's flag; same as --metrics-addr :PORT)"},
		&cli.BoolFlag{Name: "no-metrics", Destination: &cfg.NoMetrics, Category: cat, Usage: "serve no endpoints (same as --metrics-addr \"\")"},
		&cli.BoolFlag{Name: "metrics", Value: true, Destination: &ignoredBool, Category: cat, Usage: "serve the endpoints (the default)"},
		&cli.StringFlag{Name: "config-push-queue", Value: "notify:tg:config", Destination: &cfg.ConfigPush, Category: cat,
			Usage: "configuration push queue of a flow processor"},
		&cli.IntFlag{Name: "config-timeout", Value: int(flow.DefaultTimeout / time.Second), Destination: &cfg.ConfigTimeout, Category: cat,
			Usage: "seconds one configuration request may take"},
		&cli.StringFlag{Name: "pulsar-admin-url", EnvVars: []string{"PULSAR_ADMIN_URL"}, Destination: &ignored, Category: cat,
			Usage: "accepted for compatibility; switchyard creates no topics through it"},
		&cli.BoolFlag{Name: "loki-enabled", Destination: &ignoredBool, Category: cat, Usage: "accepted for compatibility; logs go to stderr"},
		&cli.BoolFlag{Name: "no-loki-enabled", Destination: &ignoredBool, Category: cat, Usage: "accepted for compatibility"},
		&cli.StringFlag{Name: "loki-url", EnvVars: []string{"LOKI_URL"}, Destination: &ignored, Category: cat, Usage: "accepted for compatibility"},
		&cli.StringFlag{Name: "loki-username", EnvVars: []string{"LOKI_USERNAME"}, Destination: &ignored, Category: cat, Usage: "accepted for compatibility"},
		&cli.StringFlag{Name: "loki-password", EnvVars: []string{"LOKI_PASSWORD"}, Destination: &ignored, Category: cat, Usage: "accepted for compatibility; never printed"},
	}
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
	if c.MetricsPort < 0 || c.MetricsPort > 65535 {
		return fmt.Errorf("--metrics-port must be between 0 and 65535, got %d", c.MetricsPort)
	}
	if c.ConfigTimeout < 0 {
		return fmt.Errorf("--config-timeout must not be negative, got %d", c.ConfigTimeout)
	}
	if c.ConfigPush != "" {
		if _, err := schema.ParseTopic(c.ConfigPush); err != nil {
			return fmt.Errorf("--config-push-queue: %w", err)
		}
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
	err = NameEnvSource(err, args[1:], flags)
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
	if p.Flows == nil {
		if err := parseQueues(handlers); err != nil {
			return err
		}
	} else if p.FlowSetup != nil {
		if err := p.FlowSetup(c); err != nil {
			return err
		}
	}
	switch {
	case cfg.NoMetrics:
		cfg.MetricsAddr = ""
	case cfg.MetricsPort > 0:
		cfg.MetricsAddr = fmt.Sprintf(":%d", cfg.MetricsPort)
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
	if p.Flows != nil {
		return p.serveFlows(ctx, cfg, b, log, start)
	}
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
		m, err := newMetrics(cfg.ID, Version(), b.Name(), func() []*router.Router { return []*router.Router{r} }, health, p.Collectors)
		if err != nil {
			return err
		}
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
		stop := logStats(ctx, log, cfg.StatsInterval, func() string { return router.SummaryLine(r.Stats()) })
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
	address := Redact(cfg.Address(), cfg.Secrets()...)
	cfg.OnSlowConnect = func(elapsed, limit time.Duration) {
		log.Info(fmt.Sprintf("still connecting to %s (%s of %s)", address, elapsed.Round(time.Second), limit))
	}
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
		mode := "outputs confirmed before the next input"
		if h.Pipelined {
			mode = fmt.Sprintf("pipelined, %d in flight", h.MaxInFlight)
		}
		parts = append(parts, fmt.Sprintf("%s: %s -> %s [subscription %s, concurrency %d, %s]", h.Name, h.Input, out, sub, h.Concurrency, mode))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// logStats logs summary() every interval until ctx ends or the returned
// stop is called.
func logStats(ctx context.Context, log *slog.Logger, every time.Duration, summary func() string) (stop func()) {
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
				log.Info("stats", "summary", summary())
			}
		}
	}()
	return func() { close(done); <-finished }
}
