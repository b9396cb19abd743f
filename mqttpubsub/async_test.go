package mqttpubsub_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/mqttpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// doneRecorder records the outcomes PublishAsync reports, by message.
type doneRecorder struct {
	calls []atomic.Int32
	mu    sync.Mutex
	errs  map[int]error
	left  sync.WaitGroup
}

func newDoneRecorder(n int) *doneRecorder {
	r := &doneRecorder{calls: make([]atomic.Int32, n), errs: map[int]error{}}
	r.left.Add(n)
	return r
}

// done returns the callback of message i.
func (r *doneRecorder) done(i int) func(error) {
	return func(err error) {
		if r.calls[i].Add(1) != 1 {
			return // counted; wait reports it
		}
		if err != nil {
			r.mu.Lock()
			r.errs[i] = err
			r.mu.Unlock()
		}
		r.left.Done()
	}
}

// wait waits until every message got its callback.
func (r *doneRecorder) wait(t *testing.T) {
	t.Helper()
	finished := make(chan struct{})
	go func() { r.left.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("not every PublishAsync call got its callback")
	}
}

// checkOnce fails the test unless every callback was called exactly once.
func (r *doneRecorder) checkOnce(t *testing.T) {
	t.Helper()
	for i := range r.calls {
		if n := r.calls[i].Load(); n != 1 {
			t.Errorf("done of message %d was called %d times", i, n)
		}
	}
}

func (r *doneRecorder) err(i int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs[i]
}

func (r *doneRecorder) failures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs)
}

// TestPublishAsyncDeliversEverythingInOrder publishes 10,000 messages with
// PublishAsync from one goroutine and checks that each callback is called
// once, with nil, and that every message arrives (in publish order on
// Mosquitto).
func TestPublishAsyncDeliversEverythingInOrder(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		const total = 10000
		queue := uniqueQueue("q1")
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "async-" + watermill.NewShortUUID(), AckWindow: 256})
		ch, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		rec := newDoneRecorder(total)
		received := make(chan []int, 1)
		go func() {
			got := make([]int, 0, total)
			timeout := time.After(2 * time.Minute)
			for len(got) < total {
				select {
				case m, ok := <-ch:
					if !ok {
						received <- got
						return
					}
					n, _ := strconv.Atoi(string(m.Payload))
					got = append(got, n)
					m.Ack()
				case <-timeout:
					received <- got
					return
				}
			}
			received <- got
		}()
		for i := 0; i < total; i++ {
			m := message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
			m.Metadata.Set("id", "req-"+strconv.Itoa(i))
			pub.PublishAsync(queue, m, rec.done(i))
		}
		rec.wait(t)
		rec.checkOnce(t)
		if n := rec.failures(); n > 0 {
			t.Fatalf("%d messages failed; message 0: %v", n, rec.err(0))
		}
		got := <-received
		if len(got) != total {
			t.Fatalf("received %d of %d messages", len(got), total)
		}
		seen := make([]bool, total)
		for _, n := range got {
			if n < 0 || n >= total || seen[n] {
				t.Fatalf("message %d received twice or unknown", n)
			}
			seen[n] = true
		}
		if b.name == "mosquitto" {
			for i, n := range got {
				if n != i {
					t.Fatalf("message %d received in place %d", n, i)
				}
			}
		}
		expectNone(t, ch, 300*time.Millisecond)
	})
}

// TestPublishAsyncQoS0 checks that a QoS 0 message is reported published
// and arrives.
func TestPublishAsyncQoS0(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q0")
		c := plainClient(t, b)
		got := plainSubscribe(t, c, mqttTopicOf(queue), 0)
		pub := newPublisher(t, b, mqttpubsub.PayloadRaw)
		rec := newDoneRecorder(1)
		pub.PublishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte("zero")), rec.done(0))
		rec.wait(t)
		if err := rec.err(0); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if string(m.Payload()) != "zero" || m.Qos() != 0 {
				t.Fatalf("got %q with QoS %d", m.Payload(), m.Qos())
			}
		case <-time.After(wait):
			t.Fatal("the QoS 0 message did not arrive")
		}
	})
}

// TestPublishAsyncErrors checks the errors PublishAsync reports through
// done: an invalid topic and an oversized message are permanent, and a
// closed publisher says so.
func TestPublishAsyncErrors(t *testing.T) {
	b := embeddedBroker(t)
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: b.url},
		MaxPacketSize:    1024,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	permanent := func(err error) bool {
		var p interface{ Permanent() bool }
		return errors.As(err, &p) && p.Permanent()
	}
	rec := newDoneRecorder(4)
	pub.PublishAsync("q1/tg/flow/a+b", message.NewMessage(watermill.NewUUID(), []byte(`{}`)), rec.done(0))
	big := message.NewMessage(watermill.NewUUID(), []byte(`"`+strings.Repeat("x", 2000)+`"`))
	queue := uniqueQueue("q1")
	pub.PublishAsync(queue, big, rec.done(1))
	pub.PublishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), rec.done(2))
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	pub.PublishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), rec.done(3))
	rec.wait(t)
	rec.checkOnce(t)
	if err := rec.err(0); !permanent(err) || !errors.Is(err, schema.ErrInvalidTopic) {
		t.Errorf("invalid topic: %v, want a permanent error wrapping schema.ErrInvalidTopic", err)
	}
	var pe *mqttpubsub.PublishError
	if err := rec.err(1); !permanent(err) || !errors.As(err, &pe) || pe.UUID != big.UUID || pe.Topic != queue {
		t.Errorf("oversized message: %v, want a permanent *PublishError naming it", err)
	}
	if err := rec.err(2); err != nil {
		t.Errorf("a message that fits: %v", err)
	}
	if err := rec.err(3); !errors.Is(err, mqttpubsub.ErrPublisherClosed) || permanent(err) {
		t.Errorf("after Close: %v, want ErrPublisherClosed", err)
	}
}

// TestPublishAsyncLostConnectionFailsWaitingMessages holds back the
// broker's acknowledgements, cuts the connection, and checks that every
// waiting message fails, once.
func TestPublishAsyncLostConnectionFailsWaitingMessages(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		proxy := newStallProxy(t, strings.TrimPrefix(b.url, "tcp://"))
		pub := newPublisher(t, testBroker{name: b.name, url: "tcp://" + proxy.addr()}, mqttpubsub.PayloadEnvelope)
		proxy.hold()
		const n = 5
		rec := newDoneRecorder(n)
		queue := uniqueQueue("q1")
		for i := 0; i < n; i++ {
			pub.PublishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), rec.done(i))
		}
		time.Sleep(300 * time.Millisecond)
		for i := 0; i < n; i++ {
			if c := rec.calls[i].Load(); c != 0 {
				t.Fatalf("message %d was reported before the broker acknowledged it: %v", i, rec.err(i))
			}
		}
		proxy.cut()
		rec.wait(t)
		rec.checkOnce(t)
		for i := 0; i < n; i++ {
			var pe *mqttpubsub.PublishError
			if err := rec.err(i); !errors.As(err, &pe) {
				t.Errorf("message %d: %v, want a *PublishError", i, err)
			}
		}
	})
}

// TestPublishAsyncTimesOut checks that a message the broker does not
// acknowledge within PublishTimeout of its sending fails.
func TestPublishAsyncTimesOut(t *testing.T) {
	b := embeddedBroker(t)
	proxy := newStallProxy(t, strings.TrimPrefix(b.url, "tcp://"))
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: "tcp://" + proxy.addr()},
		PublishTimeout:   500 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	proxy.hold()
	rec := newDoneRecorder(2)
	queue := uniqueQueue("q1")
	pub.PublishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), rec.done(0))
	pub.PublishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), rec.done(1))
	rec.wait(t)
	rec.checkOnce(t)
	for i := 0; i < 2; i++ {
		if err := rec.err(i); err == nil || !strings.Contains(err.Error(), "did not acknowledge") {
			t.Errorf("message %d: %v, want a timeout", i, err)
		}
	}
}

// TestPublishAsyncBlocksAtMaxInFlight checks that PublishAsync waits while
// MaxInFlight messages wait for their acknowledgement, and goes on when
// they are acknowledged.
func TestPublishAsyncBlocksAtMaxInFlight(t *testing.T) {
	b := embeddedBroker(t)
	proxy := newStallProxy(t, strings.TrimPrefix(b.url, "tcp://"))
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: "tcp://" + proxy.addr()},
		MaxInFlight:      4,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	proxy.hold()
	rec := newDoneRecorder(5)
	queue := uniqueQueue("q1")
	for i := 0; i < 4; i++ {
		pub.PublishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), rec.done(i))
	}
	returned := make(chan struct{})
	go func() {
		pub.PublishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), rec.done(4))
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("the fifth PublishAsync returned while four messages waited")
	case <-time.After(300 * time.Millisecond):
	}
	proxy.release()
	select {
	case <-returned:
	case <-time.After(wait):
		t.Fatal("the fifth PublishAsync did not return after the acknowledgements")
	}
	rec.wait(t)
	rec.checkOnce(t)
	if n := rec.failures(); n > 0 {
		t.Fatalf("%d messages failed", n)
	}
}

// TestCloseWaitsForPublishAsync checks that Close returns only after every
// PublishAsync callback was called.
func TestCloseWaitsForPublishAsync(t *testing.T) {
	b := embeddedBroker(t)
	proxy := newStallProxy(t, strings.TrimPrefix(b.url, "tcp://"))
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: "tcp://" + proxy.addr()},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	proxy.hold()
	const n = 3
	rec := newDoneRecorder(n)
	queue := uniqueQueue("q1")
	for i := 0; i < n; i++ {
		pub.PublishAsync(queue, message.NewMessage(watermill.NewUUID(), []byte(`{}`)), rec.done(i))
	}
	closed := make(chan struct{})
	go func() {
		_ = pub.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while messages waited for their acknowledgement")
	case <-time.After(300 * time.Millisecond):
	}
	proxy.release()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return after the acknowledgements")
	}
	for i := 0; i < n; i++ {
		if c := rec.calls[i].Load(); c != 1 {
			t.Fatalf("Close returned with done of message %d called %d times", i, c)
		}
		if err := rec.err(i); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
}

// stallProxy forwards TCP connections to a broker and can hold back what
// the broker sends (its acknowledgements) until released.
type stallProxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	cond  *sync.Cond
	held  bool
	conns []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{l: l, target: target}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *stallProxy) addr() string { return p.l.Addr().String() }

func (p *stallProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(out, in)
			_ = out.Close()
			_ = in.Close()
		}()
		go p.back(in, out)
	}
}

// back copies from the broker to the client, waiting while held.
func (p *stallProxy) back(client, broker net.Conn) {
	defer p.wg.Done()
	defer client.Close()
	defer broker.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := broker.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.held {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold stops passing on what the broker sends.
func (p *stallProxy) hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

// release passes on what the broker sent meanwhile, and all that follows.
func (p *stallProxy) release() {
	p.mu.Lock()
	p.held = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// cut closes every connection made so far and releases what was held.
func (p *stallProxy) cut() {
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.held = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// The router finds PublishAsync through an interface of this shape.
var _ interface {
	message.Publisher
	PublishAsync(topic string, msg *message.Message, done func(error))
} = (*mqttpubsub.Publisher)(nil)
