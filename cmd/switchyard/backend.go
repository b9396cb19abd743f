package main

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// clientConfig is what publish and tail are configured with.
type clientConfig struct {
	logLevel string
	backend  backend.Config
}

// errMemoryBackend explains why publish and tail refuse the memory backend.
const errMemoryBackend = "the memory backend lives inside one process; publish and tail need a broker: " +
	"use --pubsub-backend pulsar, mqtt, rabbitmq or kafka (`switchyard broker` runs an MQTT one)"

// flags returns the flags that configure cfg: the log level and the backend.
func (cfg *clientConfig) flags() []cli.Flag {
	flags := append([]cli.Flag{processor.LogLevelFlag(&cfg.logLevel)}, backend.Flags(&cfg.backend)...)
	for _, f := range flags {
		// Publish and tail reach a broker: the memory backend is no choice.
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == "pubsub-backend" {
			sf.Usage = "message broker backend: " + strings.Join(brokerBackends(), ", ") + " (any case)"
		}
	}
	return flags
}

// brokerBackends are the backends that reach a broker: every one but memory.
func brokerBackends() []string {
	var out []string
	for _, n := range backend.Names() {
		if n != backend.Memory {
			out = append(out, n)
		}
	}
	return out
}

// validate checks the backend settings and normalises them. It is a usage
// error to name the memory backend, which cannot carry messages between
// processes.
func (cfg *clientConfig) validate() error {
	switch strings.ToLower(cfg.logLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		return processor.Usagef("--log-level %q is not one of debug, info, warn, error", cfg.logLevel)
	}
	if err := cfg.backend.Validate(); err != nil {
		return &processor.UsageError{Err: err}
	}
	given := cfg.backend.Name
	// After Validate, so that an explicit zero is reported, not defaulted.
	cfg.backend.SetDefaults()
	if cfg.backend.Name == backend.Memory {
		return processor.Usagef("--pubsub-backend %q: %s", given, errMemoryBackend)
	}
	return nil
}

// connect connects to the backend of cfg, which validate has checked,
// logging to the command's error writer at the configured level.
func connect(ctx context.Context, c *cli.Context, cfg *clientConfig) (router.Backend, error) {
	cfg.backend.ClientName = "switchyard-" + c.Command.Name
	cfg.backend.Debug = strings.EqualFold(cfg.logLevel, "debug")
	return processor.Connect(ctx, cfg.backend, processor.NewLogger(c.App.ErrWriter, cfg.logLevel))
}

// parseTopicFlag parses the value of a command's --topic flag. The flag is
// checked here rather than marked required, so that a missing one is a
// usage error like every other bad flag.
func parseTopicFlag(topic string) (schema.Topic, error) {
	if topic == "" {
		return schema.Topic{}, processor.Usagef("--topic is required")
	}
	t, err := schema.ParseTopic(topic)
	if err != nil {
		return schema.Topic{}, &processor.UsageError{Err: err}
	}
	return t, nil
}
