package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/mqttpubsub/embedded"
	"github.com/switchyard-go/switchyard/processor"
)

// brokerCommand runs the embedded MQTT broker in the foreground.
func brokerCommand() *cli.Command {
	var listen, users, logLevel string
	return &cli.Command{
		Name:      "broker",
		Usage:     "run an MQTT broker in this process, for development and tests",
		UsageText: "switchyard broker [--listen 127.0.0.1:1883] [--users FILE]",
		Description: "Runs an MQTT 3.1.1/5 broker (mochi-mqtt) until SIGINT or SIGTERM, and prints one line when it\n" +
			"accepts connections. Sessions and messages are kept in memory only. Without --users every\n" +
			"client may connect anonymously; with it, only the users of FILE, one \"name:password\" per line\n" +
			"('#' starts a comment). Processors reach it with --pubsub-backend mqtt --mqtt-host and --mqtt-port.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Aliases: []string{"l"}, Value: embedded.DefaultListen, Usage: "TCP address to listen on, host:port (port 0 picks a free one)", Destination: &listen},
			&cli.StringFlag{Name: "users", Usage: "users file of \"name:password\" lines; without it clients connect anonymously", Destination: &users},
			&cli.StringFlag{Name: "log-level", EnvVars: []string{"LOG_LEVEL"}, Value: "warn", Usage: "broker log level: debug, info, warn or error", Destination: &logLevel},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return processor.Usagef("unexpected argument %q", c.Args().First())
			}
			switch logLevel {
			case "debug", "info", "warn", "error":
			default:
				return processor.Usagef("--log-level %q is not one of debug, info, warn, error", logLevel)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBroker(ctx, c, embedded.Config{Listen: listen, UsersFile: users, Logger: processor.NewLogger(c.App.ErrWriter, logLevel)})
		},
	}
}

// runBroker starts the broker, says where it listens, and serves until ctx
// is done.
func runBroker(ctx context.Context, c *cli.Context, cfg embedded.Config) error {
	b, err := embedded.Start(ctx, cfg)
	if err != nil {
		return err
	}
	auth := "anonymous access"
	if cfg.UsersFile != "" {
		auth = "users from " + cfg.UsersFile
	}
	fmt.Fprintf(c.App.Writer, "broker: listening on %s (%s)\n", b.Addr(), auth)
	select {
	case <-ctx.Done():
	case <-b.Done():
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("stopping the broker: %w", err)
	}
	return nil
}
