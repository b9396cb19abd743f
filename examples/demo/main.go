// Command demo runs the example pipeline end to end and checks that every
// request is answered: it sends prompt requests through prompt-template and
// echo-llm and waits for one correct reply per request, matched by the id
// property. Its last line is
//
//	demo: <N> requests, <N> replies, 0 lost in <duration>
//
// and it exits non-zero if any reply is missing or wrong.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/processor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var opts options
	app := &cli.App{
		Name:            "demo",
		Usage:           "send prompt requests through prompt-template and echo-llm and check every reply",
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError:    processor.UsageErrorHandler(),
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "requests", Aliases: []string{"n"}, Value: 1000, Usage: "how many requests to send", Destination: &opts.requests},
			&cli.StringFlag{Name: "mode", Value: modeProcesses, Usage: "inprocess (memory backend, one process) or processes (embedded MQTT broker, one process per processor)", Destination: &opts.mode},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "how long to wait for all replies", Destination: &opts.timeout},
			&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "messages each processor handles at once", Destination: &opts.concurrency},
			&cli.StringFlag{Name: "bin", Usage: "directory with the built binaries (processes mode); built with go build when empty", Destination: &opts.binDir},
		},
		Action: func(c *cli.Context) error {
			if opts.requests < 1 {
				return processor.Usagef("--requests must be at least 1, got %d", opts.requests)
			}
			var res result
			var err error
			switch opts.mode {
			case modeInProcess:
				res, err = runInProcess(c.Context, opts, stderr)
			case modeProcesses:
				res, err = runProcesses(c.Context, opts, stderr)
			default:
				return processor.Usagef("--mode %q must be %s or %s", opts.mode, modeInProcess, modeProcesses)
			}
			if err != nil {
				return err
			}
			// Printed last, after every process was stopped.
			fmt.Fprintln(stdout, res)
			return nil
		},
	}
	if err := app.RunContext(ctx, args); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		if ctx.Err() != nil {
			// Interrupted: the shell's convention for SIGINT.
			return 130
		}
		return processor.ExitCode(err)
	}
	return 0
}

const (
	modeInProcess = "inprocess"
	modeProcesses = "processes"
)

type options struct {
	requests    int
	mode        string
	timeout     time.Duration
	concurrency int
	binDir      string
}
