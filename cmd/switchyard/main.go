// Command switchyard is the operator's tool for a switchyard deployment:
// publish JSON messages from stdin, tail a queue to stdout, run an embedded
// MQTT broker, and run benchmarks. Every command takes the same backend flags
// as the processors (--pubsub-backend, --pulsar-host, --mqtt-host, ...).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/processor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the exit status: 0 on success, 2 for a
// usage mistake, 1 for any other failure (reported as one line on stderr).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:            "switchyard",
		Usage:           "publish to, tail and benchmark switchyard queues on any backend",
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		OnUsageError:    processor.UsageErrorHandler(),
		ExitErrHandler:  func(*cli.Context, error) {},
		Commands:        commands(),
	}
	var secrets []string
	app.Before = func(*cli.Context) error { return nil }
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	secrets = append(secrets, os.Getenv("PULSAR_API_KEY"), os.Getenv("MQTT_PASSWORD"))
	fmt.Fprintf(stderr, "switchyard: %s\n", processor.Redact(err.Error(), secrets...))
	return processor.ExitCode(err)
}

func commands() []*cli.Command {
	cmds := []*cli.Command{publishCommand(), tailCommand()}
	cmds = append(cmds, extraCommands()...)
	for _, c := range cmds {
		c.OnUsageError = processor.UsageErrorHandler()
	}
	return cmds
}
