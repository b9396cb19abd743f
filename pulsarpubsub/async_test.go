package pulsarpubsub

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"
)

// fakeClient is a pulsar.Client whose every producer is producer.
type fakeClient struct {
	pulsar.Client
	producer *fakeProducer
}

func (c *fakeClient) CreateProducer(pulsar.ProducerOptions) (pulsar.Producer, error) {
	return c.producer, nil
}

// fakeProducer confirms a message at once, or with hold keeps its callback
// for release. FlushWithCtx waits for a value on gate (when gate is set).
type fakeProducer struct {
	pulsar.Producer
	hold bool
	gate chan struct{}

	mu          sync.Mutex
	held        []func(pulsar.MessageID, *pulsar.ProducerMessage, error)
	flushes     int
	flushing    int
	maxFlushing int
	closed      bool
}

func (f *fakeProducer) Name() string { return "fake" }

func (f *fakeProducer) SendAsync(_ context.Context, pm *pulsar.ProducerMessage, cb func(pulsar.MessageID, *pulsar.ProducerMessage, error)) {
	if !f.hold {
		cb(nil, pm, nil)
		return
	}
	f.mu.Lock()
	f.held = append(f.held, cb)
	f.mu.Unlock()
}

// release reports err on every held message.
func (f *fakeProducer) release(err error) {
	f.mu.Lock()
	held := f.held
	f.held = nil
	f.mu.Unlock()
	for _, cb := range held {
		cb(nil, nil, err)
	}
}

func (f *fakeProducer) FlushWithCtx(ctx context.Context) error {
	f.mu.Lock()
	f.flushes++
	f.flushing++
	f.maxFlushing = max(f.maxFlushing, f.flushing)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.flushing--
		f.mu.Unlock()
	}()
	if f.gate == nil {
		return nil
	}
	select {
	case <-f.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeProducer) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

func (f *fakeProducer) stats() (flushes, flushing, maxFlushing int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushes, f.flushing, f.maxFlushing
}

func newFakePublisher(t testing.TB, f *fakeProducer, cfg PublisherConfig) *Publisher {
	t.Helper()
	cfg.Client = &fakeClient{producer: f}
	p, err := NewPublisher(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// PublishAsync allocates nothing of its own per message once its recycled
// nodes are warm (the client library allocates for the message it sends).
func TestPublishAsyncAllocations(t *testing.T) {
	if raceDetector {
		t.Skip("under the race detector sync.Pool drops recycled nodes")
	}
	p := newFakePublisher(t, &fakeProducer{}, PublisherConfig{})
	defer p.Close()
	msg := message.NewMessage(watermill.NewUUID(), []byte("payload"))
	msg.Metadata.Set("id", "request-1")
	msg.Metadata.Set("kind", "x")
	var confirmed atomic.Int64
	done := func(err error) {
		if err == nil {
			confirmed.Add(1)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() { p.PublishAsync("q1/tg/flow/x", msg, done) })
	if allocs > 0 {
		t.Errorf("PublishAsync allocates %.1f times per message, want 0", allocs)
	}
	if confirmed.Load() != 1001 {
		t.Errorf("%d messages confirmed, want 1001", confirmed.Load())
	}
}

func BenchmarkPublishAsyncFake(b *testing.B) {
	p := newFakePublisher(b, &fakeProducer{}, PublisherConfig{})
	defer p.Close()
	msg := message.NewMessage(watermill.NewUUID(), []byte("payload"))
	msg.Metadata.Set("id", "request-1")
	done := func(error) {}
	b.ReportAllocs()
	for b.Loop() {
		p.PublishAsync("q1/tg/flow/x", msg, done)
		p.FlushBatches()
	}
}

// Close fails, with ErrPublisherClosed, the messages the broker did not
// confirm within CloseTimeout, each once; a report of the client library
// after that is ignored.
func TestPublishAsyncCloseFailsUnconfirmed(t *testing.T) {
	f := &fakeProducer{hold: true}
	p := newFakePublisher(t, f, PublisherConfig{CloseTimeout: 200 * time.Millisecond})
	const n = 3
	var calls [n]atomic.Int32
	var errs [n]atomic.Value
	for i := range n {
		p.PublishAsync("q1/tg/flow/x", message.NewMessage(watermill.NewUUID(), nil), func(err error) {
			calls[i].Add(1)
			if err != nil {
				errs[i].Store(err)
			}
		})
	}
	for i := range n {
		if calls[i].Load() != 0 {
			t.Fatalf("message %d: done called before the broker confirmed it", i)
		}
	}
	if err := p.Close(); err == nil {
		t.Error("Close reported no timeout")
	}
	f.release(nil)
	for i := range n {
		if got := calls[i].Load(); got != 1 {
			t.Errorf("message %d: done called %d times", i, got)
		}
		err, _ := errs[i].Load().(error)
		if !errors.Is(err, ErrPublisherClosed) {
			t.Errorf("message %d: error %v, want ErrPublisherClosed", i, err)
		}
	}
	if !f.closed {
		t.Error("producer not closed")
	}
	var afterClose error
	p.PublishAsync("q1/tg/flow/x", message.NewMessage("late", nil), func(err error) { afterClose = err })
	if !errors.Is(afterClose, ErrPublisherClosed) {
		t.Errorf("after Close: %v", afterClose)
	}
}

// Close waits for the messages in flight and for nothing longer when the
// broker confirms them.
func TestPublishAsyncCloseWaitsForConfirmations(t *testing.T) {
	f := &fakeProducer{hold: true}
	p := newFakePublisher(t, f, PublisherConfig{CloseTimeout: time.Minute})
	var calls atomic.Int32
	var failed atomic.Int32
	for range 5 {
		p.PublishAsync("q1/tg/flow/x", message.NewMessage(watermill.NewUUID(), nil), func(err error) {
			calls.Add(1)
			if err != nil {
				failed.Add(1)
			}
		})
	}
	closed := make(chan error)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with 5 messages unconfirmed", err)
	case <-time.After(100 * time.Millisecond):
	}
	f.release(nil)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if calls.Load() != 5 || failed.Load() != 0 {
		t.Fatalf("done called %d times, %d with an error; want 5, 0", calls.Load(), failed.Load())
	}
}

// A send error is wrapped with the topic and the UUID, marked permanent
// when retrying cannot help, and a broken producer is dropped so that the
// next message gets a new one.
func TestPublishAsyncSendErrors(t *testing.T) {
	f := &fakeProducer{hold: true}
	client := &fakeClient{producer: f}
	created := 0
	p, err := NewPublisher(PublisherConfig{Client: countingClient{client, &created}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msg := message.NewMessage(watermill.NewUUID(), nil)
	errc := make(chan error, 1)
	p.PublishAsync("q1/tg/flow/x", msg, func(err error) { errc <- err })
	f.release(pulsar.ErrMessageTooLarge)
	err = <-errc
	var perm interface{ Permanent() bool }
	if !errors.As(err, &perm) || !perm.Permanent() || !errors.Is(err, pulsar.ErrMessageTooLarge) {
		t.Errorf("too large: %v is not a permanent ErrMessageTooLarge", err)
	}
	for _, want := range []string{msg.UUID, "persistent://tg/flow/x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	p.PublishAsync("q1/tg/flow/x", msg, func(err error) { errc <- err })
	f.release(pulsar.ErrProducerClosed)
	if err := <-errc; !errors.Is(err, pulsar.ErrProducerClosed) || isPermanent(err) {
		t.Errorf("producer closed: %v", err)
	}
	waitFor(t, "broken producer dropped", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.producers) == 0
	})
	p.PublishAsync("q1/tg/flow/x", msg, func(err error) { errc <- err })
	f.release(nil)
	if err := <-errc; err != nil {
		t.Errorf("after a new producer: %v", err)
	}
	if created != 2 {
		t.Errorf("%d producers created, want 2", created)
	}

	p.PublishAsync("q1/tg/flow", msg, func(err error) { errc <- err })
	if err := <-errc; !isPermanent(err) {
		t.Errorf("invalid name: %v is not permanent", err)
	}
}

type countingClient struct {
	*fakeClient
	n *int
}

func (c countingClient) CreateProducer(o pulsar.ProducerOptions) (pulsar.Producer, error) {
	*c.n++
	return c.fakeClient.CreateProducer(o)
}

// FlushBatches flushes only producers handed messages since their last
// flush, runs one flush per producer at a time, and folds the requests made
// while one runs into one more flush.
func TestFlushBatchesOneFlushAtATime(t *testing.T) {
	f := &fakeProducer{gate: make(chan struct{})}
	p := newFakePublisher(t, f, PublisherConfig{})
	send := func() {
		p.PublishAsync("q1/tg/flow/x", message.NewMessage(watermill.NewUUID(), nil), func(error) {})
	}
	p.FlushBatches()
	if n, _, _ := f.stats(); n != 0 {
		t.Fatalf("%d flushes with nothing sent", n)
	}
	send()
	p.FlushBatches()
	waitFor(t, "first flush", func() bool { _, running, _ := f.stats(); return running == 1 })
	p.FlushBatches() // nothing new
	send()
	p.FlushBatches()
	send()
	p.FlushBatches()
	time.Sleep(50 * time.Millisecond)
	if n, running, _ := f.stats(); n != 1 || running != 1 {
		t.Fatalf("%d flushes, %d running while the first one runs; want 1, 1", n, running)
	}
	f.gate <- struct{}{}
	waitFor(t, "second flush", func() bool { n, running, _ := f.stats(); return n == 2 && running == 1 })
	f.gate <- struct{}{}
	waitFor(t, "flushes done", func() bool { _, running, _ := f.stats(); return running == 0 })
	time.Sleep(50 * time.Millisecond)
	if n, _, most := f.stats(); n != 2 || most != 1 {
		t.Fatalf("%d flushes, at most %d at a time; want 2, 1", n, most)
	}
	p.FlushBatches()
	if n, _, _ := f.stats(); n != 2 {
		t.Fatalf("a flush with nothing new sent")
	}

	// A flush still running when Close runs out of time ends with it.
	send()
	p.FlushBatches()
	waitFor(t, "third flush", func() bool { _, running, _ := f.stats(); return running == 1 })
	p.cfg.CloseTimeout = 100 * time.Millisecond
	closed := make(chan struct{})
	go func() {
		_ = p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a flush that does not return")
	}
	if _, running, _ := f.stats(); running != 0 {
		t.Fatalf("%d flushes still running after Close", running)
	}
}

// With batching off there is nothing to flush.
func TestFlushBatchesWithoutBatching(t *testing.T) {
	f := &fakeProducer{}
	p := newFakePublisher(t, f, PublisherConfig{DisableBatching: true})
	defer p.Close()
	p.PublishAsync("q1/tg/flow/x", message.NewMessage(watermill.NewUUID(), nil), func(error) {})
	p.FlushBatches()
	time.Sleep(20 * time.Millisecond)
	if n, _, _ := f.stats(); n != 0 {
		t.Fatalf("%d flushes with batching off", n)
	}
}
