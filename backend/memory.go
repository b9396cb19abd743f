package backend

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// memoryRedeliveryDelay is how long a nacked message waits before the memory
// backend hands it out again.
const memoryRedeliveryDelay = 100 * time.Millisecond

// memoryBackend carries messages inside one process. Each subscription
// (consumer group) has one queue per topic, made when it first subscribes;
// Publish appends a copy of each message to every queue of its topic, in
// order, and the group's members take messages from the front, so members
// work in parallel, every member sees the messages in the order they were
// published, and a nacked message goes to the back of its group's queue
// after the redelivery delay. Nothing survives the process.
type memoryBackend struct {
	logger watermill.LoggerAdapter

	mu     sync.Mutex
	groups map[groupKey]*memoryGroup
	topics map[string][]*memoryGroup
	closed bool
	wg     sync.WaitGroup
	cancel context.CancelFunc
	ctx    context.Context
}

type groupKey struct{ subscription, topic string }

// NewMemory returns a backend that carries messages inside this process, for
// tests and demos. Every subscription keeps the messages published after it
// was made until they are acked, and hands them out in the order they were
// published; nothing survives the process.
func NewMemory(logger watermill.LoggerAdapter) router.Backend {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &memoryBackend{
		logger: logger,
		groups: map[groupKey]*memoryGroup{},
		topics: map[string][]*memoryGroup{},
		ctx:    ctx,
		cancel: cancel,
	}
}

func (b *memoryBackend) Name() string { return Memory }

func (b *memoryBackend) Publisher() message.Publisher { return memoryPublisher{b} }

func (b *memoryBackend) NewSubscriber(opts router.SubscribeOptions) (message.Subscriber, error) {
	sub := opts.Subscription
	if opts.Exclusive || sub == "" {
		sub = "exclusive-" + watermill.NewShortUUID()
		return &memorySubscriber{backend: b, subscription: sub, own: true, window: max(opts.AckWindow, 1)}, nil
	}
	return &memorySubscriber{backend: b, subscription: sub, window: max(opts.AckWindow, 1)}, nil
}

// forget removes the queues of subscription, which nobody will come back
// to, so they stop collecting messages.
func (b *memoryBackend) forget(subscription string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, g := range b.groups {
		if key.subscription != subscription {
			continue
		}
		delete(b.groups, key)
		groups := b.topics[key.topic]
		for i, other := range groups {
			if other == g {
				b.topics[key.topic] = append(groups[:i:i], groups[i+1:]...)
				break
			}
		}
		if len(b.topics[key.topic]) == 0 {
			delete(b.topics, key.topic)
		}
	}
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
	b.wg.Wait()
	return nil
}

// group returns the queue of (subscription, topic), creating it on first use.
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
	g := &memoryGroup{}
	b.groups[key] = g
	b.topics[topic] = append(b.topics[topic], g)
	return g, nil
}

// memoryPublisher appends messages to the queues of their topic.
type memoryPublisher struct{ backend *memoryBackend }

// Publish appends a copy of each message to every subscription's queue of
// topic, in order. A topic nobody subscribed to drops them, as a broker
// drops messages no subscription keeps.
func (p memoryPublisher) Publish(topic string, msgs ...*message.Message) error {
	b := p.backend
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("memory backend is closed")
	}
	for _, g := range b.topics[topic] {
		for _, m := range msgs {
			g.push(m.Copy())
		}
	}
	return nil
}

// PublishAsync publishes like Publish, which never waits: done is called
// before it returns.
func (p memoryPublisher) PublishAsync(topic string, msg *message.Message, done func(error)) {
	done(p.Publish(topic, msg))
}

// Close does nothing: the backend's Close ends everything.
func (memoryPublisher) Close() error { return nil }

// memoryGroup is the queue of one subscription on one topic, shared by its
// members.
type memoryGroup struct {
	mu    sync.Mutex
	queue []*message.Message
	// wake, when not nil, is closed at the next push: members waiting for
	// a message wait for it.
	wake chan struct{}
}

// push appends msg to the queue and wakes the waiting members.
func (g *memoryGroup) push(msg *message.Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.queue = append(g.queue, msg)
	if g.wake != nil {
		close(g.wake)
		g.wake = nil
	}
}

// next takes the message at the front of the queue; when the queue is
// empty it returns nil and a channel closed at the next push.
func (g *memoryGroup) next() (*message.Message, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) > 0 {
		msg := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		return msg, nil
	}
	if g.wake == nil {
		g.wake = make(chan struct{})
	}
	return nil, g.wake
}

// redeliver puts msg at the back of the queue after the redelivery delay.
func (g *memoryGroup) redeliver(ctx context.Context, msg *message.Message) {
	t := time.NewTimer(memoryRedeliveryDelay)
	defer t.Stop()
	select {
	case <-t.C:
		g.push(msg)
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
	own          bool // an exclusive subscription of this subscriber alone
	window       int  // messages one Subscribe call hands out before an ack

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
	// slots bounds the messages handed out and not yet acked.
	slots := make(chan struct{}, s.window)
	s.backend.wg.Add(1)
	go func() {
		defer s.backend.wg.Done()
		defer close(out)
		for {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			case <-closing:
				return
			case <-bctx.Done():
				return
			}
			msg, wake := g.next()
			if msg == nil {
				<-slots
				select {
				case <-wake:
					continue
				case <-ctx.Done():
					return
				case <-closing:
					return
				case <-bctx.Done():
					return
				}
			}
			m, sent := s.handOut(ctx, closing, out, msg)
			if !sent {
				<-slots
				s.requeue(g, msg)
				continue
			}
			if s.window == 1 {
				s.settle(g, msg, m)
				<-slots
				continue
			}
			s.backend.wg.Add(1)
			go func() {
				defer s.backend.wg.Done()
				s.settle(g, msg, m)
				<-slots
			}()
		}
	}()
	return out, nil
}

// requeue hands msg back to the group for another member, as its next
// delivery attempt, after the redelivery delay.
func (s *memorySubscriber) requeue(g *memoryGroup, msg *message.Message) {
	msg.Metadata.Set(schema.DeliveryAttemptKey, strconv.Itoa(attemptOf(msg)+1))
	s.backend.wg.Add(1)
	go func() {
		defer s.backend.wg.Done()
		g.redeliver(s.backend.ctx, msg)
	}()
}

// handOut sends a delivery of msg to out. It reports false when the
// subscription ended first.
func (s *memorySubscriber) handOut(ctx context.Context, closing chan struct{}, out chan<- *message.Message, msg *message.Message) (*message.Message, bool) {
	m := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		m.Metadata.Set(k, v)
	}
	if m.Metadata.Get(schema.DeliveryAttemptKey) == "" {
		m.Metadata.Set(schema.DeliveryAttemptKey, "1")
	}
	m.SetContext(ctx)
	select {
	case out <- m:
		return m, true
	case <-ctx.Done():
	case <-closing:
	}
	return nil, false
}

// settle waits for the ack of m, the delivery of msg; a nack, or the
// backend closing, hands msg back to the group.
func (s *memorySubscriber) settle(g *memoryGroup, msg, m *message.Message) {
	select {
	case <-m.Acked():
		return
	case <-m.Nacked():
	case <-s.backend.ctx.Done():
	}
	s.requeue(g, msg)
}

// Close ends the subscriber's subscriptions. The queues of an exclusive
// subscriber, which is nobody else's, are removed with it.
func (s *memorySubscriber) Close() error {
	closing := s.closing()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(closing)
		if s.own {
			s.backend.forget(s.subscription)
		}
	}
	return nil
}
