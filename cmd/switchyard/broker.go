package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/mqttpubsub/embedded"
	"github.com/switchyard-go/switchyard/processor"
)

// brokerCommand runs the embedded MQTT broker in the foreground.
func brokerCommand() *cli.Command {
	var listen, users, logLevel, dataDir string
	var syncWrites bool
	var maxInflight, maxSessionMessages int
	var maxSessionBytes int64
	return &cli.Command{
		Name:      "broker",
		Usage:     "run an MQTT broker in this process, for development, demos and tests",
		UsageText: "switchyard broker [--listen 127.0.0.1:1883] [--users FILE] [--data-dir DIR]",
		Description: "Runs an MQTT 3.1.1/5 broker (mochi-mqtt) until SIGINT or SIGTERM, and prints one line when it\n" +
			"accepts connections. Sessions, subscriptions and queued messages are kept on disk in --data-dir\n" +
			"(default: a directory per listen address under the user cache directory), so a restart loses\n" +
			"nothing; --data-dir \"\" keeps them in memory only, as does a listen port of 0 unless --data-dir\n" +
			"is given. When a session's queue is full a publish is refused (its sender sees the failure),\n" +
			"never accepted and dropped. Without --users every client may connect anonymously; with it, only\n" +
			"the users of FILE, one \"name:password\" per line ('#' starts a comment). Processors reach it with\n" +
			"--pubsub-backend mqtt --mqtt-host and --mqtt-port.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Aliases: []string{"l"}, Value: embedded.DefaultListen, Usage: "TCP address to listen on, host:port (port 0 picks a free one)", Destination: &listen},
			&cli.StringFlag{Name: "users", Usage: "users file of \"name:password\" lines; without it clients connect anonymously", Destination: &users},
			&cli.StringFlag{Name: "data-dir", EnvVars: []string{"SWITCHYARD_BROKER_DATA_DIR"}, Usage: "directory that keeps sessions and messages across restarts; \"\" keeps them in memory (default: per listen address under the user cache directory)", Destination: &dataDir},
			&cli.BoolFlag{Name: "sync-writes", Usage: "write each accepted message to disk (fsync) before acknowledging it, so it survives a machine crash", Destination: &syncWrites},
			&cli.IntFlag{Name: "max-inflight", Value: embedded.DefaultMaxInflight, Usage: fmt.Sprintf("messages handed to a client and not yet acknowledged (at most %d)", embedded.MaxInflightLimit), Destination: &maxInflight},
			&cli.IntFlag{Name: "max-session-messages", Value: embedded.DefaultMaxSessionMessages, Usage: "QoS 1/2 messages one session (or shared-subscription group) may queue; beyond it publishes are refused", Destination: &maxSessionMessages},
			&cli.Int64Flag{Name: "max-session-bytes", Value: embedded.DefaultMaxSessionBytes, Usage: "bytes of messages one session may queue; beyond it publishes are refused", Destination: &maxSessionBytes},
			&cli.StringFlag{Name: "log-level", EnvVars: []string{"LOG_LEVEL"}, Value: "warn", Usage: "broker log level: debug, info, warn or error", Destination: &logLevel},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return processor.Usagef("unexpected argument %q", c.Args().First())
			}
			switch strings.ToLower(logLevel) {
			case "debug", "info", "warn", "error":
			default:
				return processor.Usagef("--log-level %q is not one of debug, info, warn, error", logLevel)
			}
			port, err := listenPort(listen)
			if err != nil {
				return err
			}
			cfg := embedded.Config{
				Listen: listen, UsersFile: users, Logger: processor.NewLogger(c.App.ErrWriter, logLevel),
				SyncWrites: syncWrites, MaxInflight: maxInflight, MaxSessionMessages: maxSessionMessages, MaxSessionBytes: maxSessionBytes,
			}
			switch {
			case c.IsSet("data-dir") && dataDir == "":
				cfg.InMemory = true
			case c.IsSet("data-dir"):
				cfg.DataDir = dataDir
			case port == 0:
				cfg.InMemory = true
			default:
				base, err := embedded.DefaultDataDir()
				if err != nil {
					return fmt.Errorf("finding a data directory (set --data-dir): %w", err)
				}
				cfg.DataDir = filepath.Join(base, strings.NewReplacer(":", "-", "[", "", "]", "").Replace(listen))
			}
			if err := cfg.Validate(); err != nil {
				return &processor.UsageError{Err: err}
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBroker(ctx, c, cfg)
		},
	}
}

// listenPort checks a --listen address and returns its port.
func listenPort(listen string) (int, error) {
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		return 0, processor.Usagef("--listen %q is not host:port", listen)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, processor.Usagef("--listen %q: port must be between 0 and 65535", listen)
	}
	return port, nil
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
	store := "in memory only"
	if !cfg.InMemory {
		store = "data in " + b.DataDir()
	}
	fmt.Fprintf(c.App.Writer, "broker: listening on %s (%s, %s)\n", b.Addr(), auth, store)
	select {
	case <-ctx.Done():
	case <-b.Done():
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("stopping the broker: %w", err)
	}
	return nil
}
