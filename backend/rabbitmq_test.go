package backend

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

func rabbitmqConfig(t *testing.T) Config {
	t.Helper()
	port, err := strconv.Atoi(brokertest.Env(t, "SWITCHYARD_RABBITMQ_PORT"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Name: "RabbitMQ", ClientName: "rabbitmq-test-" + watermill.NewShortUUID()}
	cfg.RabbitMQ.Host = brokertest.Env(t, "SWITCHYARD_RABBITMQ_HOST")
	cfg.RabbitMQ.Port = port
	cfg.RabbitMQ.Username = brokertest.Env(t, "SWITCHYARD_RABBITMQ_USER")
	cfg.RabbitMQ.Password = brokertest.Env(t, "SWITCHYARD_RABBITMQ_PASSWORD")
	cfg.RabbitMQ.NackDelay = 100 * time.Millisecond
	return cfg
}

// A processor on RabbitMQ answers a TrustGraph-style request/response pair,
// and its response queue is a subscription of the client's own.
func TestRabbitMQBackendRunsAProcessor(t *testing.T) {
	roundTrip(t, rabbitmqConfig(t), RabbitMQ)
}

// roundTrip runs a request/response processor on the backend cfg names and
// checks one answer and the backend's health.
func roundTrip(t *testing.T, cfg Config, name string) {
	t.Helper()
	b, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != name {
		t.Fatalf("name %q", b.Name())
	}
	q := "rt-" + strings.ToLower(watermill.NewShortUUID())
	in, _ := schema.ParseTopic("request:tg:" + q)
	out, _ := schema.ParseTopic("response:tg:" + q)

	reader, err := b.NewSubscriber(router.SubscribeOptions{Subscription: "client"})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if err := reader.(message.SubscribeInitializer).SubscribeInitialize(out.String()); err != nil {
		t.Fatal(err)
	}
	results, err := reader.Subscribe(context.Background(), out.String())
	if err != nil {
		t.Fatal(err)
	}

	r, err := router.New(router.Config{ID: cfg.ClientName, Concurrency: 2}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Handle(r, "upper", in, out, func(_ context.Context, a *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
		return &schema.TextCompletionResponse{Response: strings.ToUpper(a.Prompt)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-runErr:
		t.Fatalf("router: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("router not running")
	}
	h, ok := b.(router.HealthChecker)
	if !ok {
		t.Fatal("the rabbitmq backend cannot tell its health")
	}
	deadline := time.Now().Add(10 * time.Second)
	for err := h.Health(); err != nil; err = h.Health() {
		if time.Now().After(deadline) {
			t.Fatalf("backend not healthy while connected: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"prompt":"hello"}`))
	msg.Metadata.Set(middleware.IDProperty, "req-1")
	if err := b.Publisher().Publish(in.String(), msg); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-results:
		got.Ack()
		var resp schema.TextCompletionResponse
		if err := schema.Unmarshal(got.Payload, &resp); err != nil || resp.Response != "HELLO" || !resp.EndOfStream ||
			got.Metadata.Get(middleware.IDProperty) != "req-1" {
			t.Fatalf("output %q with metadata %v", got.Payload, got.Metadata)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no output")
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("router stopped with %v", err)
	}
}

func TestRabbitMQSettingsValidation(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--rabbitmq-port", "70000"}, "--rabbitmq-port must be between 1 and 65535, got 70000"},
		{[]string{"--rabbitmq-password", "p", "--rabbitmq-password-file", "f"}, "not both"},
		{[]string{"--rabbitmq-tls-cert-file", "c"}, "--rabbitmq-tls-key-file"},
	}
	for _, c := range cases {
		cfg := parseFlags(t, append([]string{"--pubsub-backend", "rabbitmq"}, c.args...)...)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	cfg := parseFlags(t, "--pubsub-backend", "rabbitmq", "--rabbitmq-password", "s3cret-pw")
	if a := cfg.Address(); strings.Contains(a, "s3cret") || !strings.HasPrefix(a, "amqp://") {
		t.Fatalf("address %q", a)
	}
}
