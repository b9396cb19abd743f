package mqttpubsub_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/mqttpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// publishNumbered publishes n messages whose payloads are 0 … n-1, in order,
// and returns them.
func publishNumbered(t *testing.T, pub *mqttpubsub.Publisher, queue string, n int) []*message.Message {
	t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
	}
	if err := pub.Publish(queue, msgs...); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// number is the payload of a message from publishNumbered.
func number(t *testing.T, m *message.Message) int {
	t.Helper()
	n, err := strconv.Atoi(string(m.Payload))
	if err != nil {
		t.Fatalf("payload %q is not a number", m.Payload)
	}
	return n
}

// TestAckWindowHandsOutTheWindowAndTakesAcksInAnyOrder checks that a
// Subscribe call with AckWindow 64 hands out 64 messages without any ack and
// not the 65th, that acks in any order each free one place, and that every
// ack reaches the broker.
func TestAckWindowHandsOutTheWindowAndTakesAcksInAnyOrder(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		const window, total = 64, 100
		queue := uniqueQueue("q1")
		group := "window-" + watermill.NewShortUUID()
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: group, AckWindow: window, MaxUnacked: 128})
		ch, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		publishNumbered(t, pub, queue, total)

		var held []*message.Message
		for i := 0; i < window; i++ {
			m := receive(t, ch, wait)
			if n := number(t, m); n != i {
				t.Fatalf("message %d of the window is %d", i, n)
			}
			held = append(held, m)
		}
		expectNone(t, ch, 500*time.Millisecond)

		// Ack one from the middle: exactly one more comes, the next in order.
		held[40].Ack()
		m := receive(t, ch, wait)
		if n := number(t, m); n != window {
			t.Fatalf("after one ack got %d, want %d", n, window)
		}
		expectNone(t, ch, 300*time.Millisecond)
		held[40] = m

		// Ack the rest backwards; the remaining messages follow in order.
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Ack()
		}
		for next := window + 1; next < total; next++ {
			m := receive(t, ch, wait)
			if n := number(t, m); n != next {
				t.Fatalf("got %d, want %d", n, next)
			}
			m.Ack()
		}
		expectNone(t, ch, 300*time.Millisecond)

		// Every ack reached the broker: the group's next subscriber gets nothing.
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		again := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: group})
		ch, err = again.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		expectNone(t, ch, 500*time.Millisecond)
	})
}

// TestAckWindowNacksRedeliverWhileOthersAreHeld nacks messages of a window
// while others are still held, and checks that the nacked ones come back
// as the next attempt and the held ones are not delivered twice.
func TestAckWindowNacksRedeliverWhileOthersAreHeld(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{
			Group: "window-nack-" + watermill.NewShortUUID(), AckWindow: 8, NackDelay: 200 * time.Millisecond,
		})
		ch, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		sent := publishNumbered(t, pub, queue, 5)
		var got []*message.Message
		for i := 0; i < 5; i++ {
			got = append(got, receive(t, ch, wait))
		}
		got[1].Nack()
		got[3].Nack()
		// Each comes back after the nack delay, in either order.
		want := map[string]bool{sent[1].UUID: true, sent[3].UUID: true}
		for range 2 {
			m := receive(t, ch, wait)
			if !want[m.UUID] || m.Metadata.Get(schema.DeliveryAttemptKey) != "2" {
				t.Fatalf("redelivered %q attempt %q, want 1 or 3 (once each) as attempt 2", m.Payload, m.Metadata.Get(schema.DeliveryAttemptKey))
			}
			delete(want, m.UUID)
			m.Ack()
		}
		// 0, 2 and 4 are still held, so nothing else is due.
		expectNone(t, ch, 500*time.Millisecond)
		for _, i := range []int{4, 0, 2} {
			got[i].Ack()
		}
		expectNone(t, ch, 500*time.Millisecond)
	})
}

// TestAckWindowClosingGivesBackEverythingUnacked closes a subscriber that
// holds a full window, some of it acked, and checks that the group's next
// subscriber gets every message that was not acked, and none that was.
func TestAckWindowClosingGivesBackEverythingUnacked(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		const window, total = 64, 100
		queue := uniqueQueue("q1")
		group := "window-close-" + watermill.NewShortUUID()
		first := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: group, AckWindow: window})
		ch, err := first.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		sent := publishNumbered(t, pub, queue, total)
		var held []*message.Message
		for i := 0; i < window; i++ {
			held = append(held, receive(t, ch, wait))
		}
		acked := map[string]bool{}
		for i := 0; i < window; i += 6 {
			held[i].Ack()
			acked[held[i].UUID] = true
		}
		// A place frees only once its ack went to the broker: as many new
		// messages as acks show that every ack was passed on.
		for range acked {
			receive(t, ch, wait)
		}
		expectNone(t, ch, 300*time.Millisecond)
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := <-ch; ok {
			t.Fatal("the channel of a closed subscriber is still open")
		}

		second := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: group, AckWindow: window})
		ch, err = second.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		want := total - len(acked)
		seen := map[string]int{}
		for len(seen) < want {
			m := receive(t, ch, wait)
			m.Ack()
			if acked[m.UUID] {
				t.Fatalf("message %q was acked and came again", m.Payload)
			}
			seen[m.UUID]++
		}
		expectNone(t, ch, 500*time.Millisecond)
		var dups []string
		for _, m := range sent {
			switch n := seen[m.UUID]; {
			case acked[m.UUID]:
			case n == 0:
				t.Errorf("message %q was lost", m.Payload)
			case n > 1:
				dups = append(dups, string(m.Payload))
			}
		}
		if len(dups) > 0 {
			t.Errorf("delivered more than once: %s", strings.Join(dups, " "))
		}
	})
}

// TestAckWindowEndedSubscribeGivesBackItsMessages ends a Subscribe call
// that holds messages and checks that another Subscribe call of the same
// subscriber gets them.
func TestAckWindowEndedSubscribeGivesBackItsMessages(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "window-ctx-" + watermill.NewShortUUID(), AckWindow: 8})
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := sub.Subscribe(ctx, queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		sent := publishNumbered(t, pub, queue, 8)
		for i := range sent {
			m := receive(t, ch, wait)
			if n := number(t, m); n != i {
				t.Fatalf("message %d is %d", i, n)
			}
			if m.Context().Err() != nil {
				t.Fatalf("message %d: its context ended before its ack", i)
			}
		}
		// A second call keeps the session open; it has nothing to take yet.
		other, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		expectNone(t, other, 300*time.Millisecond)
		cancel()
		for range ch {
			t.Fatal("a message after the context ended")
		}
		for i, want := range sent {
			m := receive(t, other, wait)
			m.Ack()
			if m.UUID != want.UUID {
				t.Fatalf("message %d given back is %q, want %q", i, m.Payload, want.Payload)
			}
		}
		expectNone(t, other, 300*time.Millisecond)
	})
}

func TestAckWindowValidation(t *testing.T) {
	_, err := mqttpubsub.NewSubscriber(mqttpubsub.SubscriberConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: "tcp://127.0.0.1:1883"},
		AckWindow:        -2,
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "AckWindow") || !strings.Contains(err.Error(), "-2") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("AckWindow -2: %v, want one line naming the field and the value", err)
	}
}
