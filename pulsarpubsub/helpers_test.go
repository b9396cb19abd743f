package pulsarpubsub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
)

// brokerURL returns the Pulsar broker started by scripts/pulsar.sh; the test
// is skipped (or failed under `make test`) when it is not configured.
func brokerURL(t testing.TB) string {
	t.Helper()
	return brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
}

// adminURL returns the broker's admin REST API base URL.
func adminURL(t testing.TB) string {
	t.Helper()
	return brokertest.Env(t, "SWITCHYARD_PULSAR_ADMIN_URL")
}

// testLogger logs to the test output when SWITCHYARD_TEST_VERBOSE is set.
func testLogger() watermill.LoggerAdapter {
	if os.Getenv("SWITCHYARD_TEST_VERBOSE") != "" {
		return watermill.NewStdLogger(true, false)
	}
	return watermill.NopLogger{}
}

// uniqueQueue returns a fresh generic queue name on the standalone broker's
// public/default namespace.
func uniqueQueue(qos string) string {
	return fmt.Sprintf("%s/public/default/%s", qos, watermill.NewShortUUID())
}

func newPublisher(t testing.TB, cfg pulsarpubsub.PublisherConfig) *pulsarpubsub.Publisher {
	t.Helper()
	if cfg.URL == "" && cfg.Client == nil {
		cfg.URL = brokerURL(t)
	}
	p, err := pulsarpubsub.NewPublisher(cfg, testLogger())
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

func newSubscriber(t testing.TB, cfg pulsarpubsub.SubscriberConfig) *pulsarpubsub.Subscriber {
	t.Helper()
	if cfg.URL == "" && cfg.Client == nil {
		cfg.URL = brokerURL(t)
	}
	if cfg.SubscriptionName == "" {
		cfg.SubscriptionName = "test-" + watermill.NewShortUUID()
	}
	s, err := pulsarpubsub.NewSubscriber(cfg, testLogger())
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

// subscribe initializes the subscription and subscribes, failing the test on
// an error. The subscription ends with the test.
func subscribe(t testing.TB, s *pulsarpubsub.Subscriber, topic string) <-chan *message.Message {
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
			t.Fatalf("unexpected message %s (payload %q)", msg.UUID, msg.Payload)
		}
	case <-time.After(d):
	}
}

func publish(t testing.TB, p *pulsarpubsub.Publisher, topic string, msgs ...*message.Message) {
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

// adminList returns the topics the admin REST API lists under path, e.g.
// /admin/v2/persistent/public/default.
func adminList(t testing.TB, path string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(adminURL(t), "/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	var topics []string
	if err := json.NewDecoder(resp.Body).Decode(&topics); err != nil {
		t.Fatalf("GET %s: decoding: %v", path, err)
	}
	return topics
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
