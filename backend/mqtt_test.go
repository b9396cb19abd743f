package backend

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/mqttpubsub"
	"github.com/switchyard-go/switchyard/mqttpubsub/embedded"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// parseFlags parses args with the backend flags and returns the config.
func parseFlags(t *testing.T, args ...string) Config {
	t.Helper()
	var cfg Config
	app := &cli.App{Name: "t", Flags: Flags(&cfg), Action: func(*cli.Context) error { return nil }}
	if err := app.Run(append([]string{"t"}, args...)); err != nil {
		t.Fatalf("parsing %v: %v", args, err)
	}
	return cfg
}

func TestMQTTFlags(t *testing.T) {
	t.Setenv("MQTT_PAYLOAD_MODE", "raw")
	t.Setenv("MQTT_CLIENT_ID", "replica-2")
	cfg := parseFlags(t, "--pubsub-backend", "MQTT", "--mqtt-tls", "--mqtt-ca-file", "/ca.pem",
		"--mqtt-connect-timeout", "3s", "--mqtt-nack-delay", "250ms", "--mqtt-username", "u", "--mqtt-password-file", "/pw")
	if err := cfg.Validate(); err != nil {
		t.Fatalf("backend name in capitals: %v", err)
	}
	cfg.SetDefaults()
	if cfg.Name != MQTT {
		t.Fatalf("name %q", cfg.Name)
	}
	s := cfg.MQTT
	if !s.TLS || s.CAFile != "/ca.pem" || s.ConnectTimeout != 3*time.Second || s.NackDelay != 250*time.Millisecond ||
		s.PayloadMode != "raw" || s.ClientID != "replica-2" || s.PasswordFile != "/pw" || s.Username != "u" {
		t.Fatalf("parsed %+v", s)
	}
	if got := s.brokerURL(); got != "ssl://localhost:1883" {
		t.Fatalf("broker URL %q", got)
	}
	if got := (MQTTSettings{Host: "::1", Port: 1884}).brokerURL(); got != "tcp://[::1]:1884" {
		t.Fatalf("broker URL %q", got)
	}
}

func TestMQTTSettingsValidation(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--mqtt-payload-mode", "zip"}, `--mqtt-payload-mode "zip" is not one of envelope, raw`},
		{[]string{"--mqtt-username", "u", "--mqtt-password", "p", "--mqtt-password-file", "f"}, "not both"},
		{[]string{"--mqtt-password", "p"}, "needs --mqtt-username"},
		{[]string{"--mqtt-client-id", "a/b"}, `--mqtt-client-id "a/b" must not contain`},
		{[]string{"--mqtt-port", "99999"}, "--mqtt-port must be between 1 and 65535, got 99999"},
	}
	for _, c := range cases {
		cfg := parseFlags(t, append([]string{"--pubsub-backend", "mqtt"}, c.args...)...)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line with %q", c.args, err, c.want)
		}
	}
}

// startBroker starts an embedded broker and returns a config that reaches it.
func startBroker(t *testing.T, users string) Config {
	t.Helper()
	bc := embedded.Config{Listen: "127.0.0.1:0", InMemory: true}
	if users != "" {
		bc.UsersFile = filepath.Join(t.TempDir(), "users")
		if err := os.WriteFile(bc.UsersFile, []byte(users), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := embedded.Start(context.Background(), bc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	host, port, _ := net.SplitHostPort(b.Addr())
	p, _ := strconv.Atoi(port)
	cfg := Config{Name: MQTT, ClientName: "mqtt-test-" + watermill.NewShortUUID(), MQTT: MQTTSettings{Host: host, Port: p, NackDelay: 50 * time.Millisecond}}
	cfg.MQTT.ConnectTimeout = 3 * time.Second
	cfg.SetDefaults()
	return cfg
}

func TestMQTTBackendRunsAProcessor(t *testing.T) {
	if mqttpubsub.EnvelopeErrorKey != middleware.InputErrorKey {
		t.Fatalf("the MQTT adapter flags bad envelopes with %q, the poison middleware looks for %q", mqttpubsub.EnvelopeErrorKey, middleware.InputErrorKey)
	}
	cfg := startBroker(t, "")
	backend, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	if backend.Name() != MQTT {
		t.Fatalf("name %q", backend.Name())
	}
	ns := "mqtt-" + watermill.NewShortUUID()
	in := schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: ns, Queue: "in"}
	out := schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: ns, Queue: "out"}

	reader, err := backend.NewSubscriber(router.SubscribeOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	results, err := reader.Subscribe(context.Background(), out.String())
	if err != nil {
		t.Fatal(err)
	}
	poisonSub, err := backend.NewSubscriber(router.SubscribeOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer poisonSub.Close()
	poison, err := poisonSub.Subscribe(context.Background(), router.PoisonTopic(in).String())
	if err != nil {
		t.Fatal(err)
	}

	r, err := router.New(router.Config{ID: cfg.ClientName, Concurrency: 3}, backend, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Handle(r, "upper", in, out, func(_ context.Context, a *ask) (*answer, error) {
		return &answer{A: strings.ToUpper(a.Q)}, nil
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
	case <-time.After(10 * time.Second):
		t.Fatal("router not running")
	}

	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"q":"hello"}`))
	msg.Metadata.Set(middleware.IDProperty, "req-1")
	if err := backend.Publisher().Publish(in.String(), msg); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-results:
		got.Ack()
		if string(got.Payload) != `{"a":"HELLO"}` || got.Metadata.Get(middleware.IDProperty) != "req-1" {
			t.Fatalf("output %q with metadata %v", got.Payload, got.Metadata)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no output")
	}

	// A payload that is not an envelope goes to the poison queue.
	plain := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(cfg.MQTT.brokerURL()).SetClientID("plain-" + watermill.NewShortUUID()))
	if tok := plain.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("plain connect: %v", tok.Error())
	}
	defer plain.Disconnect(100)
	if tok := plain.Publish("tg/"+ns+"/in", 1, false, "garbage"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("plain publish: %v", tok.Error())
	}
	select {
	case got := <-poison:
		got.Ack()
		if string(got.Payload) != "garbage" || !strings.Contains(got.Metadata.Get(middleware.PoisonReasonKey), "envelope") {
			t.Fatalf("poison %q with metadata %v", got.Payload, got.Metadata)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the garbage did not reach the poison queue")
	}

	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("router stopped with %v", err)
	}
}

func TestMQTTBackendWrongPassword(t *testing.T) {
	cfg := startBroker(t, "svc:the-right-password\n")
	cfg.MQTT.Username = "svc"
	cfg.MQTT.Password = "a-wrong-password"
	_, err := New(context.Background(), cfg, nil)
	if !errors.Is(err, mqttpubsub.ErrConnect) {
		t.Fatalf("error %v", err)
	}
	if msg := err.Error(); strings.Contains(msg, "wrong-password") || strings.Contains(msg, "\n") || !strings.Contains(msg, `user "svc"`) {
		t.Fatalf("error %q", msg)
	}
	cfg.MQTT.Password = "the-right-password"
	b, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
}

type ask struct {
	Q string `json:"q"`
}

type answer struct {
	A string `json:"a"`
}

// A message poisoned while no operator watches is kept on Mosquitto for the
// "poison" subscription and can be read after the processor is gone.
func TestMQTTPoisonQueueKeepsMessagesForLater(t *testing.T) {
	host, port, err := net.SplitHostPort(brokertest.Env(t, "SWITCHYARD_MQTT_ADDR"))
	if err != nil {
		t.Fatal(err)
	}
	replica := "poison-" + watermill.NewShortUUID()
	cfg := Config{Name: MQTT, ClientName: "poison-test", MQTT: MQTTSettings{Host: host, Port: mustPort(t, port), ClientID: replica, NackDelay: 50 * time.Millisecond}}
	b, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := "poison" + strings.ToLower(watermill.NewShortUUID())
	in := schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: ns, Queue: "in"}
	r, err := router.New(router.Config{ID: "poisoner"}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Consume(r, "reject", in, func(context.Context, *ask) error {
		return middleware.Permanent(errors.New("rejected on purpose"))
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	<-r.Running()
	if err := b.Publisher().Publish(in.String(), message.NewMessage(watermill.NewUUID(), []byte(`{"q":"bad"}`))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats()["reject"].Poisoned == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not poisoned: %+v", r.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	_ = b.Close()

	// Later, an operator on the same host reads the poison queue.
	b2, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	sub, err := b2.NewSubscriber(router.SubscribeOptions{Subscription: router.PoisonSubscription})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), router.PoisonTopic(in).String())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		m.Ack()
		if string(m.Payload) != `{"q":"bad"}` || m.Metadata.Get(middleware.PoisonReasonKey) != "rejected on purpose" {
			t.Fatalf("poison message %s %v", m.Payload, m.Metadata)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the poison message was not kept")
	}
}

func mustPort(t *testing.T, s string) int {
	t.Helper()
	p, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
