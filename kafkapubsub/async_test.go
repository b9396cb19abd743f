package kafkapubsub_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/kafkapubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// asyncResults records the done calls of PublishAsync, one slot per
// message.
type asyncResults struct {
	calls []atomic.Int32
	mu    sync.Mutex
	errs  map[int]error
	left  atomic.Int64
	all   chan struct{}
}

func newAsyncResults(n int) *asyncResults {
	r := &asyncResults{calls: make([]atomic.Int32, n), errs: map[int]error{}, all: make(chan struct{})}
	r.left.Store(int64(n))
	return r
}

// done returns the done callback of message i.
func (r *asyncResults) done(i int) func(error) {
	return func(err error) {
		if r.calls[i].Add(1) != 1 {
			return // counted; check reports it
		}
		if err != nil {
			r.mu.Lock()
			r.errs[i] = err
			r.mu.Unlock()
		}
		if r.left.Add(-1) == 0 {
			close(r.all)
		}
	}
}

// wait waits up to d for every done call.
func (r *asyncResults) wait(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-r.all:
	case <-time.After(d):
		t.Fatalf("%d of %d done calls missing after %s", r.left.Load(), len(r.calls), d)
	}
}

// check fails unless every done was called exactly once.
func (r *asyncResults) check(t testing.TB) {
	t.Helper()
	for i := range r.calls {
		if n := r.calls[i].Load(); n != 1 {
			t.Fatalf("done of message %d called %d times", i, n)
		}
	}
}

func (r *asyncResults) err(i int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs[i]
}

func (r *asyncResults) failed() map[int]error {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int]error, len(r.errs))
	for k, v := range r.errs {
		out[k] = v
	}
	return out
}

// TestPublishAsyncOrder publishes 10,000 messages with PublishAsync to a
// flow (idempotent, acks=all) and a request (leader ack) queue: every done
// is called once with nil, and the messages arrive in the order of the calls.
func TestPublishAsyncOrder(t *testing.T) {
	const total = 10000
	for _, class := range []string{"flow", "request"} {
		t.Run(class, func(t *testing.T) {
			topic := uniqueQueue("q1", class)
			sub := newSubscriber(t, kafkapubsub.SubscriberConfig{AckWindow: 256})
			ch, _ := subscribe(t, sub, topic)
			pub := newPublisher(t)
			msgs := newMessages(total, "async")
			res := newAsyncResults(total)
			for i, m := range msgs {
				pub.PublishAsync(topic, m, res.done(i))
			}
			res.wait(t, 2*time.Minute)
			res.check(t)
			if f := res.failed(); len(f) > 0 {
				t.Fatalf("%d messages failed, e.g. %v", len(f), f)
			}
			for i, want := range msgs {
				m := receive(t, ch, 30*time.Second)
				if m.UUID != want.UUID {
					t.Fatalf("message %d: got %s (payload %s), want %s", i, m.UUID, m.Payload, want.UUID)
				}
				m.Ack()
			}
			expectNothing(t, ch, 300*time.Millisecond)
		})
	}
}

// TestPublishAsyncErrors: an invalid queue name and a message too large
// give permanent errors through done, naming the message; the messages
// around the large one are confirmed and arrive in order; a closed
// publisher and an unreachable broker fail.
func TestPublishAsyncErrors(t *testing.T) {
	var perm interface{ Permanent() bool }
	pub := newPublisher(t)
	got := make(chan error, 1)

	pub.PublishAsync("bogus", message.NewMessage(watermill.NewUUID(), []byte("x")), func(err error) { got <- err })
	if err := <-got; err == nil || !errors.As(err, &perm) || !perm.Permanent() || !errors.Is(err, schema.ErrInvalidTopic) {
		t.Fatalf("malformed queue: %v, want a permanent error wrapping schema.ErrInvalidTopic", err)
	}
	pub.PublishAsync("q1/tgtest/flow/a=b", message.NewMessage(watermill.NewUUID(), []byte("x")), func(err error) { got <- err })
	if err := <-got; err == nil || !errors.As(err, &perm) || !perm.Permanent() {
		t.Fatalf("invalid Kafka topic: %v, want a permanent error", err)
	}

	topic := uniqueQueue("q1", "flow")
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{AckWindow: 64})
	ch, _ := subscribe(t, sub, topic)
	msgs := newMessages(40, "around")
	big := message.NewMessage(watermill.NewUUID(), make([]byte, kafkapubsub.MaxMessageBytes+1))
	all := append(append(append([]*message.Message{}, msgs[:20]...), big), msgs[20:]...)
	res := newAsyncResults(len(all))
	for i, m := range all {
		pub.PublishAsync(topic, m, res.done(i))
	}
	res.wait(t, time.Minute)
	res.check(t)
	for i := range all {
		err := res.err(i)
		if i == 20 {
			if err == nil || !errors.As(err, &perm) || !perm.Permanent() || !strings.Contains(err.Error(), big.UUID) {
				t.Fatalf("message too large: %v, want a permanent error naming %s", err, big.UUID)
			}
			t.Logf("too large: %v", err)
			continue
		}
		if err != nil {
			t.Fatalf("message %d around the large one: %v", i, err)
		}
	}
	for i, want := range msgs {
		m := receive(t, ch, 30*time.Second)
		if m.UUID != want.UUID {
			t.Fatalf("message %d: got %s (payload %s), want %s", i, m.UUID, m.Payload, want.UUID)
		}
		m.Ack()
	}

	closed, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{Config: kafkapubsub.Config{BootstrapServers: bootstrap(t)}}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	closed.PublishAsync(topic, message.NewMessage(watermill.NewUUID(), []byte("x")), func(err error) { got <- err })
	if err := <-got; !errors.Is(err, kafkapubsub.ErrClosed) {
		t.Fatalf("PublishAsync on a closed publisher: %v, want ErrClosed", err)
	}

	down, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{Config: kafkapubsub.Config{
		BootstrapServers: "127.0.0.1:1", RequestTimeout: 2 * time.Second, DialTimeout: time.Second,
	}}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	down.PublishAsync("q1/tgtest/flow/x", message.NewMessage(watermill.NewUUID(), []byte("x")), func(err error) { got <- err })
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("PublishAsync to an unreachable broker: done(nil)")
		}
		t.Logf("unreachable: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("PublishAsync to an unreachable broker: done not called within 30s")
	}
}

// TestPublishAsyncCloseWaits: Close right after a burst of PublishAsync
// returns only when every done was called, all with nil, and every message
// arrives in order.
func TestPublishAsyncCloseWaits(t *testing.T) {
	const total = 5000
	topic := uniqueQueue("q1", "flow")
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{AckWindow: 128})
	ch, _ := subscribe(t, sub, topic)
	pub, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{Config: kafkapubsub.Config{BootstrapServers: bootstrap(t)}}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	msgs := newMessages(total, "close")
	res := newAsyncResults(total)
	for i, m := range msgs {
		pub.PublishAsync(topic, m, res.done(i))
	}
	if err := pub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if left := res.left.Load(); left != 0 {
		t.Fatalf("Close returned with %d done calls missing", left)
	}
	res.check(t)
	if f := res.failed(); len(f) > 0 {
		t.Fatalf("%d messages failed, e.g. %v", len(f), f)
	}
	for i, want := range msgs {
		m := receive(t, ch, 30*time.Second)
		if m.UUID != want.UUID {
			t.Fatalf("message %d: got %s, want %s", i, m.UUID, want.UUID)
		}
		m.Ack()
	}
}
