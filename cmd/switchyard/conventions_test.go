package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/processor"
)

// clearBackendEnv unsets the variables the backend flags read, for the
// test's duration.
func clearBackendEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"PUBSUB_BACKEND", "PULSAR_HOST", "PULSAR_API_KEY", "MQTT_HOST", "MQTT_PORT", "MQTT_USERNAME", "MQTT_PASSWORD", "LOG_LEVEL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// runCLI runs the CLI with args and returns its exit status and output.
func runCLI(ctx context.Context, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	var out, errw bytes.Buffer
	code = run(ctx, append([]string{"switchyard"}, args...), stdin, &out, &errw)
	return code, out.String(), errw.String()
}

// oneLine reports whether s is exactly one line.
func oneLine(s string) bool {
	return strings.HasSuffix(s, "\n") && strings.Count(s, "\n") == 1
}

func TestUsageMistakesExitTwoWithOneLine(t *testing.T) {
	clearBackendEnv(t)
	const q = "q1/tg/flow/x"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"publsh"}, `unknown command "publsh" (did you mean "publish"?)`},
		{[]string{"tial", "--topic", q}, `unknown command "tial" (did you mean "tail"?)`},
		{[]string{"help", "publsh"}, `unknown command "publsh" (did you mean "publish"?)`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" (commands: publish, tail, broker, bench, help)`},
		{[]string{"--verbose"}, "unknown flag --verbose (did you mean --version?)"},
		{[]string{"publish", "--topc", q}, "unknown flag --topc (did you mean --topic?)"},
		{[]string{"tail", "--cont", "3"}, "unknown flag --cont (did you mean --count?)"},
		{[]string{"publish"}, "--topic is required"},
		{[]string{"tail"}, "--topic is required"},
		{[]string{"publish", "--topic", "q1/tg/flow/a#b"}, `invalid queue name "q1/tg/flow/a#b"`},
		{[]string{"publish", "--topic", q, "--pubsub-backend", "zeromq"}, `--pubsub-backend "zeromq"`},
		{[]string{"publish", "--topic", q, "--property", "novalue"}, `--property "novalue" must be key=value`},
		{[]string{"publish", "--topic", q, "--batch", "many"}, `--batch "many"`},
		{[]string{"publish", "--topic", q, "--batch", "0"}, "--batch must be at least 1, got 0"},
		{[]string{"publish", "--topic", q, "-m", "{bad"}, `--message "{bad": invalid JSON`},
		{[]string{"publish", "--topic", q, "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"publish", "--topic", q, "extra"}, `unexpected argument "extra"`},
		{[]string{"tail", "--topic", q, "--initial-position", "middle"}, `--initial-position "middle"`},
		{[]string{"tail", "--topic", q, "--count", "-1"}, "--count must not be negative"},
		{[]string{"tail", "--topic", q, "--pubsub-backend", "mqtt", "--mqtt-port", "99999"}, "--mqtt-port must be between 1 and 65535"},
		{[]string{"publish", "--topic", q, "--pubsub-backend", "memory"}, errMemoryBackend},
		{[]string{"tail", "--topic", q, "--pubsub-backend", "Memory"}, `--pubsub-backend "Memory": ` + errMemoryBackend},
	}
	for _, c := range cases {
		code, stdout, stderr := runCLI(context.Background(), strings.NewReader("{}\n"), c.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %q", c.args, code, stderr)
			continue
		}
		if !strings.Contains(stderr, c.want) || !oneLine(stderr) || !strings.HasPrefix(stderr, "switchyard: ") {
			t.Errorf("%v: stderr %q, want one line with %q", c.args, stderr, c.want)
		}
		if stdout != "" {
			t.Errorf("%v: stdout %q, want nothing", c.args, stdout)
		}
	}
}

func TestMemoryBackendFromEnvironmentIsRefused(t *testing.T) {
	clearBackendEnv(t)
	t.Setenv("PUBSUB_BACKEND", "MEMORY")
	code, _, stderr := runCLI(context.Background(), strings.NewReader(""), "publish", "--topic", "q1/tg/flow/x", "-m", "{}")
	if code != 2 || !strings.Contains(stderr, errMemoryBackend) || !oneLine(stderr) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestVersionFlag(t *testing.T) {
	for _, flag := range []string{"--version", "-v"} {
		code, stdout, stderr := runCLI(context.Background(), nil, flag)
		if code != 0 || stdout != "switchyard version "+processor.Version()+"\n" || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", flag, code, stdout, stderr)
		}
	}
}

func TestHelpCommandShowsTheCommandsHelp(t *testing.T) {
	for _, name := range []string{"publish", "tail", "broker", "bench"} {
		for _, args := range [][]string{{"help", name}, {name, "--help"}} {
			code, stdout, stderr := runCLI(context.Background(), nil, args...)
			if code != 0 || stderr != "" {
				t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
			}
			if !strings.Contains(stdout, "switchyard "+name+" - ") || !strings.Contains(stdout, "OPTIONS:") {
				t.Errorf("%v: stdout is not the help of %s:\n%s", args, name, stdout)
			}
		}
	}
}

func TestAppHelpListsTheCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {}} {
		code, stdout, stderr := runCLI(context.Background(), nil, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
		for _, want := range []string{"publish ", "tail ", "broker ", "bench ", "--version"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%v: help lacks %q:\n%s", args, want, stdout)
			}
		}
	}
}

func TestPublishAndTailHelpDoNotOfferTheMemoryBackend(t *testing.T) {
	for _, name := range []string{"publish", "tail"} {
		_, stdout, _ := runCLI(context.Background(), nil, "help", name)
		if !strings.Contains(stdout, "message broker backend: pulsar, mqtt, rabbitmq, kafka (any case)") || strings.Contains(stdout, "memory") {
			t.Errorf("help %s offers the memory backend:\n%s", name, stdout)
		}
	}
}

func TestUnreachablePulsarIsOneLine(t *testing.T) {
	clearBackendEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	code, _, stderr := runCLI(context.Background(), strings.NewReader("{}\n"), "publish", "--topic", "q1/tg/flow/x",
		"--pubsub-backend", "Pulsar", "--pulsar-host", "pulsar://"+addr, "--pulsar-operation-timeout", "2s")
	if code != 1 || !oneLine(stderr) || !strings.Contains(stderr, "cannot be reached") {
		t.Fatalf("exit %d, want 1 with one line saying the broker cannot be reached; stderr:\n%s", code, stderr)
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	clearBackendEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	const secret = "s3cret-pa55word"
	code, _, stderr := runCLI(context.Background(), strings.NewReader("{}\n"), "publish", "--topic", "q1/tg/flow/x",
		"--pubsub-backend", "mqtt", "--mqtt-host", "127.0.0.1", "--mqtt-port", port,
		"--mqtt-username", "u", "--mqtt-password", secret, "--mqtt-connect-timeout", "1s")
	if code != 1 || !oneLine(stderr) || strings.Contains(stderr, secret) {
		t.Fatalf("exit %d, want 1 with one line without the password; stderr:\n%s", code, stderr)
	}
}

// slowRecorder records published messages, and lets a test wait for them.
type slowRecorder struct {
	mu    sync.Mutex
	calls [][]*message.Message
	added chan struct{}
}

func newSlowRecorder() *slowRecorder { return &slowRecorder{added: make(chan struct{}, 1000)} }

func (r *slowRecorder) Publish(_ string, msgs ...*message.Message) error {
	r.mu.Lock()
	r.calls = append(r.calls, append([]*message.Message(nil), msgs...))
	r.mu.Unlock()
	r.added <- struct{}{}
	return nil
}

func (r *slowRecorder) Close() error { return nil }

func (r *slowRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += len(c)
	}
	return n
}

// waitCount waits until n messages were published.
func (r *slowRecorder) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for r.count() < n {
		select {
		case <-r.added:
		case <-deadline:
			t.Fatalf("%d messages published, want %d", r.count(), n)
		}
	}
}

func TestPublishSendsAPartialBatchWithoutWaitingForMoreInput(t *testing.T) {
	rec := newSlowRecorder()
	var errw syncBuffer
	p := publisher{pub: rec, topic: "q1/tg/flow/x", batch: 100, linger: batchLinger, errw: &errw}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- p.run(context.Background(), pr) }()
	if _, err := io.WriteString(pw, "{\"n\":1}\n{\"n\":2}\n"); err != nil {
		t.Fatal(err)
	}
	// The input stays open: the two lines must go out anyway.
	rec.waitCount(t, 2)
	if _, err := io.WriteString(pw, "{\"n\":3}\n"); err != nil {
		t.Fatal(err)
	}
	rec.waitCount(t, 3)
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errw.String(), "publish: 3 confirmed to q1/tg/flow/x, 0 invalid lines, in ") {
		t.Fatalf("summary: %q", errw.String())
	}
}

func TestPublishFillsBatchesFromAFastInput(t *testing.T) {
	rec := newSlowRecorder()
	var errw syncBuffer
	p := publisher{pub: rec, topic: "q1/tg/flow/x", batch: 10, linger: time.Hour, errw: &errw}
	if err := p.run(context.Background(), strings.NewReader(strings.Repeat("{}\n", 25))); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, c := range rec.calls {
		sizes = append(sizes, len(c))
	}
	if fmt.Sprint(sizes) != "[10 10 5]" {
		t.Fatalf("batch sizes %v, want [10 10 5]", sizes)
	}
}

func TestPublishOnSignalSendsWhatWasReadAndExitsWithTheSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(signalName(sig), func(t *testing.T) {
			rec := newSlowRecorder()
			var errw syncBuffer
			// No linger flush and a batch larger than the input: the lines
			// are sent only because of the signal.
			p := publisher{pub: rec, topic: "q1/tg/flow/x", batch: 100, linger: time.Hour, errw: &errw}
			pr, pw := io.Pipe()
			defer pw.Close()
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.run(ctx, pr) }()
			// A pipe write returns once the reader has taken the bytes.
			if _, err := io.WriteString(pw, "{\"n\":1}\n{\"n\":2}\nnot json\n{\"n\":3}\n{\"partial\":"); err != nil {
				t.Fatal(err)
			}
			cancel(&signalError{sig: sig})
			err := <-done
			var got *signalError
			if !errors.As(err, &got) || got.sig != sig {
				t.Fatalf("run returned %v, want the signal", err)
			}
			if rec.count() != 3 {
				t.Fatalf("%d messages published, want 3", rec.count())
			}
			const want = "publish: 3 confirmed to q1/tg/flow/x, 1 invalid lines, in "
			log := errw.String()
			if !strings.Contains(log, want) || !strings.Contains(log, "stopped by "+signalName(sig)) || strings.Contains(log, "partial") {
				t.Fatalf("stderr %q, want %q and the signal", log, want)
			}
		})
	}
}

func TestPublishFailureDuringSignalExitsOne(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	var errw syncBuffer
	p := publisher{pub: failingPublisher{}, topic: "q1/tg/flow/x", batch: 100, linger: time.Hour, errw: &errw}
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, pr) }()
	if _, err := io.WriteString(pw, "{}\n"); err != nil {
		t.Fatal(err)
	}
	cancel(&signalError{sig: syscall.SIGTERM})
	err := <-done
	var sig *signalError
	if err == nil || errors.As(err, &sig) || processor.ExitCode(err) != 1 || !strings.Contains(err.Error(), "broker said no") {
		t.Fatalf("got %v, want the publish failure", err)
	}
}

type failingPublisher struct{}

func (failingPublisher) Publish(string, ...*message.Message) error {
	return fmt.Errorf("broker said no")
}
func (failingPublisher) Close() error { return nil }

func TestRunExitStatusOfASignal(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		if got := (&signalError{sig: c.sig}).exitCode(); got != c.code {
			t.Errorf("%s: exit %d, want %d", signalName(c.sig), got, c.code)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if isTerminal(pr) || isTerminal(strings.NewReader("")) {
		t.Fatal("a pipe or a string is taken for a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "in")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Fatal("a file is taken for a terminal")
	}
}

func TestClosestCommand(t *testing.T) {
	names := []string{"publish", "tail", "broker", "bench", "help"}
	for in, want := range map[string]string{
		"publsh": "publish", "pubish": "publish", "pub": "publish", "PUBLISH": "publish",
		"tial": "tail", "brokr": "broker", "bnech": "bench", "hlep": "help",
		"x": "", "frobnicate": "", "": "",
	} {
		if got := closest(names, in); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}

// newTestTopic returns a queue name no other test uses.
func newTestTopic() string {
	return "q1/tg/cli" + strings.ToLower(watermill.NewShortUUID()[:8]) + "/x"
}

// cliProc is a command run in this process with run, on its own goroutine.
// urfave/cli sets up its shared help command and flag while it parses the
// arguments, so a test starts the next command only once the one before
// has said it is running.
type cliProc struct {
	cancel         context.CancelCauseFunc
	stdout, stderr syncBuffer
	done           chan int
}

func startCLI(t *testing.T, stdin io.Reader, args ...string) *cliProc {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	p := &cliProc{cancel: cancel, done: make(chan int, 1)}
	go func() { p.done <- run(ctx, append([]string{"switchyard"}, args...), stdin, &p.stdout, &p.stderr) }()
	t.Cleanup(func() {
		cancel(nil)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%v did not end after cancel", args)
		}
	})
	return p
}

// waitStderr waits until stderr contains want.
func (p *cliProc) waitStderr(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case code := <-p.done:
			p.done <- code
			t.Fatalf("exited %d before writing %q:\n%s", code, want, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("did not write %q:\n%s", want, p.stderr.String())
		}
	}
}

// wait waits for the exit status.
func (p *cliProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-p.done:
		p.done <- code
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("did not exit:\n%s", p.stderr.String())
		return -1
	}
}

// embeddedBroker starts `switchyard broker` in this process and returns the
// flags that reach it, with the backend name in capitals.
func embeddedBroker(t *testing.T) []string {
	t.Helper()
	clearBackendEnv(t)
	// The broker keeps its data under the user's cache directory: give it
	// one of its own, so that no other broker holds its lock.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	addr, stop := startBrokerCommand(t)
	t.Cleanup(func() { stop() })
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--pubsub-backend", "MQTT", "--mqtt-host", host, "--mqtt-port", port}
}

func TestPublishMessageFlagAndTailInitialPositionWarning(t *testing.T) {
	broker := embeddedBroker(t)
	topic := newTestTopic()
	const warning = "--initial-position has no effect on MQTT"
	explicit := startCLI(t, nil, append([]string{"tail", "--topic", topic, "--count", "1", "--initial-position", "latest"}, broker...)...)
	explicit.waitStderr(t, "tail: subscribed")
	implicit := startCLI(t, nil, append([]string{"tail", "--topic", topic, "--count", "1"}, broker...)...)
	implicit.waitStderr(t, "tail: subscribed")

	// Stdin has a line that -m must leave unread.
	code, _, stderr := runCLI(context.Background(), strings.NewReader("{\"from\":\"stdin\"}\n"),
		append([]string{"publish", "--topic", topic, "-m", `{"prompt":"hi"}`, "--property", "id=abc"}, broker...)...)
	if code != 0 || stderr != "publish: 1 confirmed to "+topic+", 0 invalid lines, in "+strings.TrimPrefix(stderr, "publish: 1 confirmed to "+topic+", 0 invalid lines, in ") {
		t.Fatalf("publish -m: exit %d, stderr %q", code, stderr)
	}
	for _, p := range []*cliProc{explicit, implicit} {
		if code := p.wait(t); code != 0 {
			t.Fatalf("tail exited %d:\n%s", code, p.stderr.String())
		}
		out := p.stdout.String()
		if !oneLine(out) || !strings.Contains(out, `"id":"abc"`) || !strings.Contains(out, `"payload":{"prompt":"hi"}`) {
			t.Fatalf("tail wrote %q", out)
		}
	}
	if n := strings.Count(explicit.stderr.String(), warning); n != 1 {
		t.Fatalf("the warning appears %d times, want once:\n%s", n, explicit.stderr.String())
	}
	if strings.Contains(implicit.stderr.String(), warning) {
		t.Fatalf("warning without --initial-position:\n%s", implicit.stderr.String())
	}
}

func TestPublishOnSignalThroughABroker(t *testing.T) {
	broker := embeddedBroker(t)
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}} {
		t.Run(signalName(c.sig), func(t *testing.T) {
			topic := newTestTopic()
			tail := startCLI(t, nil, append([]string{"tail", "--topic", topic, "--count", "3"}, broker...)...)
			tail.waitStderr(t, "tail: subscribed")
			pr, pw := io.Pipe()
			defer pw.Close()
			pub := startCLI(t, pr, append([]string{"publish", "--topic", topic}, broker...)...)
			for i := 1; i <= 3; i++ {
				if _, err := fmt.Fprintf(pw, "{\"n\":%d}\n", i); err != nil {
					t.Fatal(err)
				}
			}
			// The input is still open: tail gets the lines all the same.
			if code := tail.wait(t); code != 0 {
				t.Fatalf("tail exited %d:\n%s", code, tail.stderr.String())
			}
			if n := strings.Count(tail.stdout.String(), "\n"); n != 3 {
				t.Fatalf("tail got %d messages:\n%s", n, tail.stdout.String())
			}
			pub.cancel(&signalError{sig: c.sig})
			if code := pub.wait(t); code != c.code {
				t.Fatalf("publish exited %d, want %d:\n%s", code, c.code, pub.stderr.String())
			}
			log := pub.stderr.String()
			if !oneLine(log) || !strings.HasPrefix(log, "publish: 3 confirmed to "+topic+", 0 invalid lines, in ") ||
				!strings.Contains(log, "stopped by "+signalName(c.sig)) {
				t.Fatalf("publish wrote %q, want one summary line of 3 confirmed", log)
			}
		})
	}
}

func TestTailStoppedBeforeCountExitsWithTheSignal(t *testing.T) {
	broker := embeddedBroker(t)
	tail := startCLI(t, nil, append([]string{"tail", "--topic", newTestTopic(), "--count", "2"}, broker...)...)
	tail.waitStderr(t, "tail: subscribed")
	tail.cancel(&signalError{sig: syscall.SIGINT})
	if code := tail.wait(t); code != 130 || !strings.Contains(tail.stderr.String(), "tail: 0 of 2 messages; stopped by SIGINT") {
		t.Fatalf("exit %d:\n%s", code, tail.stderr.String())
	}
	untilStopped := startCLI(t, nil, append([]string{"tail", "--topic", newTestTopic()}, broker...)...)
	untilStopped.waitStderr(t, "tail: subscribed")
	untilStopped.cancel(&signalError{sig: syscall.SIGTERM})
	if code := untilStopped.wait(t); code != 0 {
		t.Fatalf("tail without --count exited %d:\n%s", code, untilStopped.stderr.String())
	}
}
