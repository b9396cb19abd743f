package main

import (
	"context"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// connect validates cfg and connects to its backend, logging to the
// command's error writer at the configured level.
func connect(ctx context.Context, c *cli.Context, cfg *router.Config) (router.Backend, error) {
	if cfg.ID == "" {
		cfg.ID = "switchyard"
	}
	// The commands have no --concurrency or --drain-timeout flags.
	cfg.Concurrency, cfg.DrainTimeout = router.DefaultConcurrency, router.DefaultDrainTimeout
	// Validate the flag values before SetDefaults replaces explicit zeros.
	if err := cfg.Validate(); err != nil {
		return nil, &router.UsageError{Err: err}
	}
	cfg.SetDefaults()
	return router.NewBackend(ctx, *cfg, logger(c, cfg))
}

func logger(c *cli.Context, cfg *router.Config) watermill.LoggerAdapter {
	return router.WatermillLogger(router.NewLogger(c.App.ErrWriter, cfg.LogLevel))
}

// parseTopicFlag parses the value of a command's --topic flag. The flag is
// checked here rather than marked required, so that a missing one is a
// usage error like every other bad flag.
func parseTopicFlag(topic string) (schema.Topic, error) {
	if topic == "" {
		return schema.Topic{}, router.Usagef("--topic is required")
	}
	return schema.ParseTopic(topic)
}
