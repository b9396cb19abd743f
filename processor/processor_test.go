package processor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/router"
)

type ask struct {
	Q string `json:"q"`
}

type answer struct {
	A string `json:"a"`
}

// parsed is what a processor's flags and environment gave.
type parsed struct {
	backend, id, logLevel, pulsarURL, pulsarListener, pulsarKey, mqttHost, mqttUser, mqttPassword string
	mqttPort, concurrency                                                                         int
}

// parse runs a processor on the memory backend whose setup records the
// parsed flags and stops.
func parse(t *testing.T, args ...string) (parsed, int, string) {
	t.Helper()
	var got parsed
	p := Processor{
		Name: "proc",
		Handlers: []Handler{Handle("h", "q1/tg/flow/in", "q1/tg/flow/out",
			func(context.Context, *ask) (*answer, error) { return nil, nil })},
		Setup: func(c *cli.Context, r *router.Router) error {
			got = parsed{
				backend: c.String("pubsub-backend"), id: r.Config().ID, logLevel: c.String("log-level"),
				pulsarURL: c.String("pulsar-host"), pulsarListener: c.String("pulsar-listener"), pulsarKey: c.String("pulsar-api-key"),
				mqttHost: c.String("mqtt-host"), mqttUser: c.String("mqtt-username"), mqttPassword: c.String("mqtt-password"),
				mqttPort: c.Int("mqtt-port"), concurrency: r.Config().Concurrency,
			}
			return errStopHere
		},
	}
	var stdout, stderr bytes.Buffer
	code := p.Run(context.Background(), append([]string{"proc"}, args...), &stdout, &stderr)
	return got, code, stderr.String() + stdout.String()
}

var errStopHere = &stopHere{}

type stopHere struct{}

func (*stopHere) Error() string { return "stop here" }

func clearEnv(t *testing.T) {
	for _, k := range []string{"PUBSUB_BACKEND", "PULSAR_HOST", "PULSAR_API_KEY", "PULSAR_LISTENER", "MQTT_HOST", "MQTT_PORT", "MQTT_USERNAME", "MQTT_PASSWORD", "LOG_LEVEL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestFlagsDefaults(t *testing.T) {
	clearEnv(t)
	cfg, code, out := parse(t, "--pubsub-backend", "memory")
	if code != 1 || !strings.Contains(out, "stop here") {
		t.Fatalf("code %d, output %q", code, out)
	}
	if cfg.backend != "memory" || cfg.id != "proc" || cfg.concurrency != 1 || cfg.logLevel != "info" ||
		cfg.pulsarURL != "pulsar://localhost:6650" || cfg.mqttHost != "localhost" || cfg.mqttPort != 1883 {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestFlagsFromEnvAndFlagsOverrideEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("PUBSUB_BACKEND", "memory")
	t.Setenv("PULSAR_HOST", "pulsar://broker:6650")
	t.Setenv("PULSAR_LISTENER", "internal")
	t.Setenv("MQTT_HOST", "mqtt.local")
	t.Setenv("MQTT_PORT", "8883")
	t.Setenv("MQTT_USERNAME", "u")
	t.Setenv("MQTT_PASSWORD", "sekrit-pw")
	t.Setenv("PULSAR_API_KEY", "sekrit-token")
	cfg, _, _ := parse(t, "--mqtt-port", "1884", "--id", "p7", "--concurrency", "4")
	if cfg.backend != "memory" || cfg.pulsarURL != "pulsar://broker:6650" || cfg.pulsarListener != "internal" ||
		cfg.mqttHost != "mqtt.local" || cfg.mqttPort != 1884 || cfg.mqttUser != "u" || cfg.mqttPassword != "sekrit-pw" ||
		cfg.pulsarKey != "sekrit-token" || cfg.id != "p7" || cfg.concurrency != 4 {
		t.Fatalf("parsed %+v", cfg)
	}
}

func TestBadValuesExitTwoWithOneLine(t *testing.T) {
	clearEnv(t)
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--pubsub-backend", "zeromq"}, nil, `--pubsub-backend "zeromq" is not one of pulsar, mqtt,`},
		{nil, map[string]string{"PUBSUB_BACKEND": "rabbit"}, `environment variable PUBSUB_BACKEND "rabbit" is not one of`},
		{[]string{"--pubsub-backend", "mqtt", "--mqtt-port", "70000"}, nil, "--mqtt-port must be between 1 and 65535, got 70000"},
		{[]string{"--pubsub-backend", "mqtt", "--mqtt-port", "-1"}, nil, "--mqtt-port must be between 1 and 65535, got -1"},
		{[]string{"--mqtt-port", "abc"}, nil, `--mqtt-port "abc": parse error`},
		{[]string{"--mqtt-hots", "x"}, nil, "unknown flag --mqtt-hots (did you mean --mqtt-host?)"},
		{[]string{"--pubsub-backend", "memory", "--output", "bad name"}, nil, `--output: invalid queue name "bad name"`},
		{[]string{"--pubsub-backend", "memory", "--input", "q9/tg/flow/x"}, nil, `invalid queue name "q9/tg/flow/x"`},
		{[]string{"--pubsub-backend", "memory", "--concurrency", "0"}, nil, "--concurrency must be at least 1"},
		{[]string{"--pubsub-backend", "memory", "--log-level", "loud"}, nil, `--log-level "loud"`},
		{[]string{"--no-such-flag"}, nil, "unknown flag --no-such-flag"},
		{[]string{"--pubsub-backend", "memory", "extra"}, nil, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, code, out := parse(t, c.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; output %q", code, out)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("output %q does not say %q", out, c.want)
			}
			if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
				t.Fatalf("output has %d lines, want one: %q", n+1, out)
			}
		})
	}
}

func TestSecretsNeverInHelpOrErrors(t *testing.T) {
	clearEnv(t)
	t.Setenv("PULSAR_API_KEY", "tok-VERY-SECRET")
	t.Setenv("MQTT_PASSWORD", "pw-VERY-SECRET")
	_, code, out := parse(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d: %s", code, out)
	}
	for _, want := range []string{"--pubsub-backend", "PUBSUB_BACKEND", "--pulsar-api-key", "PULSAR_API_KEY", "--mqtt-password", "MQTT_PASSWORD", "--concurrency"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %s", want)
		}
	}
	if strings.Contains(out, "VERY-SECRET") {
		t.Fatalf("--help shows a secret:\n%s", out)
	}
	_, _, out = parse(t, "--pubsub-backend", "nope")
	if strings.Contains(out, "VERY-SECRET") {
		t.Fatalf("error shows a secret: %s", out)
	}
	if got := Redact("dial failed for user:pw-VERY-SECRET", "pw-VERY-SECRET"); strings.Contains(got, "VERY") {
		t.Fatalf("Redact left the secret: %s", got)
	}
}

func TestProcessorRunsUntilCancelledAndExitsZero(t *testing.T) {
	clearEnv(t)
	ready := make(chan struct{})
	p := Processor{
		Name: "p",
		Handlers: []Handler{Handle("h", "q1/tg/flow/in", "q1/tg/flow/out",
			func(context.Context, *ask) (*answer, error) { return nil, nil })},
		Setup: func(_ *cli.Context, r *router.Router) error {
			go func() { <-r.Running(); close(ready) }()
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- p.Run(ctx, []string{"p", "--pubsub-backend", "memory", "--metrics-addr", ""}, &bytes.Buffer{}, &stderr)
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("processor not ready within 10s")
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("processor did not stop")
	}
	if !strings.Contains(stderr.String(), "msg=ready") || !strings.Contains(stderr.String(), "h: received=0 ok=0") {
		t.Fatalf("log lacks the ready line or the summary:\n%s", stderr.String())
	}
}

func TestWatermillLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	l := WatermillLogger(NewLogger(&buf, "info")).With(watermill.LogFields{"handler": "h"})
	l.Trace("trace line", nil)
	l.Debug("debug line", nil)
	l.Info("watermill info line", nil)
	l.Error("error line", errors.New("boom"), watermill.LogFields{"k": "v"})
	l.Error("All handlers stopped, closing router", errors.New("all router handlers stopped"), nil)
	out := buf.String()
	if strings.Contains(out, "trace line") || strings.Contains(out, "debug line") || strings.Contains(out, "watermill info line") || strings.Contains(out, "All handlers stopped") {
		t.Fatalf("lines below info were logged:\n%s", out)
	}
	if !strings.Contains(out, "error line") || !strings.Contains(out, "handler=h") || !strings.Contains(out, "k=v") {
		t.Fatalf("error line missing or without its fields:\n%s", out)
	}
	buf.Reset()
	l = WatermillLogger(NewLogger(&buf, "debug"))
	l.Info("watermill info line", nil)
	l.Trace("trace line", nil)
	if !strings.Contains(buf.String(), "level=DEBUG msg=\"watermill info line\"") || strings.Contains(buf.String(), "trace line") {
		t.Fatalf("at debug: %s", buf.String())
	}
}

func TestBadEnvironmentValuesNameTheVariable(t *testing.T) {
	clearEnv(t)
	t.Setenv("MQTT_PORT", "abc")
	_, code, out := parse(t, "--pubsub-backend", "memory")
	if code != 2 || !strings.Contains(out, `environment variable MQTT_PORT "abc" (--mqtt-port)`) {
		t.Fatalf("exit %d: %q", code, out)
	}
}

// A processor whose Pulsar cannot be reached says so while it waits, then
// fails with one line.
func TestUnreachablePulsarReportsProgressThenOneLine(t *testing.T) {
	clearEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	p := Processor{Name: "p", Handlers: []Handler{Handle("h", "q1/tg/flow/in", "q1/tg/flow/out",
		func(context.Context, *ask) (*answer, error) { return nil, nil })}}
	var stderr bytes.Buffer
	code := p.Run(context.Background(), []string{"p", "--pubsub-backend", "pulsar", "--pulsar-host", "pulsar://" + addr,
		"--pulsar-operation-timeout", "7s", "--metrics-addr", ""}, io.Discard, &stderr)
	out := stderr.String()
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "still connecting to pulsar://"+addr+" (5s of 7s)") {
		t.Fatalf("no progress line:\n%s", out)
	}
	last := strings.Split(strings.TrimSpace(out), "\n")
	if line := last[len(last)-1]; !strings.HasPrefix(line, "p: ") || !strings.Contains(line, "cannot be reached") {
		t.Fatalf("last line %q is not the one-line error", line)
	}
}
