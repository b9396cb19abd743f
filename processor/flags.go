package router

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Flags returns the command-line flags of every processor, bound to cfg, each
// with its environment variable. Secret flags have no default value, so
// --help never shows a secret.
func Flags(cfg *Config) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{
			Name: "pubsub-backend", EnvVars: []string{"PUBSUB_BACKEND"}, Value: DefaultBackend,
			Usage:       "message broker backend: " + strings.Join(backendNames, ", "),
			Destination: &cfg.Backend,
		},
		&cli.StringFlag{
			Name: "id", Aliases: []string{"i"}, Usage: "processor id; also the subscription (consumer group) name",
			Destination: &cfg.ID,
		},
		&cli.StringFlag{
			Name: "log-level", EnvVars: []string{"LOG_LEVEL"}, Value: DefaultLogLevel,
			Usage: "debug, info, warn or error", Destination: &cfg.LogLevel,
		},
		&cli.IntFlag{
			Name: "concurrency", Value: DefaultConcurrency, Destination: &cfg.Concurrency,
			Usage: "messages handled at once; no more are taken from the broker while all slots are busy",
		},
		&cli.DurationFlag{
			Name: "drain-timeout", Value: DefaultDrainTimeout, Destination: &cfg.DrainTimeout,
			Usage: "on SIGINT/SIGTERM, how long in-flight messages may take to finish",
		},
	}
	flags = append(flags, pulsarFlags(&cfg.Pulsar)...)
	flags = append(flags, mqttFlags(&cfg.MQTT)...)
	return flags
}

// BackendFlags returns the flags that select and reach a backend, without the
// processor-only ones (id, concurrency, drain timeout). The operator CLI uses them.
func BackendFlags(cfg *Config) []cli.Flag {
	var out []cli.Flag
	for _, f := range Flags(cfg) {
		switch f.Names()[0] {
		case "id", "concurrency", "drain-timeout":
			continue
		}
		out = append(out, f)
	}
	return out
}

// UsageError is a configuration mistake: the processor exits with status 2.
type UsageError struct{ Err error }

// Error implements error.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef formats a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}
