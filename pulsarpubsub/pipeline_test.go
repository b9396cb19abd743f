package pulsarpubsub_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/switchyard-go/switchyard/pulsarpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// receiveN receives n messages, failing when one takes longer than d.
func receiveN(t testing.TB, ch <-chan *message.Message, n int, d time.Duration) []*message.Message {
	t.Helper()
	msgs := make([]*message.Message, 0, n)
	for range n {
		msgs = append(msgs, receive(t, ch, d))
	}
	return msgs
}

// checkOrder fails unless got carries the payloads of want, in order.
func checkOrder(t testing.TB, got, want []*message.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].UUID != want[i].UUID || !bytes.Equal(got[i].Payload, want[i].Payload) {
			t.Fatalf("message %d: got %s %q, want %s %q", i, got[i].UUID, got[i].Payload, want[i].UUID, want[i].Payload)
		}
	}
}

// With AckWindow 64 a consumer that holds its acks gets 64 messages, in
// order, and not the 65th; acked in reverse order, they are not delivered
// again, and the rest follows.
func TestAckWindowHandsOutUpToTheWindow(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	name := "window-" + watermill.NewShortUUID()
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: name, AckWindow: 64})
	ch := subscribe(t, sub, queue)
	sent := newMessages(100, "w")
	publish(t, pub, queue, sent...)

	first := receiveN(t, ch, 64, wait)
	checkOrder(t, first, sent[:64])
	expectNothing(t, ch, time.Second)
	for i := len(first) - 1; i >= 0; i-- {
		first[i].Ack()
	}
	rest := receiveN(t, ch, 36, wait)
	checkOrder(t, rest, sent[64:])
	for _, m := range rest {
		m.Ack()
	}
	expectNothing(t, ch, 2*time.Second)

	// The acks reached the broker: a new consumer of the subscription gets
	// nothing.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	again := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: name, AckWindow: 64})
	expectNothing(t, subscribe(t, again, queue), 2*time.Second)
}

// With a window, a nacked message comes again after the delay while the
// others are acked, and each message's context lives until its ack or nack.
func TestAckWindowNackRedelivers(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{DisableBatching: true})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{AckWindow: 8, NackRedeliveryDelay: 200 * time.Millisecond})
	ch := subscribe(t, sub, queue)
	sent := newMessages(8, "n")
	publish(t, pub, queue, sent...)

	got := receiveN(t, ch, 8, wait)
	checkOrder(t, got, sent)
	for _, m := range got {
		if err := m.Context().Err(); err != nil {
			t.Fatalf("context of %s ended before its ack: %v", m.UUID, err)
		}
	}
	nacked := map[string]bool{got[2].UUID: true, got[5].UUID: true}
	for i := len(got) - 1; i >= 0; i-- {
		if nacked[got[i].UUID] {
			got[i].Nack()
		} else {
			got[i].Ack()
		}
	}
	for range 2 {
		m := receive(t, ch, wait)
		if !nacked[m.UUID] || attemptOf(m) != "2" {
			t.Fatalf("got %s attempt %s, want one of the nacked messages, attempt 2", m.UUID, attemptOf(m))
		}
		delete(nacked, m.UUID)
		m.Ack()
	}
	expectNothing(t, ch, 2*time.Second)
	for _, m := range got {
		waitDone(t, m)
	}
}

// waitDone fails unless the context of m ends soon after its ack or nack.
func waitDone(t testing.TB, m *message.Message) {
	t.Helper()
	select {
	case <-m.Context().Done():
	case <-time.After(wait):
		t.Fatalf("context of %s still alive after its ack or nack", m.UUID)
	}
}

// Closing a subscriber that has handed out a window of messages, some acked
// and some not, loses nothing: the next subscriber of the subscription gets
// every message not acked, and none of the acked ones.
func TestAckWindowCloseRedeliversOutstanding(t *testing.T) {
	t.Parallel()
	const total, window, acked = 200, 64, 30
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{DisableBatching: true})
	name := "close-" + watermill.NewShortUUID()
	first := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: name, AckWindow: window})
	ch := subscribe(t, first, queue)
	sent := newMessages(total, "c")
	publish(t, pub, queue, sent...)

	got := receiveN(t, ch, window, wait)
	checkOrder(t, got, sent[:window])
	ackedIDs := map[string]bool{}
	for i := 0; i < 2*acked; i += 2 { // every other one of the first 60
		got[i].Ack()
		ackedIDs[got[i].UUID] = true
	}
	closed := make(chan error, 1)
	go func() { closed <- first.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return with messages not acked")
	}
	if _, ok := <-ch; ok {
		// The channel may hold nothing more once closed.
		t.Fatal("a message after Close")
	}
	for _, m := range got[:2*acked] {
		waitDone(t, m)
	}

	second := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: name, AckWindow: window})
	ch2 := subscribe(t, second, queue)
	want := map[string]bool{}
	for _, m := range sent {
		if !ackedIDs[m.UUID] {
			want[m.UUID] = true
		}
	}
	seen := map[string]int{}
	for len(seen) < len(want) {
		m := receive(t, ch2, wait)
		m.Ack()
		if ackedIDs[m.UUID] {
			t.Fatalf("acked message %s delivered again", m.UUID)
		}
		if !want[m.UUID] {
			t.Fatalf("unknown message %s", m.UUID)
		}
		seen[m.UUID]++
	}
	expectNothing(t, ch2, 2*time.Second)
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d of %d messages delivered again after Close, %d duplicates", len(seen), total, dups)
}

// PublishAsync stores 10,000 messages to one topic in the order of the
// calls, and calls each done function exactly once, with nil.
func TestPublishAsyncKeepsOrder(t *testing.T) {
	t.Parallel()
	const n = 10000
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{AckWindow: 256})
	ch := subscribe(t, sub, queue)
	sent := newMessages(n, "a")
	calls := make([]atomic.Int32, n)
	var failed atomic.Int32
	var all sync.WaitGroup
	all.Add(n)
	for i, m := range sent {
		pub.PublishAsync(queue, m, func(err error) {
			if calls[i].Add(1) == 1 {
				all.Done()
			}
			if err != nil && failed.Add(1) == 1 {
				t.Errorf("message %d: %v", i, err)
			}
		})
	}
	pub.FlushBatches()
	confirmed := make(chan struct{})
	go func() {
		all.Wait()
		close(confirmed)
	}()
	select {
	case <-confirmed:
	case <-time.After(60 * time.Second):
		t.Fatal("not every message confirmed within 60s")
	}

	got := make([]*message.Message, 0, n)
	for range n {
		m := receive(t, ch, wait)
		m.Ack()
		got = append(got, m)
	}
	checkOrder(t, got, sent)
	expectNothing(t, ch, time.Second)
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("message %d: done called %d times", i, c)
		}
	}
	if failed.Load() != 0 {
		t.Fatalf("%d messages failed", failed.Load())
	}
}

// PublishAsync reports through done, as Publish returns them: an invalid
// name and a message over the broker's limit as permanent errors naming the
// message, a missing tenant as permanent, and ErrPublisherClosed after
// Close.
func TestPublishAsyncErrors(t *testing.T) {
	t.Parallel()
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	publishAsync := func(topic string, m *message.Message) error {
		t.Helper()
		errc := make(chan error, 2)
		pub.PublishAsync(topic, m, func(err error) { errc <- err })
		pub.FlushBatches()
		var err error
		select {
		case err = <-errc:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: done not called within 60s", topic)
		}
		select {
		case again := <-errc:
			t.Fatalf("%s: done called twice (%v, %v)", topic, err, again)
		case <-time.After(100 * time.Millisecond):
		}
		return err
	}
	permanent := func(what string, err error) {
		t.Helper()
		var p interface{ Permanent() bool }
		if err == nil || !errors.As(err, &p) || !p.Permanent() {
			t.Fatalf("%s: error %v is not permanent", what, err)
		}
		t.Logf("%s: %v", what, err)
	}

	err := publishAsync("q1/tg/flow", message.NewMessage("1", []byte("x")))
	permanent("invalid name", err)
	if !errors.Is(err, schema.ErrInvalidTopic) {
		t.Errorf("error %q does not wrap schema.ErrInvalidTopic", err)
	}

	queue := uniqueQueue("q1")
	payload := make([]byte, 6<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	big := message.NewMessage(watermill.NewUUID(), payload)
	err = publishAsync(queue, big)
	permanent("6 MiB without chunking", err)
	if !errors.Is(err, pulsar.ErrMessageTooLarge) || !strings.Contains(err.Error(), big.UUID) {
		t.Errorf("error %q is not ErrMessageTooLarge naming %s", err, big.UUID)
	}
	if err := publishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte("small"))); err != nil {
		t.Errorf("a message after the big one: %v", err)
	}

	permanent("missing tenant", publishAsync("q1/no-such-tenant-"+watermill.NewShortUUID()+"/ns/x", message.NewMessage("1", []byte("x"))))

	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := publishAsync(queue, message.NewMessage("1", []byte("x"))); !errors.Is(err, pulsarpubsub.ErrPublisherClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// With a batching delay of 10 seconds, a message given to PublishAsync
// stays in the producer's batch until FlushBatches sends it.
func TestFlushBatchesSendsHeldBackMessages(t *testing.T) {
	t.Parallel()
	const delay = 10 * time.Second
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{BatchingMaxPublishDelay: delay})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{})
	ch := subscribe(t, sub, queue)

	// Publish creates the producer, whose batch timer starts then, and
	// flushes its own message.
	created := time.Now()
	warm := message.NewMessage(watermill.NewUUID(), []byte("warm"))
	publish(t, pub, queue, warm)
	receive(t, ch, wait).Ack()

	held := message.NewMessage(watermill.NewUUID(), []byte("held"))
	done := make(chan error, 1)
	pub.PublishAsync(queue, held, func(err error) { done <- err })
	select {
	case m := <-ch:
		if time.Since(created) < delay {
			t.Fatalf("message %s arrived before FlushBatches", m.UUID)
		}
		t.Logf("the batch timer fired before the check (%s after the producer was created)", time.Since(created))
		m.Ack()
	case <-time.After(time.Second):
		// Checked only while the batch timer cannot have fired.
		if time.Since(created) >= delay {
			t.Logf("too slow to check that the message was held back")
		}
		pub.FlushBatches()
		flushed := time.Now()
		m := receive(t, ch, 5*time.Second)
		m.Ack()
		if m.UUID != held.UUID {
			t.Fatalf("got %s, want %s", m.UUID, held.UUID)
		}
		t.Logf("arrived %s after FlushBatches", time.Since(flushed))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("done not called after the message arrived")
	}
}

// Close waits for the messages given to PublishAsync that are held back for
// batching, rather than for the batching delay or its own timeout.
func TestPublishAsyncCloseSendsHeldBackMessages(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub, err := pulsarpubsub.NewPublisher(pulsarpubsub.PublisherConfig{
		ClientConfig:            pulsarpubsub.ClientConfig{URL: brokerURL(t)},
		BatchingMaxPublishDelay: time.Minute,
		CloseTimeout:            time.Minute,
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{AckWindow: 16})
	ch := subscribe(t, sub, queue)
	publish(t, pub, queue, message.NewMessage(watermill.NewUUID(), []byte("warm")))
	receive(t, ch, wait).Ack()

	sent := newMessages(10, "h")
	var calls, failed atomic.Int32
	for _, m := range sent {
		pub.PublishAsync(queue, m, func(err error) {
			calls.Add(1)
			if err != nil {
				failed.Add(1)
			}
		})
	}
	started := time.Now()
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(started); took > 30*time.Second {
		t.Fatalf("Close took %s: it waited for the batching delay", took)
	}
	if calls.Load() != 10 || failed.Load() != 0 {
		t.Fatalf("done called %d times, %d with an error; want 10, 0", calls.Load(), failed.Load())
	}
	got := receiveN(t, ch, 10, wait)
	for _, m := range got {
		m.Ack()
	}
	checkOrder(t, got, sent)
}

// The subscription sees a window of messages in broker order across
// several windows' worth of traffic, acked as they come.
func TestAckWindowKeepsOrder(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{AckWindow: 32})
	ch := subscribe(t, sub, queue)
	sent := newMessages(1000, "o")
	publish(t, pub, queue, sent...)
	got := make([]*message.Message, 0, len(sent))
	for range sent {
		m := receive(t, ch, wait)
		got = append(got, m)
		if len(got) > 16 {
			// Ack with a lag of 16, out of order within it.
			k := len(got) - 17
			if k%2 == 0 {
				got[k+1].Ack()
				got[k].Ack()
			}
		}
	}
	for _, m := range got {
		m.Ack()
	}
	checkOrder(t, got, sent)
	expectNothing(t, ch, time.Second)
}

// A message held without an ack does not hold back the others: those
// acked after it reach the broker, their contexts end and their slots are
// given back, so the window keeps handing out messages.
func TestAckWindowHeldMessageDoesNotBlockTheOthers(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	// One message per entry: a batch is acked on the broker only as a whole.
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{DisableBatching: true})
	name := "held-" + watermill.NewShortUUID()
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: name, AckWindow: 8})
	ch := subscribe(t, sub, queue)
	sent := newMessages(15, "h")
	publish(t, pub, queue, sent...)

	first := receiveN(t, ch, 8, wait)
	checkOrder(t, first, sent[:8])
	held := first[0]
	for _, m := range first[1:] {
		m.Ack()
	}
	for _, m := range first[1:] {
		waitDone(t, m)
	}
	rest := receiveN(t, ch, 7, wait)
	checkOrder(t, rest, sent[8:])
	for _, m := range rest {
		m.Ack()
	}
	if err := held.Context().Err(); err != nil {
		t.Fatalf("context of the held message ended before its ack: %v", err)
	}

	// Everything but the held message was acked on the broker: closing
	// brings back only that one.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	again := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: name, AckWindow: 8})
	ch2 := subscribe(t, again, queue)
	m := receive(t, ch2, wait)
	if m.UUID != held.UUID {
		t.Fatalf("got %s again, want only the held message %s", m.UUID, held.UUID)
	}
	m.Ack()
	expectNothing(t, ch2, 2*time.Second)
}

// Ending the Subscribe context nacks the messages of the window that were
// not acked; they come again on the next Subscribe.
func TestAckWindowContextEndNacksOutstanding(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{DisableBatching: true})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{AckWindow: 10})
	ch, cancel := subscribeCancellable(t, sub, queue)
	sent := newMessages(10, "x")
	publish(t, pub, queue, sent...)
	got := receiveN(t, ch, 10, wait)
	got[0].Ack()
	cancel()
	for range ch {
		t.Fatal("a message after the context ended")
	}
	ch2 := subscribe(t, sub, queue)
	seen := map[string]bool{}
	for len(seen) < 9 {
		m := receive(t, ch2, wait)
		m.Ack()
		if m.UUID == sent[0].UUID {
			t.Fatalf("acked message delivered again")
		}
		seen[m.UUID] = true
	}
	expectNothing(t, ch2, time.Second)
}

// With a window the Subscribe channel is buffered. When the context ends,
// the messages waiting in the buffer are dropped from it before it closes,
// and like those taken and not acked they are delivered again.
func TestAckWindowContextEndDropsTheBuffer(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{DisableBatching: true})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{AckWindow: 10})
	ch, cancel := subscribeCancellable(t, sub, queue)
	sent := newMessages(10, "b")
	publish(t, pub, queue, sent...)
	got := receiveN(t, ch, 2, wait)
	checkOrder(t, got, sent[:2])
	deadline := time.Now().Add(wait)
	for len(ch) < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in the buffer, want the other 8", len(ch))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	time.Sleep(time.Second)
	for m := range ch {
		t.Fatalf("%s taken from the buffer after the context ended", m.Payload)
	}
	ch2 := subscribe(t, sub, queue)
	seen := map[string]bool{}
	for len(seen) < len(sent) {
		m := receive(t, ch2, wait)
		m.Ack()
		seen[m.UUID] = true
	}
	expectNothing(t, ch2, time.Second)
}

// Ready tells a pipelined reader whether the subscription has more messages
// to hand out at once: a free slot of the window and messages waiting in
// the consumer.
func TestAckWindowReady(t *testing.T) {
	t.Parallel()
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{SubscriptionName: "ready-" + watermill.NewShortUUID(), AckWindow: 16})
	ch, cancel := subscribeCancellable(t, sub, queue)
	if sub.Ready(ch) {
		t.Fatal("ready before anything was published")
	}
	publish(t, pub, queue, newMessages(40, "r")...)
	// The channel's buffer fills up and the next message waits for it
	// with the window not yet full: more are ready.
	deadline := time.Now().Add(wait)
	for !sub.Ready(ch) {
		if time.Now().After(deadline) {
			t.Fatal("not ready with 40 messages published and none taken")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sub.Ready(make(chan *message.Message)) {
		t.Error("ready for a channel the subscriber did not hand out")
	}
	// A full window hands out nothing more until an ack.
	got := receiveN(t, ch, 16, wait)
	if sub.Ready(ch) {
		t.Error("ready with the window full")
	}
	for _, m := range got {
		m.Ack()
	}
	cancel()
	for range ch {
	}
	if sub.Ready(ch) {
		t.Error("ready after the subscription ended")
	}
}

// subscribeCancellable creates the subscription of sub on queue and
// subscribes with a context that the returned function ends.
func subscribeCancellable(t testing.TB, sub *pulsarpubsub.Subscriber, queue string) (<-chan *message.Message, context.CancelFunc) {
	t.Helper()
	if err := sub.SubscribeInitialize(queue); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, queue)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return ch, cancel
}

// BenchmarkPublishAsync publishes one message per iteration with
// PublishAsync to one topic and waits for all confirmations at the end; its
// allocations include the client library's.
func BenchmarkPublishAsync(b *testing.B) {
	queue := uniqueQueue("q1")
	pub := newPublisher(b, pulsarpubsub.PublisherConfig{})
	publish(b, pub, queue, message.NewMessage(watermill.NewUUID(), []byte("warm")))
	msg := message.NewMessage(watermill.NewUUID(), bytes.Repeat([]byte("x"), 100))
	msg.Metadata.Set("id", watermill.NewUUID())
	var pending sync.WaitGroup
	var failed atomic.Int64
	done := func(err error) {
		if err != nil {
			failed.Add(1)
		}
		pending.Done()
	}
	b.ReportAllocs()
	for b.Loop() {
		pending.Add(1)
		pub.PublishAsync(queue, msg, done)
	}
	pub.FlushBatches()
	pending.Wait()
	if failed.Load() != 0 {
		b.Fatalf("%d messages failed", failed.Load())
	}
}

// BenchmarkPublish publishes one message per iteration with Publish, for
// comparison.
func BenchmarkPublish(b *testing.B) {
	queue := uniqueQueue("q1")
	pub := newPublisher(b, pulsarpubsub.PublisherConfig{})
	msg := message.NewMessage(watermill.NewUUID(), bytes.Repeat([]byte("x"), 100))
	msg.Metadata.Set("id", watermill.NewUUID())
	b.ReportAllocs()
	for b.Loop() {
		publish(b, pub, queue, msg)
	}
}

// BenchmarkSubscribeAckWindow receives and acks messages published
// beforehand, with a window of 1 and of 64; its allocations include the
// client library's.
func BenchmarkSubscribeAckWindow(b *testing.B) {
	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			queue := uniqueQueue("q1")
			pub := newPublisher(b, pulsarpubsub.PublisherConfig{})
			sub := newSubscriber(b, pulsarpubsub.SubscriberConfig{AckWindow: window})
			ch := subscribe(b, sub, queue)
			msg := message.NewMessage(watermill.NewUUID(), bytes.Repeat([]byte("x"), 100))
			var pending sync.WaitGroup
			pending.Add(b.N)
			for range b.N {
				pub.PublishAsync(queue, msg, func(err error) {
					if err != nil {
						b.Error(err)
					}
					pending.Done()
				})
			}
			pub.FlushBatches()
			pending.Wait()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				receive(b, ch, wait).Ack()
			}
		})
	}
}
