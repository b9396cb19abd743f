package mqttpubsub_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/mqttpubsub"
	"github.com/switchyard-go/switchyard/mqttpubsub/embedded"
)

// testBroker is a broker the tests run against.
type testBroker struct {
	name    string
	url     string   // anonymous access
	restart []string // command that restarts it; nil when it cannot be restarted
}

// embeddedURL is the address of the in-process broker TestMain starts.
var embeddedURL string

func TestMain(m *testing.M) {
	b, err := embedded.Start(context.Background(), embedded.Config{Listen: "127.0.0.1:0", InMemory: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the embedded broker: %v\n", err)
		os.Exit(1)
	}
	embeddedURL = b.URL()
	code := m.Run()
	_ = b.Close()
	os.Exit(code)
}

// embeddedBroker returns the in-process broker.
func embeddedBroker(testing.TB) testBroker {
	return testBroker{name: "embedded", url: embeddedURL}
}

// mosquitto returns the Mosquitto broker started by scripts/mosquitto.sh; the
// test is skipped (or failed under `make test`) when it is not configured.
func mosquitto(t testing.TB) testBroker {
	t.Helper()
	addr := brokertest.Env(t, "SWITCHYARD_MQTT_ADDR")
	return testBroker{name: "mosquitto", url: "tcp://" + addr}
}

// forEachBroker runs fn as a subtest against the embedded broker and Mosquitto.
func forEachBroker(t *testing.T, fn func(t *testing.T, b testBroker)) {
	t.Run("embedded", func(t *testing.T) { fn(t, embeddedBroker(t)) })
	t.Run("mosquitto", func(t *testing.T) { fn(t, mosquitto(t)) })
}

// uniqueQueue returns a fresh generic queue name with the given qos prefix.
func uniqueQueue(qos string) string {
	return fmt.Sprintf("%s/tg/mqtt-test/%s", qos, watermill.NewShortUUID())
}

// mqttTopicOf is the MQTT topic of a generic queue name.
func mqttTopicOf(queue string) string {
	_, rest, _ := strings.Cut(queue, "/")
	return rest
}

func newPublisher(t testing.TB, b testBroker, mode mqttpubsub.PayloadMode) *mqttpubsub.Publisher {
	t.Helper()
	p, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: b.url, ConnectTimeout: 5 * time.Second},
		PayloadMode:      mode,
	}, nil)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func newSubscriber(t testing.TB, b testBroker, cfg mqttpubsub.SubscriberConfig) *mqttpubsub.Subscriber {
	t.Helper()
	cfg.Broker = b.url
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	s, err := mqttpubsub.NewSubscriber(cfg, nil)
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// plainClient connects a plain paho client (auto acks) to b.
func plainClient(t testing.TB, b testBroker) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(b.url).SetClientID("plain-" + watermill.NewShortUUID()).
		SetProtocolVersion(4).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("plain client connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// plainSubscribe subscribes a plain client and returns its messages.
func plainSubscribe(t testing.TB, c mqtt.Client, topic string, qos byte) <-chan mqtt.Message {
	t.Helper()
	ch := make(chan mqtt.Message, 1000)
	tok := c.Subscribe(topic, qos, func(_ mqtt.Client, m mqtt.Message) { ch <- m })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("plain subscribe: %v", tok.Error())
	}
	return ch
}

func plainPublish(t testing.TB, c mqtt.Client, topic string, qos byte, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("plain publish: %v", tok.Error())
	}
}

// receive waits for one message on ch.
func receive(t testing.TB, ch <-chan *message.Message, within time.Duration) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("the subscription channel was closed")
		}
		return m
	case <-time.After(within):
		t.Fatalf("no message within %s", within)
	}
	return nil
}

// expectNone checks that nothing arrives on ch for a while.
func expectNone(t testing.TB, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s (%q)", m.UUID, m.Payload)
		}
	case <-time.After(d):
	}
}
