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

// flags returns the flags that configure cfg: the log level and the backend.
func (cfg *clientConfig) flags() []cli.Flag {
	return append([]cli.Flag{processor.LogLevelFlag(&cfg.logLevel)}, backend.Flags(&cfg.backend)...)
}

// connect validates cfg and connects to its backend, logging to the
// command's error writer at the configured level.
func connect(ctx context.Context, c *cli.Context, cfg *clientConfig) (router.Backend, error) {
	if err := cfg.backend.Validate(); err != nil {
		return nil, &processor.UsageError{Err: err}
	}
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
