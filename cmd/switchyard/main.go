// Command switchyard is the operator's tool for a switchyard deployment:
// publish JSON messages from stdin, tail a queue to stdout, run an embedded
// MQTT broker, and run benchmarks. Every command takes the same backend flags
// as the processors (--pubsub-backend, --pulsar-host, --mqtt-host, ...).
//
// Exit status: 0 on success, 2 for a usage mistake (unknown command or
// flag, bad flag value), 128+N when signal N (SIGINT 130, SIGTERM 143)
// stopped a command before it finished its work, 1 for any other failure.
// A failure is reported as one line on stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/processor"
)

func main() {
	ctx, stop := signalContext(context.Background())
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalContext returns a context that is cancelled on the first SIGINT or
// SIGTERM, with a *signalError as its cause so that the exit status can say
// which signal it was. After the first signal the handler is removed: a
// second one ends the process at once. stop releases the handler.
func signalContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			if sig, ok := s.(syscall.Signal); ok {
				cancel(&signalError{sig: sig})
				return
			}
			cancel(fmt.Errorf("stopped by %v", s))
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		<-finished
		cancel(nil)
	}
}

// signalError is the cancellation cause of a context that a signal ended.
type signalError struct{ sig syscall.Signal }

func (e *signalError) Error() string { return "stopped by " + signalName(e.sig) }

// exitCode is the conventional status of a process that a signal ended.
func (e *signalError) exitCode() int { return 128 + int(e.sig) }

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// stoppedBy returns the signal that cancelled ctx, or nil if none did.
func stoppedBy(ctx context.Context) *signalError {
	var s *signalError
	if errors.As(context.Cause(ctx), &s) {
		return s
	}
	return nil
}

// reportedError is a failure that the command has already reported on
// stderr (publish's summary line): run prints nothing more and exits with
// the status of the wrapped error.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

// run executes the CLI and returns the exit status: 0 on success, 2 for a
// usage mistake, 128+N when signal N stopped a command before it finished,
// 1 for any other failure (reported as one line on stderr).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var secrets []string
	var notFound error
	app := &cli.App{
		Name:      "switchyard",
		Usage:     "publish to, tail and benchmark switchyard queues on any backend",
		Version:   processor.Version(),
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// The help command stays: `switchyard help publish` shows the help
		// of publish, as `switchyard publish --help` does.
		Suggest:        true,
		OnUsageError:   processor.UsageErrorHandler(),
		ExitErrHandler: func(*cli.Context, error) {},
		// An unknown command (`switchyard publsh`, `switchyard help publsh`)
		// reaches the help action, which calls this; the error is returned
		// by run below.
		CommandNotFound: func(c *cli.Context, name string) {
			notFound = unknownCommand(c.App.VisibleCommands(), name)
		},
		Commands: commands(&secrets),
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		err = notFound
	}
	if err == nil {
		return 0
	}
	err = processor.NameEnvSource(err, args[1:], commandFlags(app, args[1:]))
	// bench reads its token itself, and a command may fail before it has
	// added its secrets: redact the secret variables' values too.
	secrets = append(secrets, os.Getenv("PULSAR_API_KEY"), os.Getenv("MQTT_PASSWORD"))
	var reported *reportedError
	if !errors.As(err, &reported) {
		fmt.Fprintf(stderr, "switchyard: %s\n", processor.Redact(processor.OneLine(err.Error()), secrets...))
	}
	var sig *signalError
	if errors.As(err, &sig) {
		return sig.exitCode()
	}
	return processor.ExitCode(err)
}

// commands returns the CLI's commands. Each adds the secrets of its
// configuration to *secrets before it connects, so that run can redact them.
func commands(secrets *[]string) []*cli.Command {
	cmds := []*cli.Command{publishCommand(secrets), tailCommand(secrets)}
	cmds = append(cmds, extraCommands()...)
	for _, c := range cmds {
		c.OnUsageError = processor.UsageErrorHandler()
	}
	return cmds
}

// unknownCommand is the usage error for a command name that is not one of
// cmds, with the closest name as a suggestion when one is close enough.
func unknownCommand(cmds []*cli.Command, name string) error {
	var names []string
	for _, c := range cmds {
		for _, n := range c.Names() {
			if len(n) > 1 { // "h" would be suggested for any one letter
				names = append(names, n)
			}
		}
	}
	if s := closest(names, name); s != "" {
		return processor.Usagef("unknown command %q (did you mean %q?)", name, s)
	}
	return processor.Usagef("unknown command %q (commands: %s)", name, strings.Join(commandNames(cmds), ", "))
}

func commandNames(cmds []*cli.Command) []string {
	names := make([]string, 0, len(cmds))
	for _, c := range cmds {
		names = append(names, c.Name)
	}
	return names
}

// closest returns the name of names nearest to s in edit distance, if s is
// a prefix of it or at most a third of its letters (and at least one) away;
// otherwise "".
func closest(names []string, s string) string {
	best, bestDist := "", -1
	for _, n := range names {
		d := editDistance(strings.ToLower(s), n)
		if len(s) >= 2 && strings.HasPrefix(n, strings.ToLower(s)) {
			d = 0
		}
		limit := len(n) / 3
		if limit < 1 {
			limit = 1
		}
		if d <= limit && (bestDist < 0 || d < bestDist) {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the number of single-letter insertions, deletions,
// substitutions and swaps of neighbours that turn a into b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j] is the distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// commandFlags returns the flags of the command that args run.
func commandFlags(app *cli.App, args []string) []cli.Flag {
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if c := app.Command(a); c != nil {
			return c.Flags
		}
		break
	}
	return app.Flags
}
