package kafkapubsub_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/kafkapubsub"
)

// bootstrap returns the broker started by scripts/kafka.sh; the test is
// skipped (or failed under `make test`) when it is not configured.
func bootstrap(t testing.TB) string {
	t.Helper()
	return brokertest.Env(t, "SWITCHYARD_KAFKA_BOOTSTRAP")
}

// testLogger logs to the test output when SWITCHYARD_TEST_VERBOSE is set.
func testLogger() watermill.LoggerAdapter {
	if os.Getenv("SWITCHYARD_TEST_VERBOSE") != "" {
		return watermill.NewStdLogger(true, false)
	}
	return watermill.NopLogger{}
}

// uniqueQueue returns a fresh generic queue name of the given qos and class
// (namespace) under tenant "tgtest".
func uniqueQueue(qos, class string) string {
	return fmt.Sprintf("%s/tgtest/%s/q-%s", qos, class, watermill.NewShortUUID())
}

func newPublisher(t testing.TB) *kafkapubsub.Publisher {
	t.Helper()
	p, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{
		Config: kafkapubsub.Config{BootstrapServers: bootstrap(t)},
	}, testLogger())
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

func newSubscriber(t testing.TB, cfg kafkapubsub.SubscriberConfig) *kafkapubsub.Subscriber {
	t.Helper()
	if cfg.BootstrapServers == "" {
		cfg.BootstrapServers = bootstrap(t)
	}
	if cfg.SubscriptionName == "" {
		cfg.SubscriptionName = "test-" + watermill.NewShortUUID()
	}
	if cfg.NackDelay == 0 {
		cfg.NackDelay = 100 * time.Millisecond
	}
	s, err := kafkapubsub.NewSubscriber(cfg, testLogger())
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

// subscribe initializes and subscribes; the subscription ends with the test
// or when the returned cancel is called.
func subscribe(t testing.TB, s *kafkapubsub.Subscriber, topic string) (<-chan *message.Message, context.CancelFunc) {
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
	return ch, cancel
}

// receive waits up to d for the next message.
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

// expectNothing fails when a message arrives within d.
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

func publish(t testing.TB, p *kafkapubsub.Publisher, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := p.Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish(%s): %v", topic, err)
	}
}

func newMessages(n int, prefix string) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("%s-%d", prefix, i)))
	}
	return msgs
}

// admin returns a kadm client on the test broker, closed with the test.
func admin(t testing.TB) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}
