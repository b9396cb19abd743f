package pulsarpubsub_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

func attemptOf(msg *message.Message) string { return msg.Metadata.Get(schema.DeliveryAttemptKey) }

// On a persistent topic the attempt is the broker's redelivery count plus
// one, whatever the published metadata said.
func TestDeliveryAttemptCountsRedeliveries(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{NackRedeliveryDelay: 100 * time.Millisecond})
	ch := subscribe(t, sub, queue)
	sent := message.NewMessage(watermill.NewUUID(), []byte("x"))
	sent.Metadata.Set(schema.DeliveryAttemptKey, "7") // stale, from an input
	publish(t, pub, queue, sent)
	for _, want := range []string{"1", "2", "3"} {
		msg := receive(t, ch, wait)
		if msg.UUID != sent.UUID || attemptOf(msg) != want {
			t.Fatalf("got %s attempt %q, want %s attempt %s", msg.UUID, attemptOf(msg), sent.UUID, want)
		}
		if want == "3" {
			msg.Ack()
		} else {
			msg.Nack()
		}
	}
	expectNothing(t, ch, time.Second)
}

// A nacked request on a non-persistent topic with a shared subscription (a
// TrustGraph request queue) comes again after the nack delay, with its
// payload, UUID and metadata and the next attempt, behind a message that was
// published meanwhile, and to the subscription's other consumer too.
func TestNonPersistentNackRedeliversOnSharedTopic(t *testing.T) {
	t.Parallel()
	const delay = 500 * time.Millisecond
	brokertest.EnsurePulsarNamespace(t, adminURL(t), "public/request")
	queue := "q0/public/request/" + watermill.NewShortUUID()
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{NackRedeliveryDelay: delay})
	ch := subscribe(t, sub, queue)

	req := message.NewMessage(watermill.NewUUID(), []byte(`{"q":1}`))
	req.Metadata.Set("id", "r-1")
	publish(t, pub, queue, req)
	first := receive(t, ch, wait)
	if first.UUID != req.UUID || attemptOf(first) != "1" {
		t.Fatalf("first delivery: %s attempt %q", first.UUID, attemptOf(first))
	}
	first.Nack()
	other := message.NewMessage(watermill.NewUUID(), []byte("meanwhile"))
	publish(t, pub, queue, other)
	got := receive(t, ch, wait)
	got.Ack()
	if got.UUID != other.UUID {
		t.Fatalf("got %s (attempt %s) before the message published meanwhile", got.UUID, attemptOf(got))
	}
	again := receive(t, ch, wait)
	if again.UUID != req.UUID || !bytes.Equal(again.Payload, req.Payload) || again.Metadata.Get("id") != "r-1" || attemptOf(again) != "2" {
		t.Fatalf("redelivered %s %q %v, want %s with id r-1 and attempt 2", again.UUID, again.Payload, again.Metadata, req.UUID)
	}
	again.Nack()
	third := receive(t, ch, wait)
	third.Ack()
	if third.UUID != req.UUID || attemptOf(third) != "3" {
		t.Fatalf("third delivery: %s attempt %q", third.UUID, attemptOf(third))
	}
	expectNothing(t, ch, 2*delay)
}

// On a non-persistent topic with exclusive subscriptions (a TrustGraph
// response or notify queue, one subscription per client) a nack hands the
// message out again to the client that nacked it, with the next attempt;
// the other clients see it once.
func TestNonPersistentNackOnExclusiveStaysInProcess(t *testing.T) {
	t.Parallel()
	brokertest.EnsurePulsarNamespace(t, adminURL(t), "public/response")
	queue := "q0/public/response/" + watermill.NewShortUUID()
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	a := newSubscriber(t, pulsarpubsub.SubscriberConfig{
		SubscriptionType: pulsarpubsub.Exclusive, NonDurable: true, NackRedeliveryDelay: 300 * time.Millisecond,
	})
	b := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionType: pulsarpubsub.Exclusive, NonDurable: true})
	chA := subscribe(t, a, queue)
	chB := subscribe(t, b, queue)
	resp := message.NewMessage(watermill.NewUUID(), []byte("answer"))
	publish(t, pub, queue, resp)

	for _, want := range []string{"1", "2"} {
		msg := receive(t, chA, wait)
		if msg.UUID != resp.UUID || attemptOf(msg) != want {
			t.Fatalf("client A: %s attempt %q, want %s attempt %s", msg.UUID, attemptOf(msg), resp.UUID, want)
		}
		if want == "1" {
			msg.Nack()
		} else {
			msg.Ack()
		}
	}
	msg := receive(t, chB, wait)
	msg.Ack()
	if msg.UUID != resp.UUID || attemptOf(msg) != "1" {
		t.Fatalf("client B: %s attempt %q", msg.UUID, attemptOf(msg))
	}
	expectNothing(t, chB, time.Second)
	expectNothing(t, chA, 100*time.Millisecond)
}

// Publish errors that retrying cannot fix are marked permanent: a message
// over the broker's 5 MiB limit without chunking, a topic whose tenant does
// not exist, an invalid queue name. Chunking still carries the big message.
func TestPermanentPublishErrors(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	plain := newPublisher(t, pulsarpubsub.PublisherConfig{})
	chunked := newPublisher(t, pulsarpubsub.PublisherConfig{EnableChunking: true})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{})
	ch := subscribe(t, sub, queue)
	payload := make([]byte, 6<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	permanent := func(t *testing.T, what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		var p interface{ Permanent() bool }
		if !errors.As(err, &p) || !p.Permanent() {
			t.Fatalf("%s: error %q is not permanent", what, err)
		}
		t.Logf("%s: %v", what, err)
	}

	big := message.NewMessage(watermill.NewUUID(), payload)
	err := plain.Publish(queue, big)
	permanent(t, "6 MiB without chunking", err)
	if !errors.Is(err, pulsar.ErrMessageTooLarge) || !strings.Contains(err.Error(), big.UUID) {
		t.Errorf("error %q is not ErrMessageTooLarge naming %s", err, big.UUID)
	}

	permanent(t, "missing tenant", plain.Publish("q1/no-such-tenant-"+watermill.NewShortUUID()+"/ns/x", message.NewMessage("1", []byte("x"))))
	err = plain.Publish("q1/tg/flow", message.NewMessage("1", []byte("x")))
	permanent(t, "invalid name", err)
	if !errors.Is(err, schema.ErrInvalidTopic) {
		t.Errorf("error %q does not wrap schema.ErrInvalidTopic", err)
	}

	publish(t, chunked, queue, big)
	got := receive(t, ch, wait)
	got.Ack()
	if got.UUID != big.UUID || !bytes.Equal(got.Payload, payload) {
		t.Fatalf("chunked: got %s (%d bytes), want %s (%d bytes)", got.UUID, len(got.Payload), big.UUID, len(payload))
	}
}

// While a producer or consumer cannot be created because the broker cannot
// be reached, OnSlowConnect is called every 5 seconds with the time waited
// and the operation timeout, and not after the creation gave up. The error
// is not permanent: the broker may come back.
func TestOnSlowConnectReportsProgress(t *testing.T) {
	t.Parallel()
	const limit = 12 * time.Second
	type call struct{ elapsed, limit time.Duration }
	var mu sync.Mutex
	var calls []call
	cfg := pulsarpubsub.ClientConfig{
		URL:               "pulsar://" + closedPort(t),
		ConnectionTimeout: time.Second,
		OperationTimeout:  limit,
		OnSlowConnect: func(elapsed, limit time.Duration) {
			mu.Lock()
			calls = append(calls, call{elapsed, limit})
			mu.Unlock()
		},
	}
	pub, err := pulsarpubsub.NewPublisher(pulsarpubsub.PublisherConfig{ClientConfig: cfg}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	err = pub.Publish(uniqueQueue("q1"), message.NewMessage("1", []byte("x")))
	if err == nil {
		t.Fatal("publishing to an unreachable broker succeeded")
	}
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		t.Errorf("unreachable broker: error %q is permanent", err)
	}
	mu.Lock()
	got := append([]call(nil), calls...)
	mu.Unlock()
	time.Sleep(6 * time.Second) // another interval: no call after Publish returned
	mu.Lock()
	after := len(calls)
	mu.Unlock()
	t.Logf("calls: %v", got)
	if len(got) < 2 {
		t.Fatalf("OnSlowConnect called %d times while creating the producer, want at least 2 (at 5s and 10s of %s)", len(got), limit)
	}
	for i, c := range got {
		if c.limit != limit {
			t.Errorf("call %d: limit %s, want %s", i, c.limit, limit)
		}
		if min := time.Duration(i+1) * pulsarpubsub.DefaultSlowConnectInterval; c.elapsed < min {
			t.Errorf("call %d: elapsed %s, want at least %s", i, c.elapsed, min)
		}
	}
	if after != len(got) {
		t.Errorf("OnSlowConnect called %d times after Publish returned", after-len(got))
	}

	// A subscriber on a shared client uses the client's hook.
	mu.Lock()
	calls = nil
	mu.Unlock()
	cfg.OperationTimeout = 7 * time.Second
	client, err := pulsarpubsub.NewClient(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sub, err := pulsarpubsub.NewSubscriber(pulsarpubsub.SubscriberConfig{Client: client, SubscriptionName: "s"}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.SubscribeInitialize(uniqueQueue("q1")); err == nil {
		t.Fatal("subscribing at an unreachable broker succeeded")
	}
	mu.Lock()
	n := len(calls)
	mu.Unlock()
	if n < 1 {
		t.Fatalf("OnSlowConnect called %d times while subscribing for %s, want at least 1", n, cfg.OperationTimeout)
	}
}
