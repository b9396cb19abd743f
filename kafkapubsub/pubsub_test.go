package kafkapubsub_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/kafkapubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// TestWireMapping checks, as the broker sees them, the topics, partitions,
// retention and groups of a flow, a request and a response queue in
// TrustGraph's class form.
func TestWireMapping(t *testing.T) {
	adm := admin(t)
	suffix := strings.ToLower(watermill.NewShortUUID())
	queues := map[string]struct {
		topic     string
		retention string
	}{
		"flow:tgtest:chunk-load:ws-" + suffix:               {"tgtest.flow.chunk-load.ws-" + suffix, "604800000"},
		"request:tgtest:text-completion:default:" + suffix:  {"tgtest.request.text-completion.default." + suffix, "300000"},
		"response:tgtest:text-completion:default:" + suffix: {"tgtest.response.text-completion.default." + suffix, "300000"},
	}
	pub := newPublisher(t)
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: "text-completion--default--" + suffix})
	for q, want := range queues {
		name, err := kafkapubsub.TopicName(q)
		if err != nil || name != want.topic {
			t.Fatalf("TopicName(%s) = %q, %v; want %q", q, name, err, want.topic)
		}
		ch, _ := subscribe(t, sub, q)
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{"x":1}`))
		msg.Metadata.Set(schema.IDProperty, "req-1")
		publish(t, pub, q, msg)
		got := receive(t, ch, 30*time.Second)
		if got.UUID != msg.UUID || got.Metadata.Get("id") != "req-1" || got.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
			t.Fatalf("%s: got uuid %s metadata %v", q, got.UUID, got.Metadata)
		}
		got.Ack()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	for _, w := range queues {
		names = append(names, w.topic)
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range queues {
		d, ok := details[w.topic]
		if !ok || d.Err != nil {
			t.Fatalf("topic %s not on the broker: %v", w.topic, d.Err)
		}
		if len(d.Partitions) != 1 || d.Partitions.NumReplicas() != 1 {
			t.Errorf("topic %s: %d partitions, %d replicas; want 1, 1", w.topic, len(d.Partitions), d.Partitions.NumReplicas())
		}
		rc, err := configs.On(w.topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		var retention string
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.Value != nil {
				retention = *c.Value
			}
		}
		if retention != w.retention {
			t.Errorf("topic %s: retention.ms %q, want %q", w.topic, retention, w.retention)
		}
		t.Logf("topic %s: %d partition, rf %d, retention.ms %s", w.topic, len(d.Partitions), d.Partitions.NumReplicas(), retention)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shared := "text-completion--default--" + suffix
	var perClient []string
	for _, g := range groups.Groups() {
		if strings.HasPrefix(g, shared+"-") {
			perClient = append(perClient, g)
		}
	}
	if _, ok := groups[shared]; !ok {
		t.Errorf("group %s (flow and request) not listed; groups: %v", shared, groups.Groups())
	}
	if len(perClient) != 1 {
		t.Errorf("want one per-client response group %s-{uuid}, got %v", shared, perClient)
	}
	described, err := adm.DescribeGroups(ctx, append([]string{shared}, perClient...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range described.Sorted() {
		var topics []string
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range a.Topics {
					topics = append(topics, tp.Topic)
				}
			}
		}
		t.Logf("group %s: state %s, protocol %s, %d members, assigned %v", g.Group, g.State, g.Protocol, len(g.Members), topics)
	}
}

// TestInOrderCommit acks out of order, restarts the consumer and checks that
// only the messages at or above the first unacked one come again.
func TestInOrderCommit(t *testing.T) {
	topic := uniqueQueue("q1", "flow")
	group := "inorder-" + watermill.NewShortUUID()
	pub := newPublisher(t)
	sub1 := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group})
	ch, _ := subscribe(t, sub1, topic)
	publish(t, pub, topic, newMessages(6, "m")...)
	// Two Subscribe calls would let us hold several messages; one channel
	// hands out the next only after an ack or nack, so ack 0 and 1, then
	// hold 2 unacked by closing before acking it, after acking 3.. through
	// a second channel.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	ch2, err := sub1.Subscribe(ctx2, topic)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*message.Message{}
	m0 := receive(t, ch, 30*time.Second)
	got[string(m0.Payload)] = m0
	m1 := receive(t, ch2, 30*time.Second)
	got[string(m1.Payload)] = m1
	// m0 and m1 are the first two in some order; ack the later one only,
	// then take and ack everything else through the other channel.
	first, second := m0, m1
	if string(m0.Payload) > string(m1.Payload) {
		first, second = m1, m0
	}
	if string(first.Payload) != "m-0" || string(second.Payload) != "m-1" {
		t.Fatalf("first two messages %q, %q", first.Payload, second.Payload)
	}
	second.Ack()
	next := ch
	if second == m0 {
		next = ch
	} else {
		next = ch2
	}
	for i := 2; i < 6; i++ {
		m := receive(t, next, 30*time.Second)
		m.Ack()
	}
	// m-0 stays unacked. Restart: everything from m-0 on comes again.
	time.Sleep(500 * time.Millisecond)
	if err := sub1.Close(); err != nil {
		t.Fatal(err)
	}
	sub2 := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group})
	ch3, _ := subscribe(t, sub2, topic)
	for i := 0; i < 6; i++ {
		m := receive(t, ch3, 30*time.Second)
		if want := "m-" + string(rune('0'+i)); string(m.Payload) != want {
			t.Fatalf("redelivery %d: %q, want %q", i, m.Payload, want)
		}
		m.Ack()
	}
	expectNothing(t, ch3, 2*time.Second)
	// Now everything is acked in order: a third consumer gets nothing.
	if err := sub2.Close(); err != nil {
		t.Fatal(err)
	}
	sub3 := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group})
	ch4, _ := subscribe(t, sub3, topic)
	expectNothing(t, ch4, 3*time.Second)
}

// TestInOrderCommitGap acks every message but one in the middle, restarts,
// and checks that exactly the messages from the gap on come again.
func TestInOrderCommitGap(t *testing.T) {
	topic := uniqueQueue("q1", "flow")
	group := "gap-" + watermill.NewShortUUID()
	pub := newPublisher(t)
	sub1 := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := sub1.SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	chA, err := sub1.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	chB, err := sub1.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, pub, topic, newMessages(10, "g")...)
	// Hold m-3 on one channel; ack everything else through the other.
	var held *message.Message
	acked := 0
	deadline := time.After(60 * time.Second)
	for acked < 9 {
		var m *message.Message
		select {
		case m = <-chA:
		case m = <-chB:
		case <-deadline:
			t.Fatalf("only %d messages acked", acked)
		}
		if string(m.Payload) == "g-3" {
			held = m
			continue
		}
		m.Ack()
		acked++
	}
	if held == nil {
		t.Fatal("g-3 never arrived")
	}
	time.Sleep(500 * time.Millisecond)
	if err := sub1.Close(); err != nil {
		t.Fatal(err)
	}
	sub2 := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group})
	ch, _ := subscribe(t, sub2, topic)
	for i := 3; i < 10; i++ {
		m := receive(t, ch, 30*time.Second)
		if want := "g-" + string(rune('0'+i)); string(m.Payload) != want {
			t.Fatalf("after restart: %q, want %q (only g-3 and above may come again)", m.Payload, want)
		}
		m.Ack()
	}
	expectNothing(t, ch, 2*time.Second)
}

// TestNackRepublishes nacks a message and checks that it comes back with
// attempt 2 to the same group, behind a later message, and never to
// another group on the topic.
func TestNackRepublishes(t *testing.T) {
	topic := uniqueQueue("q1", "flow")
	pub := newPublisher(t)
	subA := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: "nack-a-" + watermill.NewShortUUID()})
	subB := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: "nack-b-" + watermill.NewShortUUID()})
	chA, _ := subscribe(t, subA, topic)
	chB, _ := subscribe(t, subB, topic)
	msgs := newMessages(2, "n")
	msgs[0].Metadata.Set("id", "x-1")
	publish(t, pub, topic, msgs...)

	a0 := receive(t, chA, 30*time.Second)
	if a0.UUID != msgs[0].UUID || a0.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
		t.Fatalf("first delivery: %s %v", a0.UUID, a0.Metadata)
	}
	a0.Nack()
	a1 := receive(t, chA, 30*time.Second)
	if a1.UUID != msgs[1].UUID {
		t.Fatalf("after the nack got %s, want the next message %s", a1.UUID, msgs[1].UUID)
	}
	a1.Ack()
	again := receive(t, chA, 30*time.Second)
	if again.UUID != msgs[0].UUID || again.Metadata.Get(schema.DeliveryAttemptKey) != "2" || again.Metadata.Get("id") != "x-1" {
		t.Fatalf("redelivery: uuid %s metadata %v", again.UUID, again.Metadata)
	}
	if _, ok := again.Metadata[kafkapubsub.RedeliverToHeader]; ok {
		t.Fatalf("redelivery metadata carries %s", kafkapubsub.RedeliverToHeader)
	}
	again.Nack()
	third := receive(t, chA, 30*time.Second)
	if third.UUID != msgs[0].UUID || third.Metadata.Get(schema.DeliveryAttemptKey) != "3" {
		t.Fatalf("second redelivery: uuid %s metadata %v", third.UUID, third.Metadata)
	}
	third.Ack()

	for i := 0; i < 2; i++ {
		b := receive(t, chB, 30*time.Second)
		if b.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
			t.Fatalf("group B got a copy: %s %v", b.UUID, b.Metadata)
		}
		b.Ack()
	}
	expectNothing(t, chB, 2*time.Second)
	expectNothing(t, chA, time.Second)
}

// TestPermanentErrors checks that errors retrying cannot fix satisfy the
// Permanent interface.
func TestPermanentErrors(t *testing.T) {
	pub := newPublisher(t)
	var p interface{ Permanent() bool }

	big := message.NewMessage(watermill.NewUUID(), make([]byte, kafkapubsub.MaxMessageBytes+1))
	err := pub.Publish(uniqueQueue("q1", "flow"), big)
	if err == nil || !errors.As(err, &p) || !p.Permanent() {
		t.Fatalf("too large: %v, want a permanent error", err)
	}
	if !strings.Contains(err.Error(), big.UUID) {
		t.Errorf("error does not name the message: %v", err)
	}

	err = pub.Publish("q1/tgtest/flow/a=b", message.NewMessage(watermill.NewUUID(), []byte("x")))
	if err == nil || !errors.As(err, &p) || !p.Permanent() {
		t.Fatalf("invalid topic: %v, want a permanent error", err)
	}
	err = pub.Publish("bogus", message.NewMessage(watermill.NewUUID(), []byte("x")))
	if err == nil || !errors.As(err, &p) || !errors.Is(err, schema.ErrInvalidTopic) {
		t.Fatalf("malformed queue: %v, want a permanent error wrapping schema.ErrInvalidTopic", err)
	}
}

// TestSASL publishes and receives over the broker's SASL_PLAINTEXT listener
// and checks that a wrong password is a permanent error that does not show
// the password, and that Health reports it.
func TestSASL(t *testing.T) {
	addr := brokertest.Env(t, "SWITCHYARD_KAFKA_SASL_BOOTSTRAP")
	user := brokertest.Env(t, "SWITCHYARD_KAFKA_SASL_USERNAME")
	password := brokertest.Env(t, "SWITCHYARD_KAFKA_SASL_PASSWORD")
	cfg := kafkapubsub.Config{
		BootstrapServers: addr,
		SecurityProtocol: kafkapubsub.ProtocolSASLPlaintext,
		SASLMechanism:    kafkapubsub.MechanismPlain,
		SASLUsername:     user,
		SASLPassword:     password,
		RequestTimeout:   10 * time.Second,
	}
	topic := uniqueQueue("q1", "flow")
	pub, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{Config: cfg}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{Config: cfg, SubscriptionName: "sasl-" + watermill.NewShortUUID()})
	ch, _ := subscribe(t, sub, topic)
	msg := message.NewMessage(watermill.NewUUID(), []byte("over sasl"))
	publish(t, pub, topic, msg)
	if got := receive(t, ch, 30*time.Second); got.UUID != msg.UUID {
		t.Fatalf("got %s", got.UUID)
	} else {
		got.Ack()
	}
	if err := pub.Health(); err != nil {
		t.Fatalf("Health: %v", err)
	}

	bad := cfg
	bad.SASLPassword = "wrong-secret-value"
	badPub, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{Config: bad}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer badPub.Close()
	err = badPub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("x")))
	var p interface{ Permanent() bool }
	if err == nil || !errors.As(err, &p) || !p.Permanent() {
		t.Fatalf("wrong password: %v, want a permanent error", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatalf("the error shows the password: %v", err)
	}
	herr := badPub.Health()
	if herr == nil || strings.Contains(herr.Error(), "wrong-secret-value") {
		t.Fatalf("Health with a wrong password: %v", herr)
	}
	t.Logf("wrong password: %v; Health: %v", err, herr)
}

// TestHealthUnreachable checks that Health names a broker that cannot be
// reached.
func TestHealthUnreachable(t *testing.T) {
	pub, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{Config: kafkapubsub.Config{
		BootstrapServers: "127.0.0.1:1", RequestTimeout: 2 * time.Second, DialTimeout: time.Second,
	}}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Health(); err != nil {
		t.Fatalf("Health before any use: %v", err)
	}
	if err := pub.Publish("q1/tgtest/flow/x", message.NewMessage(watermill.NewUUID(), []byte("x"))); err == nil {
		t.Fatal("Publish to an unreachable broker succeeded")
	}
	herr := pub.Health()
	if herr == nil || !strings.Contains(herr.Error(), "127.0.0.1:1") {
		t.Fatalf("Health: %v, want an error naming 127.0.0.1:1", herr)
	}
}
