package pulsarpubsub_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/switchyard-go/switchyard/pulsarpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

const wait = 20 * time.Second

// q0 queues travel on non-persistent topics and q1 and q2 queues on
// persistent ones: the broker's admin API lists each under its kind.
func TestQoSMapsToTopicKindOnTheBroker(t *testing.T) {
	t.Parallel()
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{})

	cases := []struct {
		qos, kind string
	}{
		{"q0", "non-persistent"},
		{"q1", "persistent"},
		{"q2", "persistent"},
	}
	for _, c := range cases {
		queue := uniqueQueue(c.qos)
		want, err := pulsarpubsub.TopicName(queue)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(want, c.kind+"://public/default/") {
			t.Fatalf("TopicName(%s) = %s, want a %s topic", queue, want, c.kind)
		}
		// A subscriber keeps a non-persistent topic alive while it is listed.
		ch := subscribe(t, sub, queue)
		publish(t, pub, queue, message.NewMessage(watermill.NewUUID(), []byte(c.qos)))
		msg := receive(t, ch, wait)
		msg.Ack()
		if string(msg.Payload) != c.qos {
			t.Fatalf("%s: got payload %q", queue, msg.Payload)
		}
		listed := adminList(t, "/admin/v2/"+c.kind+"/public/default")
		if !contains(listed, want) {
			t.Errorf("%s: %s not listed by /admin/v2/%s/public/default", queue, want, c.kind)
		}
		other := "persistent"
		if c.kind == "persistent" {
			other = "non-persistent"
		}
		otherName := other + "://" + strings.TrimPrefix(want, c.kind+"://")
		if contains(adminList(t, "/admin/v2/"+other+"/public/default"), otherName) {
			t.Errorf("%s: also listed as %s", queue, otherName)
		}
	}

	// A raw Pulsar URI is used as it is.
	raw := "persistent://public/default/raw-" + watermill.NewShortUUID()
	ch := subscribe(t, sub, raw)
	publish(t, pub, raw, message.NewMessage(watermill.NewUUID(), []byte("raw")))
	receive(t, ch, wait).Ack()
	if !contains(adminList(t, "/admin/v2/persistent/public/default"), raw) {
		t.Errorf("%s not listed", raw)
	}
}

// The UUID and the metadata survive the trip; a message from a producer that
// does not set the UUID property gets a fresh UUID, and its properties and
// key are the metadata.
func TestMetadataAndUUIDRoundTrip(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{MessageKeyMetadata: "partition_key"})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{MessageKeyMetadata: "partition_key"})
	ch := subscribe(t, sub, queue)

	sent := message.NewMessage(watermill.NewUUID(), []byte(`{"question":"why?"}`))
	sent.Metadata.Set("id", "req-42")
	sent.Metadata.Set("partition_key", "k1")
	sent.Metadata.Set("empty", "")
	sent.Metadata.Set("unicode", "grüße ✓")
	empty := message.NewMessage(watermill.NewUUID(), nil)
	publish(t, pub, queue, sent, empty)

	got := receive(t, ch, wait)
	got.Ack()
	if got.UUID != sent.UUID {
		t.Errorf("UUID = %s, want %s", got.UUID, sent.UUID)
	}
	if !bytes.Equal(got.Payload, sent.Payload) {
		t.Errorf("payload = %q, want %q", got.Payload, sent.Payload)
	}
	// The adapter adds the delivery attempt: 1, the first delivery.
	want := maps.Clone(sent.Metadata)
	want[schema.DeliveryAttemptKey] = "1"
	if !maps.Equal(got.Metadata, want) {
		t.Errorf("metadata = %v, want %v", got.Metadata, want)
	}
	if _, ok := got.Metadata[pulsarpubsub.UUIDProperty]; ok {
		t.Errorf("metadata carries %s", pulsarpubsub.UUIDProperty)
	}
	got = receive(t, ch, wait)
	got.Ack()
	if got.UUID != empty.UUID || len(got.Payload) != 0 {
		t.Errorf("empty message: got %s %q", got.UUID, got.Payload)
	}

	// A foreign producer: the raw client, no UUID property.
	name, _ := pulsarpubsub.TopicName(queue)
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: brokerURL(t), Logger: pulsarlog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: name})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for range 2 {
		if _, err := producer.Send(context.Background(), &pulsar.ProducerMessage{
			Payload: []byte("foreign"), Key: "k2", Properties: map[string]string{"id": "py-1"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	first := receive(t, ch, wait)
	first.Ack()
	second := receive(t, ch, wait)
	second.Ack()
	for _, m := range []*message.Message{first, second} {
		if m.UUID == "" || string(m.Payload) != "foreign" || m.Metadata.Get("id") != "py-1" || m.Metadata.Get("partition_key") != "k2" {
			t.Errorf("foreign message: uuid %q payload %q metadata %v", m.UUID, m.Payload, m.Metadata)
		}
	}
	if first.UUID == second.UUID {
		t.Errorf("two foreign messages got the same UUID %s", first.UUID)
	}
}

// A nacked message comes again after the configured delay, not the client
// library's minute.
func TestNackRedeliversAfterTheDelay(t *testing.T) {
	t.Parallel()
	const delay = time.Second
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{NackRedeliveryDelay: delay})
	ch := subscribe(t, sub, queue)
	sent := message.NewMessage(watermill.NewUUID(), []byte("again"))
	publish(t, pub, queue, sent)

	first := receive(t, ch, wait)
	nacked := time.Now()
	first.Nack()
	again := receive(t, ch, delay+10*time.Second)
	took := time.Since(nacked)
	again.Ack()
	t.Logf("redelivered %s after the nack", took)
	if again.UUID != sent.UUID {
		t.Fatalf("redelivered %s, want %s", again.UUID, sent.UUID)
	}
	// The client rounds the delay down by up to 255ms.
	if took < delay/2 {
		t.Errorf("redelivered after %s, before the delay of %s", took, delay)
	}
	expectNothing(t, ch, 2*delay)
}

// A nack of one message of a batch delivers the whole batch again, unless
// batch index acknowledgment is on (scripts/pulsar.sh turns it on in the
// broker); then only the nacked message comes again.
func TestNackInABatch(t *testing.T) {
	t.Parallel()
	for _, indexAck := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch-index-ack=%v", indexAck), func(t *testing.T) {
			queue := uniqueQueue("q1")
			// No timer flush: the Publish call below is one batch.
			pub := newPublisher(t, pulsarpubsub.PublisherConfig{BatchingMaxPublishDelay: time.Hour})
			sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{
				NackRedeliveryDelay: 200 * time.Millisecond, EnableBatchIndexAcknowledgment: indexAck,
			})
			ch := subscribe(t, sub, queue)
			msgs := newMessages(3, "b")
			publish(t, pub, queue, msgs...) // one batch
			for i := range msgs {
				m := receive(t, ch, wait)
				if m.UUID != msgs[i].UUID {
					t.Fatalf("message %d is %s, want %s", i, m.UUID, msgs[i].UUID)
				}
				if i == 1 {
					m.Nack()
				} else {
					m.Ack()
				}
			}
			var again []string
			for {
				select {
				case m := <-ch:
					again = append(again, string(m.Payload))
					m.Ack()
					continue
				case <-time.After(2 * time.Second):
				}
				break
			}
			want := []string{"b-0", "b-1", "b-2"}
			if indexAck {
				want = []string{"b-1"}
			}
			if !slices.Equal(again, want) {
				t.Fatalf("delivered again: %v, want %v", again, want)
			}
		})
	}
}

// A message nacked MaxDeliveries times goes to the dead-letter topic, with
// its UUID and metadata, and does not come back to the subscription.
func TestDeadLetterAfterMaxDeliveries(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	dlq := queue + "-dlq"
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	dlqSub := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: "dlq-reader"})
	dlqCh := subscribe(t, dlqSub, dlq)
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{
		NackRedeliveryDelay: 200 * time.Millisecond,
		DeadLetter:          &pulsarpubsub.DeadLetterPolicy{MaxDeliveries: 3, Topic: dlq},
	})
	ch := subscribe(t, sub, queue)

	poison := message.NewMessage(watermill.NewUUID(), []byte("poison"))
	poison.Metadata.Set("id", "p-1")
	good := message.NewMessage(watermill.NewUUID(), []byte("good"))
	// Two Publish calls, two batches: a nacked message's batch is
	// delivered again as a whole (see TestNackInABatch).
	publish(t, pub, queue, poison)
	publish(t, pub, queue, good)

	deliveries := 0
	gotGood := false
	deadline := time.After(wait)
	for deliveries < 3 || !gotGood {
		select {
		case msg := <-ch:
			switch msg.UUID {
			case poison.UUID:
				deliveries++
				msg.Nack()
			case good.UUID:
				gotGood = true
				msg.Ack()
			default:
				t.Fatalf("unexpected message %s", msg.UUID)
			}
		case <-deadline:
			t.Fatalf("poison delivered %d times, good received %v", deliveries, gotGood)
		}
	}
	dead := receive(t, dlqCh, wait)
	dead.Ack()
	if dead.UUID != poison.UUID || string(dead.Payload) != "poison" || dead.Metadata.Get("id") != "p-1" {
		t.Fatalf("dead letter: %s %q %v", dead.UUID, dead.Payload, dead.Metadata)
	}
	expectNothing(t, ch, time.Second)
}

// A 10 MB message, twice the broker's maximum message size, goes through in
// chunks; without chunking it is refused with an error naming it.
func TestLargeMessageWithChunking(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	payload := make([]byte, 10<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	chunked := newPublisher(t, pulsarpubsub.PublisherConfig{EnableChunking: true})
	plain := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{})
	ch := subscribe(t, sub, queue)

	big := message.NewMessage(watermill.NewUUID(), payload)
	big.Metadata.Set("id", "big")
	publish(t, chunked, queue, big)
	got := receive(t, ch, wait)
	got.Ack()
	if got.UUID != big.UUID || got.Metadata.Get("id") != "big" || !bytes.Equal(got.Payload, payload) {
		t.Fatalf("got %s (%d bytes, metadata %v), want %s (%d bytes)", got.UUID, len(got.Payload), got.Metadata, big.UUID, len(payload))
	}

	small := message.NewMessage(watermill.NewUUID(), []byte("small"))
	tooBig := message.NewMessage(watermill.NewUUID(), payload)
	err := plain.Publish(queue, small, tooBig)
	if err == nil {
		t.Fatal("publishing 10 MB without chunking succeeded")
	}
	if !errors.Is(err, pulsar.ErrMessageTooLarge) || !strings.Contains(err.Error(), "message 1 (uuid "+tooBig.UUID+")") {
		t.Fatalf("error %q does not name message 1 (uuid %s) as too large", err, tooBig.UUID)
	}
	got = receive(t, ch, wait)
	got.Ack()
	if got.UUID != small.UUID {
		t.Fatalf("got %s, want the small message %s", got.UUID, small.UUID)
	}
}

// An exclusive subscription admits one subscriber; a shared one spreads the
// messages over all of them, each message to one.
func TestExclusiveAndSharedSubscriptions(t *testing.T) {
	t.Parallel()
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})

	t.Run("exclusive", func(t *testing.T) {
		queue := uniqueQueue("q1")
		name := "excl-" + watermill.NewShortUUID()
		first := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: name, SubscriptionType: pulsarpubsub.Exclusive})
		ch := subscribe(t, first, queue)
		// Subscribe calls on the same subscriber share its one consumer.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch2, err := first.Subscribe(ctx, queue)
		if err != nil {
			t.Fatalf("second Subscribe on the exclusive subscriber: %v", err)
		}
		second := newSubscriber(t, pulsarpubsub.SubscriberConfig{
			SubscriptionName: name, SubscriptionType: pulsarpubsub.Exclusive,
			ClientConfig: pulsarpubsub.ClientConfig{URL: brokerURL(t), OperationTimeout: 5 * time.Second},
		})
		if _, err := second.Subscribe(context.Background(), queue); err == nil {
			t.Fatal("a second subscriber joined an exclusive subscription")
		} else {
			t.Logf("second subscriber refused: %v", err)
		}
		msgs := newMessages(4, "e")
		publish(t, pub, queue, msgs...)
		seen := map[string]bool{}
		a := receive(t, ch, wait)
		b := receive(t, ch2, wait) // both channels hold one message each
		seen[a.UUID], seen[b.UUID] = true, true
		a.Ack()
		b.Ack()
		for len(seen) < len(msgs) {
			select {
			case m := <-ch:
				seen[m.UUID] = true
				m.Ack()
			case m := <-ch2:
				seen[m.UUID] = true
				m.Ack()
			case <-time.After(wait):
				t.Fatalf("received %d of %d", len(seen), len(msgs))
			}
		}
	})

	t.Run("shared", func(t *testing.T) {
		queue := uniqueQueue("q1")
		name := "shared-" + watermill.NewShortUUID()
		const n = 200
		var chans []<-chan *message.Message
		for range 3 {
			// A small queue, so that every consumer gets a share.
			s := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: name, ReceiverQueueSize: 10})
			chans = append(chans, subscribe(t, s, queue))
		}
		// One Publish call per message: a batch is dispatched to one
		// consumer as a whole.
		for _, m := range newMessages(n, "s") {
			publish(t, pub, queue, m)
		}
		var mu sync.Mutex
		counts := make([]int, len(chans))
		seen := map[string]int{}
		var wg sync.WaitGroup
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		for i, ch := range chans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case m := <-ch:
						mu.Lock()
						counts[i]++
						seen[m.UUID]++
						done := len(seen) == n
						mu.Unlock()
						time.Sleep(time.Millisecond)
						m.Ack()
						if done {
							cancel()
						}
					case <-ctx.Done():
						return
					}
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("received %d distinct messages of %d", len(seen), n)
		}
		for i, c := range counts {
			if c == 0 {
				t.Errorf("subscriber %d got no messages (counts %v)", i, counts)
			}
		}
		t.Logf("messages per subscriber: %v", counts)
	})
}

// With key_shared subscriptions the messages of one key go to one
// subscriber, in publish order.
func TestKeySharedKeepsOrderPerKey(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	name := "ks-" + watermill.NewShortUUID()
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{MessageKeyMetadata: "key"})
	const subscribers, keys, perKey = 3, 12, 30
	var chans []<-chan *message.Message
	for range subscribers {
		s := newSubscriber(t, pulsarpubsub.SubscriberConfig{
			SubscriptionName: name, SubscriptionType: pulsarpubsub.KeyShared, ReceiverQueueSize: 20,
		})
		chans = append(chans, subscribe(t, s, queue))
	}
	var msgs []*message.Message
	for i := range perKey {
		for k := range keys {
			m := message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
			m.Metadata.Set("key", fmt.Sprintf("key-%d", k))
			msgs = append(msgs, m)
		}
	}
	// Several Publish calls, so that batches hold messages of several keys.
	for i := 0; i < len(msgs); i += 50 {
		publish(t, pub, queue, msgs[i:min(i+50, len(msgs))]...)
	}

	type record struct {
		sub int
		seq int
	}
	var mu sync.Mutex
	got := map[string][]record{}
	total := 0
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case m := <-ch:
					seq, _ := strconv.Atoi(string(m.Payload))
					mu.Lock()
					key := m.Metadata.Get("key")
					got[key] = append(got[key], record{i, seq})
					total++
					done := total == len(msgs)
					mu.Unlock()
					m.Ack()
					if done {
						cancel()
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
	if total != len(msgs) {
		t.Fatalf("received %d of %d", total, len(msgs))
	}
	used := map[int]bool{}
	for key, recs := range got {
		if len(recs) != perKey {
			t.Errorf("%s: %d messages, want %d", key, len(recs), perKey)
			continue
		}
		for i, r := range recs {
			if r.seq != i {
				t.Errorf("%s: message %d has sequence %d: out of order", key, i, r.seq)
				break
			}
			if r.sub != recs[0].sub {
				t.Errorf("%s: went to subscribers %d and %d", key, recs[0].sub, r.sub)
				break
			}
		}
		used[recs[0].sub] = true
	}
	t.Logf("%d keys over %d subscribers", len(got), len(used))
}

// Closing a subscriber while messages flow loses none: what it did not ack
// (the message it handed out and the ones it fetched ahead) goes to the next
// subscriber of the subscription. Close does not unsubscribe: the
// subscription stays on the broker.
func TestCloseDuringTrafficLosesNothing(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	name := "close-" + watermill.NewShortUUID()
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	first, err := pulsarpubsub.NewSubscriber(pulsarpubsub.SubscriberConfig{
		ClientConfig: pulsarpubsub.ClientConfig{URL: brokerURL(t)}, SubscriptionName: name,
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := first.SubscribeInitialize(queue); err != nil {
		t.Fatal(err)
	}
	ch, err := first.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}

	const n = 300
	msgs := newMessages(n, "c")
	publishDone := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < n && err == nil; i += 10 {
			err = pub.Publish(queue, msgs[i:i+10]...)
		}
		publishDone <- err
	}()

	acked := map[string]bool{}
	for len(acked) < n/3 {
		m := receive(t, ch, wait)
		acked[m.UUID] = true
		m.Ack()
	}
	held := receive(t, ch, wait) // handed out, never acked
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("channel not closed by Close")
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := <-publishDone; err != nil {
		t.Fatalf("publishing: %v", err)
	}
	name2, _ := pulsarpubsub.TopicName(queue)
	subs := adminList(t, "/admin/v2/persistent/public/default/"+strings.TrimPrefix(name2, "persistent://public/default/")+"/subscriptions")
	if !contains(subs, name) {
		t.Errorf("subscription %s gone after Close (subscriptions: %v)", name, subs)
	}

	second := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: name})
	ch2 := subscribe(t, second, queue)
	gotHeld := false
	for len(acked) < n {
		m := receive(t, ch2, wait)
		if m.UUID == held.UUID {
			gotHeld = true
		}
		acked[m.UUID] = true
		m.Ack()
	}
	if !gotHeld && !acked[held.UUID] {
		t.Error("the message held at Close never came again")
	}
	for _, m := range msgs {
		if !acked[m.UUID] {
			t.Errorf("message %s lost", m.UUID)
		}
	}
}

// Cancelling the context of one Subscribe call closes its channel and hands
// the message it held to the other calls; the subscriber goes on.
func TestSubscribeContextEndsOneSubscription(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{})
	if err := sub.SubscribeInitialize(queue); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch1, err := sub.Subscribe(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, pub, queue, message.NewMessage("held", []byte("x")))
	held := receive(t, ch1, wait)
	cancel()
	select {
	case <-held.Context().Done():
	case <-time.After(wait):
		t.Fatal("message context not cancelled with the subscription")
	}
	for range ch1 {
		t.Fatal("message after cancel")
	}
	ch2 := subscribe(t, sub, queue)
	again := receive(t, ch2, wait)
	again.Ack()
	if again.UUID != "held" {
		t.Fatalf("got %s, want the held message again", again.UUID)
	}
}

// A client made by NewClient can be shared; closing the publisher and the
// subscriber leaves it open.
func TestSharedClient(t *testing.T) {
	t.Parallel()
	client, err := pulsarpubsub.NewClient(pulsarpubsub.ClientConfig{URL: brokerURL(t)}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for round := range 2 {
		queue := uniqueQueue("q1")
		pub, err := pulsarpubsub.NewPublisher(pulsarpubsub.PublisherConfig{Client: client}, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		sub, err := pulsarpubsub.NewSubscriber(pulsarpubsub.SubscriberConfig{Client: client, SubscriptionName: "shared-client"}, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		ch := subscribe(t, sub, queue)
		publish(t, pub, queue, message.NewMessage(fmt.Sprintf("m-%d", round), []byte("x")))
		receive(t, ch, wait).Ack()
		if err := pub.Close(); err != nil {
			t.Fatal(err)
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(queue, message.NewMessage("late", nil)); !errors.Is(err, pulsarpubsub.ErrPublisherClosed) {
			t.Fatalf("Publish after Close: %v", err)
		}
		if _, err := sub.Subscribe(context.Background(), queue); !errors.Is(err, pulsarpubsub.ErrSubscriberClosed) {
			t.Fatalf("Subscribe after Close: %v", err)
		}
	}
}

// A malformed queue name is an error quoting it, before anything is sent.
func TestBadTopicName(t *testing.T) {
	t.Parallel()
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{ClientConfig: pulsarpubsub.ClientConfig{URL: "pulsar://127.0.0.1:1"}})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{ClientConfig: pulsarpubsub.ClientConfig{URL: "pulsar://127.0.0.1:1"}})
	for _, bad := range []string{"q3/t/n/x", "no-slashes", "q1/t/n/a b", "http://t/n/q"} {
		err := pub.Publish(bad, message.NewMessage("1", nil))
		if err == nil || !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("Publish(%q) = %v, want an error quoting the name", bad, err)
		}
		_, err = sub.Subscribe(context.Background(), bad)
		if err == nil || !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("Subscribe(%q) = %v, want an error quoting the name", bad, err)
		}
		err = sub.SubscribeInitialize(bad)
		if err == nil || !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("SubscribeInitialize(%q) = %v, want an error quoting the name", bad, err)
		}
	}
}

// Every message of a non-persistent topic carries the same message id, so
// the client would drop messages that arrive while an ack for that id is
// still grouped. Published one at a time and acked as they come, all of
// them must arrive.
func TestNonPersistentBurstArrivesWhole(t *testing.T) {
	t.Parallel()
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{})
	queue := uniqueQueue("q0")
	ch := subscribe(t, sub, queue)
	const n = 40
	sent := newMessages(n, "burst")
	go func() {
		for _, m := range sent {
			if err := pub.Publish(queue, m); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	got := map[string]bool{}
	for len(got) < n {
		msg := receive(t, ch, wait)
		msg.Ack()
		got[msg.UUID] = true
	}
}
