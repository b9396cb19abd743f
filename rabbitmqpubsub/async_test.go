package rabbitmqpubsub_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// asyncResults records the done calls of PublishAsync, one slot per
// message.
type asyncResults struct {
	calls []atomic.Int32
	n     int // messages expected, the first n of calls
	mu    sync.Mutex
	errs  map[int]error
	left  atomic.Int64
	all   chan struct{}
}

func newAsyncResults(n int) *asyncResults {
	r := &asyncResults{calls: make([]atomic.Int32, n), n: n, errs: map[int]error{}, all: make(chan struct{})}
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

// shrink lowers the number of messages expected to n.
func (r *asyncResults) shrink(n int) {
	drop := r.n - n
	r.n = n
	if r.left.Add(-int64(drop)) == 0 {
		close(r.all)
	}
}

// wait waits up to d for every done call.
func (r *asyncResults) wait(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-r.all:
	case <-time.After(d):
		t.Fatalf("%d of %d done calls missing after %s", r.left.Load(), r.n, d)
	}
}

// check fails unless every done was called exactly once.
func (r *asyncResults) check(t testing.TB) {
	t.Helper()
	for i := range r.n {
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

// TestPublishAsyncOrder publishes 10,000 messages with PublishAsync: every
// done is called once with nil, and the messages arrive in the order of the
// calls.
func TestPublishAsyncOrder(t *testing.T) {
	const total = 10000
	topic := "flow:tg:" + uniqueName("async")
	w, _ := rabbitmqpubsub.WireOf(topic)
	deleteQueueAtEnd(t, w.QueueName("async"))
	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "async", AckWindow: 256})
	ch := subscribe(t, s, topic)
	waitConsuming(t, s)
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})

	msgs := newMessages(total, "async")
	res := newAsyncResults(total)
	for i, m := range msgs {
		p.PublishAsync(topic, m, res.done(i))
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
}

// TestPublishAsyncErrors: an invalid topic, a message above the broker's
// limit and a user without write permission give permanent errors through
// done, naming the message; the messages around the large one are
// confirmed and arrive in order; a closed publisher fails at once.
func TestPublishAsyncErrors(t *testing.T) {
	var perm interface{ Permanent() bool }
	topic := "request:tg:" + uniqueName("async-err")
	w, _ := rabbitmqpubsub.WireOf(topic)
	deleteQueueAtEnd(t, w.QueueName("e"))
	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "e"})
	ch := subscribe(t, s, topic)
	waitConsuming(t, s)
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{})

	got := make(chan error, 1)
	p.PublishAsync("q1/tg/flow/bad name", message.NewMessage(watermill.NewUUID(), []byte(`{}`)), func(err error) { got <- err })
	if err := <-got; err == nil || !errors.As(err, &perm) || !perm.Permanent() || !errors.Is(err, schema.ErrInvalidTopic) {
		t.Fatalf("invalid topic: %v, want a permanent error wrapping schema.ErrInvalidTopic", err)
	}

	// Small, large, small: the broker closes the channel on the large one;
	// only that one fails, the others are confirmed.
	msgs := newMessages(40, "around")
	big := message.NewMessage(watermill.NewUUID(), make([]byte, 17<<20))
	all := append(append(append([]*message.Message{}, msgs[:20]...), big), msgs[20:]...)
	res := newAsyncResults(len(all))
	for i, m := range all {
		p.PublishAsync(topic, m, res.done(i))
	}
	res.wait(t, time.Minute)
	res.check(t)
	for i := range all {
		err := res.err(i)
		if i == 20 {
			if err == nil || !errors.As(err, &perm) || !perm.Permanent() || !strings.Contains(err.Error(), big.UUID) {
				t.Fatalf("17 MiB message: %v, want a permanent error naming %s", err, big.UUID)
			}
			t.Logf("too large: %v", err)
			continue
		}
		if err != nil {
			t.Fatalf("message %d around the large one: %v", i, err)
		}
	}
	// Those sent after the large one on the channel it closed were sent
	// again: each arrives, the first copies in order.
	seen := map[string]bool{}
	next := 0
	for next < len(msgs) {
		m := receive(t, ch, 30*time.Second)
		m.Ack()
		if seen[m.UUID] {
			continue
		}
		seen[m.UUID] = true
		if m.UUID != msgs[next].UUID {
			t.Fatalf("arrival %d: %s (payload %s), want %s", next, m.UUID, m.Payload, msgs[next].UUID)
		}
		next++
	}

	cfg := connConfig(t)
	cfg.Username = os.Getenv("SWITCHYARD_RABBITMQ_RO_USER")
	if cfg.Username == "" {
		t.Fatal("SWITCHYARD_RABBITMQ_RO_USER is not set; scripts/rabbitmq.sh env sets it")
	}
	ro := newPublisher(t, rabbitmqpubsub.PublisherConfig{ConnectionConfig: cfg})
	ro.PublishAsync(topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), func(err error) { got <- err })
	if err := <-got; err == nil || !errors.As(err, &perm) || !perm.Permanent() || strings.Contains(err.Error(), cfg.Password) {
		t.Fatalf("publishing without permission: %v, want a permanent error without the password", err)
	} else {
		t.Logf("access refused: %v", err)
	}

	closed := newPublisher(t, rabbitmqpubsub.PublisherConfig{})
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	closed.PublishAsync(topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), func(err error) { got <- err })
	if err := <-got; err == nil {
		t.Fatal("PublishAsync on a closed publisher: done(nil)")
	}
}

// TestPublishAsyncCloseWaits: Close right after a burst of PublishAsync
// returns only when every done was called, all with nil.
func TestPublishAsyncCloseWaits(t *testing.T) {
	const total = 2000
	topic := "flow:tg:" + uniqueName("async-close")
	w, _ := rabbitmqpubsub.WireOf(topic)
	deleteQueueAtEnd(t, w.QueueName("c"))
	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "c", AckWindow: 128})
	ch := subscribe(t, s, topic)
	waitConsuming(t, s)
	p, err := rabbitmqpubsub.NewPublisher(rabbitmqpubsub.PublisherConfig{ConnectionConfig: connConfig(t)}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	msgs := newMessages(total, "close")
	res := newAsyncResults(total)
	for i, m := range msgs {
		p.PublishAsync(topic, m, res.done(i))
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if left := res.left.Load(); left != 0 {
		t.Fatalf("Close returned with %d done calls missing", left)
	}
	res.check(t)
	if f := res.failed(); len(f) > 0 {
		t.Fatalf("%d messages failed, e.g. %v", len(f), f)
	}
	for i := range msgs {
		m := receive(t, ch, 30*time.Second)
		if m.UUID != msgs[i].UUID {
			t.Fatalf("message %d: got %s, want %s", i, m.UUID, msgs[i].UUID)
		}
		m.Ack()
	}
}

// TestPublishAsyncCloseTimeout: Close with a CloseTimeout too short for
// the broker to confirm a burst still calls every done exactly once before
// it returns: with nil for the confirmed messages, with an error for the
// others, and Close reports the failure.
func TestPublishAsyncCloseTimeout(t *testing.T) {
	const total = 5000
	topic := "request:tg:" + uniqueName("async-timeout")
	p, err := rabbitmqpubsub.NewPublisher(rabbitmqpubsub.PublisherConfig{ConnectionConfig: connConfig(t), CloseTimeout: time.Millisecond}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	res := newAsyncResults(total)
	for i, m := range newMessages(total, "timeout") {
		p.PublishAsync(topic, m, res.done(i))
	}
	cerr := p.Close()
	if left := res.left.Load(); left != 0 {
		t.Fatalf("Close returned with %d done calls missing", left)
	}
	res.check(t)
	failed := res.failed()
	if (len(failed) > 0) != (cerr != nil) {
		t.Fatalf("Close: %v, with %d messages failed", cerr, len(failed))
	}
	t.Logf("Close: %v; %d of %d messages failed", cerr, len(failed), total)
	for _, err := range failed {
		t.Logf("e.g. %v", err)
		break
	}
}

// TestPublishAsyncConnectionLost closes the publisher's connection from the
// broker's side during a stream of PublishAsync calls: every message is
// confirmed, and they arrive in the order of the calls (counting the first
// copy of those sent again after the loss).
func TestPublishAsyncConnectionLost(t *testing.T) {
	const maxLost = 200000
	topic := "flow:tg:" + uniqueName("async-lost")
	w, _ := rabbitmqpubsub.WireOf(topic)
	deleteQueueAtEnd(t, w.QueueName("l"))
	ctlPrefix := strings.Fields(brokertest.Env(t, "SWITCHYARD_RABBITMQ_CTL"))
	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{SubscriptionName: "l", AckWindow: 128})
	ch := subscribe(t, s, topic)
	waitConsuming(t, s)
	cfg := connConfig(t)
	cfg.ConnectionName = uniqueName("async-lost-publisher")
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{ConnectionConfig: cfg, PublishTimeout: time.Minute})

	// The broker closes the connection while the calls go on, so that some
	// messages are sent and not yet confirmed when it goes; the calls go on
	// for a while after that.
	closer := make(chan error, 1)
	var msgs []*message.Message
	res := newAsyncResults(maxLost)
	closedAt := -1
	for i := 0; closedAt < 0 || i < closedAt+1000; i++ {
		if i == maxLost {
			t.Fatalf("closing the connection took longer than %d messages", maxLost)
		}
		m := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"n":%d}`, i)))
		msgs = append(msgs, m)
		p.PublishAsync(topic, m, res.done(i))
		if i == 1000 {
			go func() { closer <- closeConnection(ctlPrefix, cfg.ConnectionName) }()
		}
		if closedAt < 0 && i > 1000 {
			select {
			case err := <-closer:
				if err != nil {
					t.Fatal(err)
				}
				closedAt = i
			default:
			}
		}
		if i%10 == 9 {
			time.Sleep(time.Millisecond)
		}
	}
	total := len(msgs)
	res.shrink(total)
	res.wait(t, 2*time.Minute)
	res.check(t)
	if f := res.failed(); len(f) > 0 {
		t.Fatalf("%d messages failed across the lost connection, e.g. %v", len(f), f)
	}
	seen := map[string]bool{}
	next, dups := 0, 0
	for next < total {
		m := receive(t, ch, 30*time.Second)
		m.Ack()
		if seen[m.UUID] {
			dups++
			continue
		}
		seen[m.UUID] = true
		if m.UUID != msgs[next].UUID {
			t.Fatalf("first arrival %d: %s (payload %s), want %s", next, m.UUID, m.Payload, msgs[next].UUID)
		}
		next++
	}
	t.Logf("connection closed after %d of %d messages; all arrived in order, %d twice", closedAt, total, dups)
}

// closeConnection has the broker close the connection named name, through
// rabbitmqctl (the command prefix ctlPrefix).
func closeConnection(ctlPrefix []string, name string) error {
	run := func(args ...string) (string, error) {
		out, err := exec.Command(ctlPrefix[0], append(ctlPrefix[1:], args...)...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	out, err := run("-q", "list_connections", "pid", "client_properties")
	if err != nil {
		return err
	}
	lines := linesContaining(out, name)
	if len(lines) == 0 {
		return fmt.Errorf("no connection named %s among:\n%s", name, out)
	}
	for _, l := range lines {
		if _, err := run("close_connection", strings.Fields(l)[0], "the test closes the publisher's connection"); err != nil {
			return err
		}
	}
	return nil
}
