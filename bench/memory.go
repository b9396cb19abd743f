package bench

import (
	"context"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
)

// memoryHarness runs load, counter and processor on one in-process memory
// backend, made afresh for every run. Its raw-sync variant is a loop on the
// backend's own publisher and subscriber: the router, the middleware and the
// typed adapter are what it leaves out. The same loop is its limit: the
// backend's Publish returns once the response is queued, which is its
// confirmation, so there is nothing to pipeline, and one worker per CPU
// goes faster than one consumer.
type memoryHarness struct {
	backend router.Backend
	logger  watermill.LoggerAdapter
}

func newMemoryHarness(ctx context.Context, logger watermill.LoggerAdapter) (*memoryHarness, error) {
	b, err := backend.New(ctx, backend.Config{Name: backend.Memory, ClientName: "bench"}, logger)
	if err != nil {
		return nil, err
	}
	return &memoryHarness{backend: b, logger: logger}, nil
}

func (h *memoryHarness) close() error { return h.backend.Close() }

func (h *memoryHarness) newLoad(ctx context.Context, spec runSpec, fn responseFunc) (loadClient, error) {
	sub, err := h.backend.NewSubscriber(router.SubscribeOptions{Subscription: spec.name + "-counter"})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(sctx, spec.out.String())
	if err != nil {
		cancel()
		_ = sub.Close()
		return nil, err
	}
	l := &memoryLoad{pub: h.backend.Publisher(), topic: spec.in.String(), sub: sub, cancel: cancel}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for msg := range ch {
			fn(msg.Metadata.Get(middleware.IDProperty), msg.Payload)
			msg.Ack()
		}
	}()
	return l, nil
}

type memoryLoad struct {
	pub    message.Publisher
	topic  string
	sub    message.Subscriber
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Publish sends one request to the input queue.
func (l *memoryLoad) Publish(id string, payload []byte, _ bool) error {
	msg := message.NewMessage(id, payload)
	msg.Metadata.Set(middleware.IDProperty, id)
	return l.pub.Publish(l.topic, msg)
}

// Close ends the counter's subscription.
func (l *memoryLoad) Close() error {
	l.cancel()
	err := l.sub.Close()
	l.wg.Wait()
	return err
}

func (h *memoryHarness) newProcessor(ctx context.Context, spec runSpec) (processor, error) {
	if isSwitchyard(spec.variant) {
		return startRouter(ctx, h.backend, false, spec, h.logger)
	}
	// The limit row is this loop too: there is no broker client to
	// pipeline, and Publish returns once the response is queued.
	sub, err := h.backend.NewSubscriber(router.SubscribeOptions{Subscription: spec.name})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	p := &memoryRaw{sub: sub, cancel: cancel}
	pub, out := h.backend.Publisher(), spec.out.String()
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
					h.logger.Error("raw memory processor: bad request", err, nil)
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

// memoryRaw is the raw-sync variant on the memory backend, and its limit.
type memoryRaw struct {
	sub    message.Subscriber
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Stop ends the workers and their subscriptions.
func (p *memoryRaw) Stop() error {
	p.cancel()
	err := p.sub.Close()
	p.wg.Wait()
	return err
}

// PID is 0: the raw loop runs in this process.
func (p *memoryRaw) PID() int { return 0 }
