package backend

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// memoryRedeliveryDelay is how long a nacked message waits before the memory
// backend hands it out again.
const memoryRedeliveryDelay = 100 * time.Millisecond

// memoryBackend carries messages inside one process on watermill's gochannel.
// gochannel gives every subscriber every message and hands out the next one
// only after the previous is acked; on top of it each subscription (consumer
// group) has one gochannel subscription per topic whose messages are shared
// among the group's members, so members work in parallel and a nacked
// message goes back to the group. Nothing survives the process.
type memoryBackend struct {
	pubsub *gochannel.GoChannel
	logger watermill.LoggerAdapter

	mu     sync.Mutex
	groups map[groupKey]*memoryGroup
	closed bool
	wg     sync.WaitGroup
	cancel context.CancelFunc
	ctx    context.Context
}

type groupKey struct{ subscription, topic string }

// NewMemory returns a backend that carries messages inside this process, for
// tests and demos. Every subscription keeps the messages published after it
// was made until they are acked; nothing survives the process.
func NewMemory(logger watermill.LoggerAdapter) router.Backend {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &memoryBackend{
		pubsub: gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 64}, logger),
		logger: logger,
		groups: map[groupKey]*memoryGroup{},
		ctx:    ctx,
		cancel: cancel,
	}
}

func (b *memoryBackend) Name() string { return Memory }

func (b *memoryBackend) Publisher() message.Publisher { return b.pubsub }

func (b *memoryBackend) NewSubscriber(opts router.SubscribeOptions) (message.Subscriber, error) {
	sub := opts.Subscription
	if opts.Exclusive || sub == "" {
		sub = "exclusive-" + watermill.NewShortUUID()
	}
	return &memorySubscriber{backend: b, subscription: sub}, nil
}

func (b *memoryBackend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	err := b.pubsub.Close()
	b.wg.Wait()
	return err
}

// group returns the shared queue of (subscription, topic), creating it and
// its gochannel subscription on first use.
func (b *memoryBackend) group(subscription, topic string) (*memoryGroup, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("memory backend is closed")
	}
	key := groupKey{subscription, topic}
	if g, ok := b.groups[key]; ok {
		return g, nil
	}
	upstream, err := b.pubsub.Subscribe(b.ctx, topic)
	if err != nil {
		return nil, err
	}
	g := &memoryGroup{ready: make(chan *message.Message)}
	b.groups[key] = g
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		g.pump(b.ctx, upstream)
	}()
	return g, nil
}

// memoryGroup hands each message of one gochannel subscription to one member.
type memoryGroup struct {
	ready chan *message.Message
}

// pump takes each upstream message, acks it upstream (the group owns it from
// then on) and offers it to the members until one takes it. Each delivery
// is a fresh message built from it, so it is not copied here.
func (g *memoryGroup) pump(ctx context.Context, upstream <-chan *message.Message) {
	for msg := range upstream {
		msg.Ack()
		select {
		case g.ready <- msg:
		case <-ctx.Done():
			return
		}
	}
}

// redeliver offers msg to the members again after the redelivery delay.
func (g *memoryGroup) redeliver(ctx context.Context, msg *message.Message) {
	t := time.NewTimer(memoryRedeliveryDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return
	}
	select {
	case g.ready <- msg:
	case <-ctx.Done():
	}
}

// attemptOf returns the delivery attempt recorded on msg, 1 if none.
func attemptOf(msg *message.Message) int {
	if n, err := strconv.Atoi(msg.Metadata.Get(schema.DeliveryAttemptKey)); err == nil && n > 0 {
		return n
	}
	return 1
}

type memorySubscriber struct {
	backend      *memoryBackend
	subscription string

	mu     sync.Mutex
	closed bool
	closeC chan struct{}
}

func (s *memorySubscriber) closing() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeC == nil {
		s.closeC = make(chan struct{})
	}
	return s.closeC
}

// SubscribeInitialize creates the group so that messages published before
// the first Subscribe are kept for it.
func (s *memorySubscriber) SubscribeInitialize(topic string) error {
	_, err := s.backend.group(s.subscription, topic)
	return err
}

func (s *memorySubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	g, err := s.backend.group(s.subscription, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	closing := s.closing()
	bctx := s.backend.ctx
	s.backend.wg.Add(1)
	go func() {
		defer s.backend.wg.Done()
		defer close(out)
		for {
			var msg *message.Message
			select {
			case msg = <-g.ready:
			case <-ctx.Done():
				return
			case <-closing:
				return
			case <-bctx.Done():
				return
			}
			if !s.deliver(ctx, closing, out, msg) {
				// Not acked: hand it back to the group for another member,
				// as its next delivery attempt.
				msg.Metadata.Set(schema.DeliveryAttemptKey, strconv.Itoa(attemptOf(msg)+1))
				s.backend.wg.Add(1)
				go func() {
					defer s.backend.wg.Done()
					g.redeliver(bctx, msg)
				}()
			}
		}
	}()
	return out, nil
}

// deliver sends msg to out and waits for its ack. It returns false when the
// message was nacked or the subscription ended first.
func (s *memorySubscriber) deliver(ctx context.Context, closing chan struct{}, out chan<- *message.Message, msg *message.Message) bool {
	m := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		m.Metadata.Set(k, v)
	}
	if m.Metadata.Get(schema.DeliveryAttemptKey) == "" {
		m.Metadata.Set(schema.DeliveryAttemptKey, "1")
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.SetContext(mctx)
	select {
	case out <- m:
	case <-ctx.Done():
		return false
	case <-closing:
		return false
	}
	select {
	case <-m.Acked():
		return true
	case <-m.Nacked():
		return false
	case <-s.backend.ctx.Done():
		return false
	}
}

func (s *memorySubscriber) Close() error {
	closing := s.closing()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(closing)
	}
	return nil
}
