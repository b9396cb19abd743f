package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
)

// adapterHarness runs against a broker through switchyard's own adapter for
// it (RabbitMQ, Kafka). Its raw-sync variant is a loop on the adapter's
// Publisher and Subscriber, used directly: what it leaves out is the
// router, the middleware and the typed adapter, as on the memory backend.
// The load client and the switchyard variant use backend.New.
type adapterHarness struct {
	logger watermill.LoggerAdapter
	// newBackend connects a backend whose client is named name.
	newBackend func(ctx context.Context, name string) (router.Backend, error)
	// newRawPubSub returns the adapter's Publisher and a Subscriber of the
	// subscription spec.name, configured as the backend configures them.
	newRawPubSub func(spec runSpec) (message.Publisher, message.Subscriber, error)
	// limit starts the limit loop of spec on the broker's client library.
	limit func(ctx context.Context, spec runSpec) (processor, error)
	// cleanup removes what the runs of specs left on the broker (queues,
	// topics, groups); nil leaves them.
	cleanup func(specs []runSpec) error

	mu    sync.Mutex
	specs []runSpec
}

// close removes the queues of the runs this harness served.
func (h *adapterHarness) close() error {
	h.mu.Lock()
	specs := h.specs
	h.specs = nil
	h.mu.Unlock()
	if h.cleanup == nil || len(specs) == 0 {
		return nil
	}
	return h.cleanup(specs)
}

// Load client settings: publishing goroutines, the most requests one
// Publish call carries, and the Subscribe calls reading the responses.
const (
	adapterLoadPublishers = 4
	adapterLoadBatch      = 64
	adapterLoadReaders    = 2
)

func (h *adapterHarness) newLoad(ctx context.Context, spec runSpec, fn responseFunc) (loadClient, error) {
	h.mu.Lock()
	h.specs = append(h.specs, spec)
	h.mu.Unlock()
	b, err := h.newBackend(ctx, spec.name+"-load")
	if err != nil {
		return nil, err
	}
	sub, err := b.NewSubscriber(router.SubscribeOptions{Subscription: spec.name + "-counter", InitialPosition: router.PositionEarliest})
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	l := &adapterLoad{
		backend: b, pub: b.Publisher(), sub: sub, topic: spec.in.String(), cancel: cancel,
		queue: make(chan *message.Message, adapterLoadBatch*adapterLoadPublishers), done: make(chan struct{}),
	}
	// Subscribe returns before the adapter consumes: the queue and its
	// binding must exist before the first response is published.
	if err := subscribeInitialize(sub, spec.out.String()); err != nil {
		_ = l.Close()
		return nil, err
	}
	for i := 0; i < adapterLoadReaders; i++ {
		ch, err := sub.Subscribe(sctx, spec.out.String())
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		l.readers.Add(1)
		go func() {
			defer l.readers.Done()
			for msg := range ch {
				fn(msg.Metadata.Get(middleware.IDProperty), msg.Payload)
				msg.Ack()
			}
		}()
	}
	if async, ok := l.pub.(middleware.AsyncPublisher); ok {
		l.async = async
		return l, nil
	}
	for i := 0; i < adapterLoadPublishers; i++ {
		l.publishers.Add(1)
		go func() {
			defer l.publishers.Done()
			l.publish()
		}()
	}
	return l, nil
}

// adapterLoad is the load client on a backend made by backend.New. When
// the adapter's publisher has PublishAsync (middleware.AsyncPublisher),
// throughput requests go out through it, each confirmed in the background,
// as the Pulsar load client's SendAsync does. Otherwise they are queued and
// published by a few goroutines in batches, each batch one Publish call that
// waits for the broker's confirmation; that bounds what the generator has
// in flight to the broker to adapterLoadPublishers batches, which on a fast
// broker caps the load below what the pipelined rows take.
type adapterLoad struct {
	backend router.Backend
	pub     message.Publisher
	async   middleware.AsyncPublisher // nil: queue and batch
	sub     message.Subscriber
	topic   string
	cancel  context.CancelFunc

	queue      chan *message.Message
	done       chan struct{}
	once       sync.Once
	publishers sync.WaitGroup
	readers    sync.WaitGroup

	mu  sync.Mutex
	err error // first failed batch or asynchronous publish
}

var errLoadClosed = errors.New("the load client is closed")

// Publish sends one request; with flush it waits for the broker's
// confirmation, else it hands it on without waiting and returns an earlier
// failure, if any.
func (l *adapterLoad) Publish(id string, payload []byte, flush bool) error {
	msg := message.NewMessage(id, payload)
	msg.Metadata.Set(middleware.IDProperty, id)
	if flush {
		return l.pub.Publish(l.topic, msg)
	}
	l.mu.Lock()
	err := l.err
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if l.async != nil {
		l.async.PublishAsync(l.topic, msg, l.fail)
		return nil
	}
	select {
	case l.queue <- msg:
		return nil
	case <-l.done:
		return errLoadClosed
	}
}

// fail keeps the first publish error, which the next Publish returns.
func (l *adapterLoad) fail(err error) {
	if err == nil {
		return
	}
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

// publish takes what is queued, up to a batch at a time, and publishes it.
func (l *adapterLoad) publish() {
	batch := make([]*message.Message, 0, adapterLoadBatch)
	for {
		select {
		case msg := <-l.queue:
			batch = append(batch[:0], msg)
		case <-l.done:
			return
		}
	more:
		for len(batch) < adapterLoadBatch {
			select {
			case msg := <-l.queue:
				batch = append(batch, msg)
			default:
				break more
			}
		}
		l.fail(l.pub.Publish(l.topic, batch...))
	}
}

// Close stops publishing, ends the counter's subscription and closes the
// backend.
func (l *adapterLoad) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		l.publishers.Wait()
		l.cancel()
		err = l.sub.Close()
		l.readers.Wait()
		if cerr := l.backend.Close(); cerr != nil && err == nil {
			err = cerr
		}
	})
	return err
}

func (h *adapterHarness) newProcessor(ctx context.Context, spec runSpec) (processor, error) {
	switch {
	case isSwitchyard(spec.variant):
		b, err := h.newBackend(ctx, spec.name)
		if err != nil {
			return nil, err
		}
		p, err := startRouter(ctx, b, true, spec, h.logger)
		if err != nil {
			_ = b.Close()
			return nil, err
		}
		return p, nil
	case spec.variant == VariantLimit:
		return h.newLimit(ctx, spec)
	}
	pub, sub, err := h.newRawPubSub(spec)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	p := &adapterRaw{pub: pub, sub: sub, cancel: cancel}
	out := spec.out.String()
	// As the router does: the subscription exists before the first request.
	if err := subscribeInitialize(sub, spec.in.String()); err != nil {
		_ = p.Stop()
		return nil, err
	}
	for i := 0; i < spec.concurrency; i++ {
		ch, err := sub.Subscribe(sctx, spec.in.String())
		if err != nil {
			_ = p.Stop()
			return nil, err
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for msg := range ch {
				resp, err := EchoPayload(msg.Payload)
				if err != nil {
					h.logger.Error("raw processor: bad request", err, nil)
					msg.Ack()
					continue
				}
				om := message.NewMessage(watermill.NewUUID(), resp)
				om.Metadata.Set(middleware.IDProperty, msg.Metadata.Get(middleware.IDProperty))
				if err := pub.Publish(out, om); err != nil {
					msg.Nack()
					continue
				}
				msg.Ack()
			}
		}()
	}
	return p, nil
}

// newLimit starts the limit loop of spec.
func (h *adapterHarness) newLimit(ctx context.Context, spec runSpec) (processor, error) {
	if h.limit == nil {
		return nil, fmt.Errorf("no limit loop for this broker")
	}
	return h.limit(ctx, spec)
}

// subscribeInitialize creates the subscription of sub on topic, when sub
// can do that ahead of Subscribe.
func subscribeInitialize(sub message.Subscriber, topic string) error {
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(topic); err != nil {
			return fmt.Errorf("creating the subscription on %s: %w", topic, err)
		}
	}
	return nil
}

// adapterRaw is the raw-sync variant on an adapter: spec.concurrency workers,
// each a Subscribe call on the shared subscription, that decode, do the
// work, publish the response (waiting for the broker's confirmation) and
// only then ack the request.
type adapterRaw struct {
	pub    message.Publisher
	sub    message.Subscriber
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// Stop ends the workers and closes the subscriber and the publisher.
func (p *adapterRaw) Stop() error {
	p.once.Do(func() {
		p.cancel()
		p.err = p.sub.Close()
		p.wg.Wait()
		if err := p.pub.Close(); err != nil && p.err == nil {
			p.err = err
		}
	})
	return p.err
}

// PID is 0: the raw loop runs in this process.
func (p *adapterRaw) PID() int { return 0 }
