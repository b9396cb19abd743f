package rabbitmqpubsub_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
)

// The environment scripts/rabbitmq.sh env prints:
//
//	SWITCHYARD_RABBITMQ_URL        amqp://user:password@127.0.0.1:5672/
//	SWITCHYARD_RABBITMQ_HOST, _PORT, _USER, _PASSWORD
//	SWITCHYARD_RABBITMQ_RO_USER    a user that may only read (same password)
//	SWITCHYARD_RABBITMQ_TEST_VHOST a second vhost the user may use
//	SWITCHYARD_RABBITMQ_RESTART    shell command that restarts the broker
//	SWITCHYARD_RABBITMQ_CTL        shell command prefix that runs rabbitmqctl against it

// connConfig returns the connection settings of the broker started by
// scripts/rabbitmq.sh; the test is skipped (or failed under `make test`)
// when it is not configured.
func connConfig(t testing.TB) rabbitmqpubsub.ConnectionConfig {
	t.Helper()
	host := brokertest.Env(t, "SWITCHYARD_RABBITMQ_HOST")
	port, err := strconv.Atoi(brokertest.Env(t, "SWITCHYARD_RABBITMQ_PORT"))
	if err != nil {
		t.Fatalf("SWITCHYARD_RABBITMQ_PORT: %v", err)
	}
	return rabbitmqpubsub.ConnectionConfig{
		Host:                host,
		Port:                port,
		Username:            brokertest.Env(t, "SWITCHYARD_RABBITMQ_USER"),
		Password:            brokertest.Env(t, "SWITCHYARD_RABBITMQ_PASSWORD"),
		ConnectTimeout:      5 * time.Second,
		ReconnectMaxBackoff: time.Second,
	}
}

// testLogger logs to the test output when SWITCHYARD_TEST_VERBOSE is set.
func testLogger() watermill.LoggerAdapter {
	if os.Getenv("SWITCHYARD_TEST_VERBOSE") != "" {
		return watermill.NewStdLogger(true, false)
	}
	return watermill.NopLogger{}
}

func newPublisher(t testing.TB, cfg rabbitmqpubsub.PublisherConfig) *rabbitmqpubsub.Publisher {
	t.Helper()
	if cfg.Host == "" {
		cfg.ConnectionConfig = connConfig(t)
	}
	p, err := rabbitmqpubsub.NewPublisher(cfg, testLogger())
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("closing publisher: %v", err)
		}
	})
	return p
}

func newSubscriber(t testing.TB, cfg rabbitmqpubsub.SubscriberConfig) *rabbitmqpubsub.Subscriber {
	t.Helper()
	if cfg.Host == "" {
		cfg.ConnectionConfig = connConfig(t)
	}
	s, err := rabbitmqpubsub.NewSubscriber(cfg, testLogger())
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing subscriber: %v", err)
		}
	})
	return s
}

// subscribe initializes and subscribes; the subscription ends with the test.
func subscribe(t testing.TB, s *rabbitmqpubsub.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	if err := s.SubscribeInitialize(topic); err != nil {
		t.Fatalf("SubscribeInitialize(%s): %v", topic, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", topic, err)
	}
	return ch
}

// waitConsuming waits until s reports every subscription consuming.
func waitConsuming(t testing.TB, s *rabbitmqpubsub.Subscriber) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.Health()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber not consuming: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func receive(t testing.TB, ch <-chan *message.Message, d time.Duration) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			t.Fatalf("message channel closed")
		}
		return msg
	case <-time.After(d):
		t.Fatalf("no message within %s", d)
	}
	return nil
}

func expectNothing(t testing.TB, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s (payload %q, metadata %v)", msg.UUID, msg.Payload, msg.Metadata)
		}
	case <-time.After(d):
	}
}

func publish(t testing.TB, p *rabbitmqpubsub.Publisher, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := p.Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish(%s): %v", topic, err)
	}
}

func newMessages(n int, prefix string) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"n":%d,"p":%q}`, i, prefix)))
	}
	return msgs
}

// uniqueName returns a fresh topic name part.
func uniqueName(prefix string) string {
	return prefix + "-" + strings.ToLower(watermill.NewShortUUID())
}

// rawChannel opens a plain amqp091 channel on the test broker.
func rawChannel(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(brokertest.Env(t, "SWITCHYARD_RABBITMQ_URL"))
	if err != nil {
		t.Fatalf("dialing the broker: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("opening a channel: %v", err)
	}
	return ch
}

// deleteQueueAtEnd deletes a durable test queue when the test ends, so the
// test broker does not keep it.
func deleteQueueAtEnd(t testing.TB, names ...string) {
	t.Helper()
	url := os.Getenv("SWITCHYARD_RABBITMQ_URL")
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, n := range names {
			ch, err := conn.Channel()
			if err != nil {
				return
			}
			_, _ = ch.QueueDelete(n, false, false, false)
			_ = ch.Close()
		}
	})
}

// ctl runs rabbitmqctl against the test broker and returns its output.
func ctl(t testing.TB, args ...string) string {
	t.Helper()
	prefix := strings.Fields(brokertest.Env(t, "SWITCHYARD_RABBITMQ_CTL"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prefix[0], append(prefix[1:], args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// linesContaining returns the lines of out that contain s.
func linesContaining(out, s string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			lines = append(lines, l)
		}
	}
	return lines
}
