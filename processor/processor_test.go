package router

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/schema"
)

// parse runs a processor whose setup records the parsed config and stops.
func parse(t *testing.T, args ...string) (Config, int, string) {
	t.Helper()
	var got Config
	var topic string
	p := Processor{
		Name:  "proc",
		Flags: []cli.Flag{&cli.StringFlag{Name: "input", Value: "q1/tg/flow/in", Destination: &topic}},
		Setup: func(c *cli.Context, r *Router) error {
			got = r.cfg
			if _, err := schema.ParseTopic(topic); err != nil {
				return err
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
	if cfg.Backend != "memory" || cfg.ID != "proc" || cfg.Concurrency != 1 || cfg.LogLevel != "info" ||
		cfg.Pulsar.Host != "pulsar://localhost:6650" || cfg.MQTT.Host != "localhost" || cfg.MQTT.Port != 1883 {
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
	if cfg.Backend != "memory" || cfg.Pulsar.Host != "pulsar://broker:6650" || cfg.Pulsar.Listener != "internal" ||
		cfg.MQTT.Host != "mqtt.local" || cfg.MQTT.Port != 1884 || cfg.MQTT.Username != "u" || cfg.MQTT.Password != "sekrit-pw" ||
		cfg.Pulsar.APIKey != "sekrit-token" || cfg.ID != "p7" || cfg.Concurrency != 4 {
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
		{[]string{"--pubsub-backend", "kafka"}, nil, `--pubsub-backend "kafka" is not one of pulsar, mqtt, memory`},
		{nil, map[string]string{"PUBSUB_BACKEND": "rabbit"}, `"rabbit"`},
		{[]string{"--pubsub-backend", "mqtt", "--mqtt-port", "70000"}, nil, "--mqtt-port must be between 1 and 65535"},
		{[]string{"--pubsub-backend", "mqtt", "--mqtt-port", "0"}, nil, "--mqtt-port must be between 1 and 65535"},
		{[]string{"--mqtt-port", "abc"}, nil, "mqtt-port"},
		{[]string{"--pubsub-backend", "memory", "--input", "q9/tg/flow/x"}, nil, `invalid queue name "q9/tg/flow/x"`},
		{[]string{"--pubsub-backend", "memory", "--concurrency", "0"}, nil, "--concurrency must be at least 1"},
		{[]string{"--pubsub-backend", "memory", "--log-level", "loud"}, nil, `--log-level "loud"`},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
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
		Setup: func(_ *cli.Context, r *Router) error {
			go func() { <-r.Running(); close(ready) }()
			return Handle(r, "h", inQ, outQ, func(context.Context, *ask) (*answer, error) { return nil, nil })
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- p.Run(ctx, []string{"p", "--pubsub-backend", "memory"}, &bytes.Buffer{}, &stderr) }()
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
	if !strings.Contains(stderr.String(), "msg=ready") || !strings.Contains(stderr.String(), "h: ok=0") {
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
	out := buf.String()
	if strings.Contains(out, "trace line") || strings.Contains(out, "debug line") || strings.Contains(out, "watermill info line") {
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
