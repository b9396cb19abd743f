package rabbitmqpubsub_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// queueDepth returns the number of ready messages in a queue.
func queueDepth(t testing.TB, queue string) int {
	t.Helper()
	q, err := rawChannel(t).QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspecting queue %s: %v", queue, err)
	}
	return q.Messages
}

// TestAckWindowHandsOutWindow: with AckWindow 64 a Subscribe call hands out
// 64 messages, in publish order, without any ack, and not the 65th; each
// ack lets one more through. With a larger Prefetch the window bounds what
// is handed out; a Prefetch below the window is raised to it.
func TestAckWindowHandsOutWindow(t *testing.T) {
	for _, prefetch := range []int{0, 10, 200} {
		t.Run(fmt.Sprintf("prefetch-%d", prefetch), func(t *testing.T) {
			topic := "flow:tg:" + uniqueName("window")
			w, _ := rabbitmqpubsub.WireOf(topic)
			deleteQueueAtEnd(t, w.QueueName("w"))
			s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "w", AckWindow: 64, Prefetch: prefetch})
			if err := s.SubscribeInitialize(topic); err != nil {
				t.Fatal(err)
			}
			p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
			msgs := newMessages(100, "w")
			publish(t, p, topic, msgs...)
			ch := subscribe(t, s, topic)

			held := make([]*message.Message, 0, 64)
			for i := 0; i < 64; i++ {
				m := receive(t, ch, 10*time.Second)
				if m.UUID != msgs[i].UUID {
					t.Fatalf("message %d: got %s (payload %s), want %s", i, m.UUID, m.Payload, msgs[i].UUID)
				}
				held = append(held, m)
			}
			expectNothing(t, ch, time.Second)
			// Acks free the window one place each, whatever their order.
			held[40].Ack()
			if m := receive(t, ch, 10*time.Second); m.UUID != msgs[64].UUID {
				t.Fatalf("after one ack: %s, want message 64 %s", m.UUID, msgs[64].UUID)
			} else {
				held = append(held, m)
			}
			expectNothing(t, ch, 300*time.Millisecond)
			for _, m := range held {
				m.Ack()
			}
			for i := 65; i < 100; i++ {
				m := receive(t, ch, 10*time.Second)
				if m.UUID != msgs[i].UUID {
					t.Fatalf("message %d: got %s, want %s", i, m.UUID, msgs[i].UUID)
				}
				m.Ack()
			}
			expectNothing(t, ch, 300*time.Millisecond)
		})
	}
}

// TestAckWindowOutOfOrderAcks acks 500 messages handed out with a window of
// 64 in random order: every ack reaches the broker for its own message (a
// wrong or repeated delivery tag would close the channel and bring messages
// back), so the queue ends empty and nothing comes again.
func TestAckWindowOutOfOrderAcks(t *testing.T) {
	const total = 500
	topic := "flow:tg:" + uniqueName("ooo")
	w, _ := rabbitmqpubsub.WireOf(topic)
	queue := w.QueueName("o")
	deleteQueueAtEnd(t, queue)
	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "o", AckWindow: 64})
	if err := s.SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
	msgs := newMessages(total, "o")
	publish(t, p, topic, msgs...)
	ch := subscribe(t, s, topic)

	rng := rand.New(rand.NewPCG(1, 2))
	var held []*message.Message
	for i := 0; i < total; i++ {
		m := receive(t, ch, 10*time.Second)
		if m.UUID != msgs[i].UUID {
			t.Fatalf("message %d: got %s, want %s (a message came again)", i, m.UUID, msgs[i].UUID)
		}
		if m.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
			t.Fatalf("message %d delivered again: attempt %s", i, m.Metadata.Get(schema.DeliveryAttemptKey))
		}
		held = append(held, m)
		// Ack a random half of what is held whenever the window is full.
		if len(held) == 64 || i == total-1 {
			rng.Shuffle(len(held), func(a, b int) { held[a], held[b] = held[b], held[a] })
			n := len(held) / 2
			if i == total-1 {
				n = len(held)
			}
			for _, m := range held[:n] {
				m.Ack()
			}
			held = append([]*message.Message{}, held[n:]...)
		}
	}
	expectNothing(t, ch, 500*time.Millisecond)
	if err := s.Health(); err != nil {
		t.Fatalf("Health after the acks (a refused ack restarts the consumer): %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := queueDepth(t, queue); n != 0; n = queueDepth(t, queue) {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages back in the queue after every one was acked", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAckWindowEndRedelivers hands out a full window, acks half of it, and
// ends the Subscribe call (its context, or the subscriber's Close): exactly
// the messages not acked come again, to the next consumer.
func TestAckWindowEndRedelivers(t *testing.T) {
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			topic := "flow:tg:" + uniqueName("end")
			w, _ := rabbitmqpubsub.WireOf(topic)
			deleteQueueAtEnd(t, w.QueueName("e"))
			s1 := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "e", AckWindow: 64})
			if err := s1.SubscribeInitialize(topic); err != nil {
				t.Fatal(err)
			}
			p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
			msgs := newMessages(64, "e")
			publish(t, p, topic, msgs...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := s1.Subscribe(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			unacked := map[string]bool{}
			for i := 0; i < 64; i++ {
				m := receive(t, ch, 10*time.Second)
				if i%2 == 1 {
					m.Ack()
				} else {
					unacked[m.UUID] = true
				}
			}
			if how == "cancel" {
				cancel()
				for range ch {
				}
			} else if err := s1.Close(); err != nil {
				t.Fatal(err)
			}

			s2 := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "e", AckWindow: 64})
			ch2 := subscribe(t, s2, topic)
			for n := len(unacked); n > 0; n-- {
				m := receive(t, ch2, 10*time.Second)
				if !unacked[m.UUID] {
					t.Fatalf("%s came again, but it was acked or came twice", m.UUID)
				}
				if m.Metadata.Get(schema.DeliveryAttemptKey) != "2" {
					t.Errorf("%s: attempt %q, want 2", m.UUID, m.Metadata.Get(schema.DeliveryAttemptKey))
				}
				delete(unacked, m.UUID)
				m.Ack()
			}
			expectNothing(t, ch2, 500*time.Millisecond)
		})
	}
}

// TestAckWindowNacks nacks messages of a full window out of order: each
// comes back (with attempt 2, behind the others) and the window keeps
// moving meanwhile.
func TestAckWindowNacks(t *testing.T) {
	topic := "flow:tg:" + uniqueName("wnack")
	w, _ := rabbitmqpubsub.WireOf(topic)
	deleteQueueAtEnd(t, w.QueueName("n"))
	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "n", AckWindow: 16, NackDelay: 200 * time.Millisecond})
	if err := s.SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
	msgs := newMessages(32, "n")
	publish(t, p, topic, msgs...)
	ch := subscribe(t, s, topic)

	var held []*message.Message
	for i := 0; i < 16; i++ {
		held = append(held, receive(t, ch, 10*time.Second))
	}
	nacked := map[string]bool{}
	for _, i := range []int{13, 2, 7} {
		nacked[held[i].UUID] = true
		held[i].Nack()
	}
	for _, m := range held {
		if !nacked[m.UUID] {
			m.Ack()
		}
	}
	again := map[string]bool{}
	for i := 16; i < 32+len(nacked); i++ {
		m := receive(t, ch, 10*time.Second)
		attempt := m.Metadata.Get(schema.DeliveryAttemptKey)
		switch {
		case nacked[m.UUID]:
			if attempt != "2" || again[m.UUID] {
				t.Fatalf("nacked %s came again with attempt %s (already seen: %v)", m.UUID, attempt, again[m.UUID])
			}
			again[m.UUID] = true
		case attempt != "1":
			t.Fatalf("%s: attempt %s, want 1", m.UUID, attempt)
		}
		m.Ack()
	}
	if len(again) != len(nacked) {
		t.Fatalf("%d of %d nacked messages came again", len(again), len(nacked))
	}
	expectNothing(t, ch, 500*time.Millisecond)
}
