package kafkapubsub_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/kafkapubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// committed returns the group's committed offset on partition 0 of the
// queue's topic, -1 when there is none.
func committed(t testing.TB, group, queue string) int64 {
	t.Helper()
	name, err := kafkapubsub.TopicName(queue)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offsets, err := admin(t).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetching the offsets of group %s: %v", group, err)
	}
	o, ok := offsets.Lookup(name, 0)
	if !ok {
		return -1
	}
	return o.At
}

// waitCommitted waits until the group's committed offset is want.
func waitCommitted(t testing.TB, group, queue string, want int64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := committed(t, group, queue)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s committed offset %d, want %d", group, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAckWindowHandsOutWindow: with AckWindow 64 a Subscribe call hands out
// 64 messages, in order, without any ack, and not the 65th (the window,
// not the fetch, bounds it); each ack lets one more through.
func TestAckWindowHandsOutWindow(t *testing.T) {
	topic := uniqueQueue("q1", "flow")
	pub := newPublisher(t)
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{AckWindow: 64})
	ch, _ := subscribe(t, sub, topic)
	msgs := newMessages(100, "w")
	publish(t, pub, topic, msgs...)

	held := make([]*message.Message, 0, 65)
	for i := 0; i < 64; i++ {
		m := receive(t, ch, 30*time.Second)
		if m.UUID != msgs[i].UUID {
			t.Fatalf("message %d: got %s (payload %s), want %s", i, m.UUID, m.Payload, msgs[i].UUID)
		}
		held = append(held, m)
	}
	expectNothing(t, ch, time.Second)
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
}

// TestAckWindowOutOfOrderCommit acks the messages of a window in random
// order, the first one last: the committed offset stays at the first one
// until it is acked, then moves past the whole window.
func TestAckWindowOutOfOrderCommit(t *testing.T) {
	topic := uniqueQueue("q1", "flow")
	group := "ooo-" + watermill.NewShortUUID()
	pub := newPublisher(t)
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group, AckWindow: 64})
	ch, _ := subscribe(t, sub, topic)
	msgs := newMessages(64, "o")
	publish(t, pub, topic, msgs...)
	waitCommitted(t, group, topic, 0) // SubscribeInitialize committed the end

	held := make([]*message.Message, 64)
	for i := range held {
		held[i] = receive(t, ch, 30*time.Second)
		if held[i].UUID != msgs[i].UUID {
			t.Fatalf("message %d: got %s, want %s", i, held[i].UUID, msgs[i].UUID)
		}
	}
	rest := append([]*message.Message{}, held[1:]...)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(rest), func(a, b int) { rest[a], rest[b] = rest[b], rest[a] })
	for _, m := range rest {
		m.Ack()
	}
	// Give the committer every chance to commit too far.
	time.Sleep(time.Second)
	if got := committed(t, group, topic); got != 0 {
		t.Fatalf("committed offset %d with message 0 unacked, want 0", got)
	}
	held[0].Ack()
	waitCommitted(t, group, topic, 64)
	expectNothing(t, ch, 300*time.Millisecond)
}

// TestAckWindowEndRedelivers hands out a full window, acks the first ten
// and then every other one, and ends the Subscribe call (its context, or the
// subscriber's Close): the next consumer of the group gets every message
// from the first unacked one (10) on, in order, and nothing before it.
func TestAckWindowEndRedelivers(t *testing.T) {
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			topic := uniqueQueue("q1", "flow")
			group := "end-" + watermill.NewShortUUID()
			pub := newPublisher(t)
			s1 := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group, AckWindow: 64})
			ch, cancel := subscribe(t, s1, topic)
			msgs := newMessages(64, "e")
			publish(t, pub, topic, msgs...)
			for i := 0; i < 64; i++ {
				m := receive(t, ch, 30*time.Second)
				if i < 10 || i%2 == 1 {
					m.Ack()
				}
			}
			if how == "cancel" {
				cancel()
				for range ch {
				}
			}
			// Close commits what was acked and leaves the group.
			if err := s1.Close(); err != nil {
				t.Fatal(err)
			}
			if got := committed(t, group, topic); got != 10 {
				t.Fatalf("committed offset %d, want 10 (the first unacked message)", got)
			}
			s2 := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group, AckWindow: 64})
			ch2, _ := subscribe(t, s2, topic)
			for i := 10; i < 64; i++ {
				m := receive(t, ch2, 30*time.Second)
				if m.UUID != msgs[i].UUID {
					t.Fatalf("redelivery: got %s (payload %s), want message %d %s", m.UUID, m.Payload, i, msgs[i].UUID)
				}
				m.Ack()
			}
			expectNothing(t, ch2, time.Second)
		})
	}
}

// TestAckWindowHandBack: when one of two Subscribe calls on a topic ends with
// messages of its window unacked, the other call gets exactly those (and the
// rest), and the acked ones do not come again.
func TestAckWindowHandBack(t *testing.T) {
	topic := uniqueQueue("q1", "flow")
	pub := newPublisher(t)
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{AckWindow: 16})
	ch1, cancel1 := subscribe(t, sub, topic)
	msgs := newMessages(16, "h")
	publish(t, pub, topic, msgs...)
	unacked := map[string]bool{}
	for i := 0; i < 16; i++ {
		m := receive(t, ch1, 30*time.Second)
		if i%3 == 0 {
			m.Ack()
		} else {
			unacked[m.UUID] = true
		}
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	ch2, err := sub.Subscribe(ctx2, topic)
	if err != nil {
		t.Fatal(err)
	}
	cancel1()
	for range ch1 {
	}
	for n := len(unacked); n > 0; n-- {
		m := receive(t, ch2, 30*time.Second)
		if !unacked[m.UUID] {
			t.Fatalf("%s handed to the other call, but it was acked or came twice", m.UUID)
		}
		delete(unacked, m.UUID)
		m.Ack()
	}
	expectNothing(t, ch2, 500*time.Millisecond)
}

// TestAckWindowNacks nacks messages of a full window out of order: each
// comes back once with attempt 2, and the window keeps moving meanwhile.
func TestAckWindowNacks(t *testing.T) {
	topic := uniqueQueue("q1", "flow")
	pub := newPublisher(t)
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{AckWindow: 16})
	ch, _ := subscribe(t, sub, topic)
	msgs := newMessages(32, "n")
	publish(t, pub, topic, msgs...)

	var held []*message.Message
	for i := 0; i < 16; i++ {
		held = append(held, receive(t, ch, 30*time.Second))
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
		m := receive(t, ch, 30*time.Second)
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

// TestAckWindowConfig: a negative AckWindow is refused with an error naming
// the field and the value.
func TestAckWindowConfig(t *testing.T) {
	err := kafkapubsub.SubscriberConfig{SubscriptionName: "x", AckWindow: -3}.Validate()
	if err == nil || err.Error() != "kafkapubsub: AckWindow must not be negative, got -3" {
		t.Fatalf("AckWindow -3: %v", err)
	}
	if err := (kafkapubsub.SubscriberConfig{SubscriptionName: "x"}).Validate(); err != nil {
		t.Fatalf("AckWindow 0 (default 1): %v", err)
	}
}
