package rabbitmqpubsub_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// TestWireLayoutOnBroker checks the exchanges and queues as the broker
// lists them for a flow, a request and a response topic in TrustGraph's
// names, with TrustGraph's subscription naming.
func TestWireLayoutOnBroker(t *testing.T) {
	id := uniqueName("wire")
	flow := "flow:tg:" + id + "-chunk-load:default"
	request := "request:tg:" + id + "-text-completion:default:default"
	response := "response:tg:" + id + "-text-completion:default:default"
	sub := "text-completion--default--default--request"

	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: sub})
	for _, topic := range []string{flow, request, response} {
		subscribe(t, s, topic)
	}
	waitConsuming(t, s)
	deleteQueueAtEnd(t, "tg.flow."+id+"-chunk-load:default."+sub, "tg.request."+id+"-text-completion:default:default."+sub)

	exchanges := ctl(t, "-q", "list_exchanges", "name", "type", "durable", "auto_delete", "internal")
	queues := ctl(t, "-q", "list_queues", "name", "durable", "auto_delete", "exclusive", "arguments")
	t.Logf("rabbitmqctl list_exchanges name type durable auto_delete internal:\n%s",
		strings.Join(linesContaining(exchanges, id), "\n"))
	t.Logf("rabbitmqctl list_queues name durable auto_delete exclusive arguments:\n%s",
		strings.Join(linesContaining(queues, id), "\n"))

	for _, want := range []string{
		"tg.flow." + id + "-chunk-load:default\tfanout\ttrue\tfalse\tfalse",
		"tg.request." + id + "-text-completion:default:default\tfanout\ttrue\tfalse\tfalse",
		"tg.response." + id + "-text-completion:default:default\tfanout\ttrue\tfalse\tfalse",
	} {
		if len(linesContaining(exchanges, want)) != 1 {
			t.Errorf("exchange line %q not listed; got:\n%s", want, strings.Join(linesContaining(exchanges, id), "\n"))
		}
	}
	for _, want := range []string{
		"tg.flow." + id + "-chunk-load:default." + sub + "\ttrue\tfalse\tfalse\t[]",
		"tg.request." + id + "-text-completion:default:default." + sub + "\tfalse\tfalse\tfalse\t[]",
	} {
		if len(linesContaining(queues, want)) != 1 {
			t.Errorf("queue line %q not listed; got:\n%s", want, strings.Join(linesContaining(queues, id), "\n"))
		}
	}
	// The response queue is server-named (amq.gen-…): find it through its
	// binding to the response exchange.
	bindings := ctl(t, "-q", "list_bindings", "source_name", "destination_name", "routing_key")
	var respQueue string
	for _, l := range linesContaining(bindings, "tg.response."+id) {
		f := strings.Split(l, "\t")
		if len(f) >= 2 {
			respQueue = f[1]
		}
	}
	if !strings.HasPrefix(respQueue, "amq.gen-") {
		t.Fatalf("response exchange bound to %q, want a server-named amq.gen-… queue; bindings:\n%s", respQueue, strings.Join(linesContaining(bindings, id), "\n"))
	}
	line := linesContaining(queues, respQueue)
	t.Logf("response queue: %s", strings.Join(line, "\n"))
	if len(line) != 1 || !strings.HasSuffix(line[0], "\tfalse\ttrue\ttrue\t[]") {
		t.Errorf("response queue %s listed as %q, want durable=false auto_delete=true exclusive=true, no arguments", respQueue, line)
	}
}

// TestPublishedMessageProperties checks what a plain AMQP consumer sees of
// a published message: routing key "", content type, delivery mode per
// class, headers as strings with `id`, and no attempt header.
func TestPublishedMessageProperties(t *testing.T) {
	id := uniqueName("props")
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
	for _, tc := range []struct {
		topic string
		mode  uint8
	}{
		{"flow:tg:" + id, amqp.Persistent},
		{"request:tg:" + id, amqp.Transient},
		{"response:tg:" + id, amqp.Transient},
	} {
		w, err := rabbitmqpubsub.WireOf(tc.topic)
		if err != nil {
			t.Fatal(err)
		}
		ch := rawChannel(t)
		// Declared as TrustGraph does, so the publisher's declaration matches.
		if err := ch.ExchangeDeclare(w.Exchange, "fanout", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q.Name, "", w.Exchange, false, nil); err != nil {
			t.Fatal(err)
		}
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{"x":1}`))
		msg.Metadata.Set(schema.IDProperty, "req-1")
		msg.Metadata.Set(schema.DeliveryAttemptKey, "7")
		publish(t, p, tc.topic, msg)
		d, ok, err := getOne(ch, q.Name)
		if err != nil || !ok {
			t.Fatalf("%s: no message on the raw queue: %v", tc.topic, err)
		}
		if d.Exchange != w.Exchange || d.RoutingKey != "" {
			t.Errorf("%s: exchange %q routing key %q, want %q and \"\"", tc.topic, d.Exchange, d.RoutingKey, w.Exchange)
		}
		if d.ContentType != "application/json" || d.DeliveryMode != tc.mode {
			t.Errorf("%s: content type %q delivery mode %d, want application/json and %d", tc.topic, d.ContentType, d.DeliveryMode, tc.mode)
		}
		if v, ok := d.Headers["id"].(string); !ok || v != "req-1" {
			t.Errorf("%s: header id = %#v, want the string req-1", tc.topic, d.Headers["id"])
		}
		if _, ok := d.Headers[schema.DeliveryAttemptKey]; ok {
			t.Errorf("%s: published with an attempt header: %v", tc.topic, d.Headers)
		}
		if d.MessageId != msg.UUID || string(d.Body) != `{"x":1}` {
			t.Errorf("%s: message_id %q body %q", tc.topic, d.MessageId, d.Body)
		}
	}
}

func getOne(ch *amqp.Channel, queue string) (amqp.Delivery, bool, error) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		d, ok, err := ch.Get(queue, true)
		if err != nil || ok {
			return d, ok, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return amqp.Delivery{}, false, nil
}

// TestDeclareFlagsInteropWithPython declares exchanges and queues with the
// flags TrustGraph's Python backend uses (aio-pika: fanout durable
// exchange; flow queue durable, request queue not, neither exclusive nor
// auto-delete, no arguments) before and after the adapter does: the broker
// refuses neither (a difference would be 406 PRECONDITION_FAILED).
func TestDeclareFlagsInteropWithPython(t *testing.T) {
	sub := "interop--default--default--input"
	for _, class := range []string{"flow", "request", "response"} {
		for _, pythonFirst := range []bool{true, false} {
			name := class
			if pythonFirst {
				name += "/python-first"
			} else {
				name += "/go-first"
			}
			t.Run(name, func(t *testing.T) {
				topic := class + ":tg:" + uniqueName("flags")
				w, err := rabbitmqpubsub.WireOf(topic)
				if err != nil {
					t.Fatal(err)
				}
				queue := w.Exchange + "." + sub
				deleteQueueAtEnd(t, queue)
				python := func() {
					ch := rawChannel(t)
					if err := ch.ExchangeDeclare(w.Exchange, "fanout", true, false, false, false, nil); err != nil {
						t.Fatalf("Python-style exchange declare: %v", err)
					}
					if class == "response" {
						return
					}
					if _, err := ch.QueueDeclare(queue, class == "flow", false, false, false, nil); err != nil {
						t.Fatalf("Python-style queue declare: %v", err)
					}
				}
				if pythonFirst {
					python()
				}
				s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: sub})
				msgs := subscribe(t, s, topic)
				waitConsuming(t, s)
				if !pythonFirst {
					python()
				}
				p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
				publish(t, p, topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
				receive(t, msgs, 10*time.Second).Ack()
				if err := s.Health(); err != nil {
					t.Errorf("Health after the declarations: %v", err)
				}
			})
		}
	}
	// A declaration that differs is refused, and the publisher calls that
	// permanent.
	t.Run("mismatch-is-permanent", func(t *testing.T) {
		topic := "flow:tg:" + uniqueName("mismatch")
		w, _ := rabbitmqpubsub.WireOf(topic)
		ch := rawChannel(t)
		if err := ch.ExchangeDeclare(w.Exchange, "topic", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rawChannel(t).ExchangeDelete(w.Exchange, false, false) })
		p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
		err := p.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
		var perm interface{ Permanent() bool }
		if err == nil || !errors.As(err, &perm) || !perm.Permanent() {
			t.Fatalf("Publish to an exchange declared as another type: %v, want a permanent error", err)
		}
		t.Logf("error: %v", err)
	})
}

// TestNackRepublishesToSameQueueOnly nacks a message on one of two
// subscriptions of a flow topic: it comes back on that subscription only,
// with attempt 2, after the nack delay and behind a message published
// meanwhile.
func TestNackRepublishesToSameQueueOnly(t *testing.T) {
	topic := "flow:tg:" + uniqueName("nack")
	w, _ := rabbitmqpubsub.WireOf(topic)
	deleteQueueAtEnd(t, w.QueueName("a"), w.QueueName("b"))
	delay := 300 * time.Millisecond
	a := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "a", NackDelay: delay})
	b := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "b", NackDelay: delay})
	ma := subscribe(t, a, topic)
	mb := subscribe(t, b, topic)
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
	first := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
	first.Metadata.Set("id", "r1")
	publish(t, p, topic, first)

	got := receive(t, ma, 10*time.Second)
	if got.UUID != first.UUID || got.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
		t.Fatalf("first delivery: %s attempt %q", got.UUID, got.Metadata.Get(schema.DeliveryAttemptKey))
	}
	nackedAt := time.Now()
	got.Nack()
	second := message.NewMessage(watermill.NewUUID(), []byte(`{"n":2}`))
	publish(t, p, topic, second)

	next := receive(t, ma, 10*time.Second)
	if next.UUID != second.UUID {
		t.Fatalf("after the nack got %s, want the message published meanwhile %s", next.UUID, second.UUID)
	}
	next.Ack()
	again := receive(t, ma, 10*time.Second)
	if again.UUID != first.UUID || again.Metadata.Get(schema.DeliveryAttemptKey) != "2" || again.Metadata.Get("id") != "r1" {
		t.Fatalf("redelivery: %s attempt %q id %q, want %s attempt 2 id r1", again.UUID, again.Metadata.Get(schema.DeliveryAttemptKey), again.Metadata.Get("id"), first.UUID)
	}
	if waited := time.Since(nackedAt); waited < delay {
		t.Errorf("redelivered after %s, before the nack delay %s", waited, delay)
	}
	again.Nack()
	third := receive(t, ma, 10*time.Second)
	if third.UUID != first.UUID || third.Metadata.Get(schema.DeliveryAttemptKey) != "3" {
		t.Fatalf("second redelivery: %s attempt %q", third.UUID, third.Metadata.Get(schema.DeliveryAttemptKey))
	}
	third.Ack()

	for _, want := range []string{first.UUID, second.UUID} {
		m := receive(t, mb, 10*time.Second)
		if m.UUID != want || m.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
			t.Fatalf("subscription b got %s attempt %q, want %s attempt 1", m.UUID, m.Metadata.Get(schema.DeliveryAttemptKey), want)
		}
		m.Ack()
	}
	expectNothing(t, mb, 2*delay+500*time.Millisecond)
	expectNothing(t, ma, 500*time.Millisecond)
}

// TestAttemptFromRedeliveredFlag: a message left unacked by a consumer that
// went away comes back with the redelivered flag, counted as attempt 2.
func TestAttemptFromRedeliveredFlag(t *testing.T) {
	topic := "flow:tg:" + uniqueName("redelivered")
	w, _ := rabbitmqpubsub.WireOf(topic)
	deleteQueueAtEnd(t, w.QueueName("g"))
	s1 := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "g"})
	ctx, cancel := context.WithCancel(context.Background())
	if err := s1.SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	ch1, err := s1.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	publish(t, p, topic, msg)
	got := receive(t, ch1, 10*time.Second)
	if got.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
		t.Fatalf("attempt %q on first delivery", got.Metadata.Get(schema.DeliveryAttemptKey))
	}
	cancel() // the consumer goes away without acking
	for range ch1 {
	}
	s2 := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "g"})
	again := receive(t, subscribe(t, s2, topic), 10*time.Second)
	if again.UUID != msg.UUID || again.Metadata.Get(schema.DeliveryAttemptKey) != "2" {
		t.Fatalf("redelivered %s attempt %q, want %s attempt 2", again.UUID, again.Metadata.Get(schema.DeliveryAttemptKey), msg.UUID)
	}
	again.Ack()
}

// TestPermanentPublishErrors: a message above the broker's max_message_size
// (16 MiB in scripts/rabbitmq.sh) and a user without write permission give
// permanent errors naming the message; the publisher keeps working after the
// first.
func TestPermanentPublishErrors(t *testing.T) {
	topic := "request:tg:" + uniqueName("perm")
	var perm interface{ Permanent() bool }

	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
	small := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	big := message.NewMessage(watermill.NewUUID(), make([]byte, 17<<20))
	err := p.Publish(topic, small, big)
	if err == nil || !errors.As(err, &perm) || !perm.Permanent() {
		t.Fatalf("publishing 17 MiB: %v, want a permanent error", err)
	}
	if !strings.Contains(err.Error(), big.UUID) {
		t.Errorf("the error does not name the large message %s: %v", big.UUID, err)
	}
	t.Logf("too large: %v", err)
	publish(t, p, topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))

	cfg := connConfig(t)
	cfg.Username = os.Getenv("SWITCHYARD_RABBITMQ_RO_USER")
	if cfg.Username == "" {
		t.Fatal("SWITCHYARD_RABBITMQ_RO_USER is not set; scripts/rabbitmq.sh env sets it")
	}
	ro := newPublisher(t, rabbitmqpubsub.PublisherConfig{ConnectionConfig: cfg})
	err = ro.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
	if err == nil || !errors.As(err, &perm) || !perm.Permanent() {
		t.Fatalf("publishing without permission: %v, want a permanent error", err)
	}
	if strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("the error shows the password: %v", err)
	}
	t.Logf("access refused: %v", err)

	if err := p.Publish("q1/tg/flow/bad name", small); err == nil || !errors.As(err, &perm) {
		t.Fatalf("publishing to an invalid name: %v, want a permanent error", err)
	}
}

// TestResponseSubscribersEachSeeEverything: two subscribers of a response
// topic each get every message; two Subscribe calls on one subscriber
// share its queue and compete.
func TestResponseSubscribersEachSeeEverything(t *testing.T) {
	topic := "response:tg:" + uniqueName("resp")
	s1 := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{})
	s2 := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{})
	a := subscribe(t, s1, topic)
	b := subscribe(t, s1, topic)
	c := subscribe(t, s2, topic)
	waitConsuming(t, s1)
	waitConsuming(t, s2)
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
	msgs := newMessages(20, "r")
	publish(t, p, topic, msgs...)
	seen := map[string]int{}
	for range msgs {
		m := receive(t, c, 10*time.Second)
		seen[m.UUID]++
		m.Ack()
	}
	shared := map[string]int{}
	for range msgs {
		var m *message.Message
		select {
		case m = <-a:
		case m = <-b:
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber 1 got %d of %d messages", len(shared), len(msgs))
		}
		shared[m.UUID]++
		m.Ack()
	}
	if len(seen) != len(msgs) || len(shared) != len(msgs) {
		t.Fatalf("subscriber 2 got %d distinct, subscriber 1 (two Subscribe calls) %d distinct, want %d each", len(seen), len(shared), len(msgs))
	}
	expectNothing(t, a, 300*time.Millisecond)
	expectNothing(t, b, 100*time.Millisecond)
}
