package pulsarpubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/switchyard-go/switchyard/schema"
)

// ErrSubscriberClosed is returned by Subscribe and SubscribeInitialize after
// Close.
var ErrSubscriberClosed = errors.New("pulsarpubsub: subscriber is closed")

// Subscriber consumes Pulsar topics as one subscription (consumer group). It
// is safe for concurrent use.
//
// Every Subscribe call returns its own channel, which holds back the next
// message until the previous one was acked or nacked (or, with
// SubscriberConfig.AckWindow, until fewer than AckWindow messages are
// waiting for their ack or nack). With a shared or
// key_shared subscription every Subscribe call has a consumer of its own, so
// several calls for one topic compete for its messages like separate
// processes. With an exclusive or failover subscription, which lets one
// consumer receive, the calls for one topic share one consumer and compete
// for its messages.
type Subscriber struct {
	cfg       SubscriberConfig
	client    pulsar.Client
	ownClient bool
	conn      *connInfo
	logger    watermill.LoggerAdapter

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup

	// sharedMu guards shared, the consumers shared by the Subscribe calls of
	// one topic (exclusive and failover subscriptions only). It is held while
	// such a consumer is created.
	sharedMu sync.Mutex
	shared   map[string]*consumerHandle

	// ready maps the channel of each Subscribe call with an ack window to
	// its *readiness, for Ready.
	ready sync.Map

	// active holds every consumer in use, for Health; guarded by mu.
	active map[*consumerHandle]struct{}

	// pending counts the nacked messages of non-persistent topics waiting
	// for their nack delay (see nackNonPersistent).
	pending sync.WaitGroup

	// republishers are the producers that publish nacked messages of
	// non-persistent topics again, one per topic; guarded by repMu.
	repMu         sync.Mutex
	republishers  map[string]*producerEntry
	republishDone bool

	closeOnce sync.Once
}

// consumerHandle is one consumer and what the Subscribe calls using it share.
type consumerHandle struct {
	consumer   pulsar.Consumer
	name       string // the consumer's name, for Health
	topic      string
	persistent bool
	// inProcess is set for exclusive and failover subscriptions of
	// non-persistent topics: a nacked message is handed out again by this
	// process rather than published again (see nackNonPersistent).
	inProcess bool
	// redeliveries carries nacked messages back to the Subscribe calls of
	// the consumer (inProcess only).
	redeliveries chan redelivery
	// done is closed when the consumer is given back for the last time.
	done chan struct{}
	refs int // Subscribe calls sharing it (exclusive and failover)
}

// redelivery is a message to hand out again, with its delivery attempt.
type redelivery struct {
	pm      pulsar.Message
	attempt int
}

// NewSubscriber returns a Subscriber configured by config. It does not connect
// yet: consumers are created by Subscribe and SubscribeInitialize.
func NewSubscriber(config SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	s := &Subscriber{
		cfg:          config,
		client:       config.Client,
		logger:       logger.With(watermill.LogFields{"subscription": config.SubscriptionName}),
		closing:      make(chan struct{}),
		shared:       map[string]*consumerHandle{},
		active:       map[*consumerHandle]struct{}{},
		republishers: map[string]*producerEntry{},
	}
	if s.client == nil {
		client, conn, err := newClient(config.ClientConfig, logger)
		if err != nil {
			return nil, err
		}
		s.client, s.conn, s.ownClient = client, conn, true
	} else {
		s.conn = infoOf(s.client)
	}
	return s, nil
}

// Subscribe starts consuming topic, a queue name in any form TopicName
// accepts, and returns the channel of its messages. The consumer is created
// before Subscribe returns, so an unreachable broker or refused credentials
// are an error here, after about the operation timeout. The channel is
// closed when ctx ends or the subscriber is closed; a message that was not
// acked by then is nacked, so it is delivered again. Acked messages are
// acknowledged to the broker, nacked ones are delivered again after
// NackRedeliveryDelay. Closing never unsubscribes: the subscription keeps
// its messages.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	name, err := TopicName(topic)
	if err != nil {
		return nil, fmt.Errorf("pulsarpubsub: subscribing: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSubscriberClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()

	h, release, err := s.acquire(name)
	if err != nil {
		s.wg.Done()
		return nil, err
	}
	out := make(chan *message.Message, s.handOutBuffer())
	logger := s.logger.With(watermill.LogFields{"topic": name})
	var slots chan struct{}
	if s.cfg.AckWindow > 1 {
		slots = make(chan struct{}, s.cfg.AckWindow)
		s.ready.Store((<-chan *message.Message)(out), &readiness{h: h, slots: slots})
	}
	go func() {
		defer s.wg.Done()
		defer release()
		defer closeHandedOut(out)
		if slots == nil {
			s.consume(ctx, h, out, logger)
			return
		}
		defer s.ready.Delete((<-chan *message.Message)(out))
		s.consumeWindow(ctx, h, out, slots, logger)
	}()
	return out, nil
}

// readiness is what Ready looks at for one Subscribe call with an ack
// window.
type readiness struct {
	h     *consumerHandle
	slots chan struct{} // the window's slots, taken before each message
}

// Ready reports whether the Subscribe call whose channel is messages can
// hand out another message at once: a slot of its ack window is free and
// the consumer has a message ready (see router.ReadyReporter). It is false
// for a channel it does not know, and without an ack window.
func (s *Subscriber) Ready(messages <-chan *message.Message) bool {
	v, ok := s.ready.Load(messages)
	if !ok {
		return false
	}
	r := v.(*readiness)
	if len(r.slots) == cap(r.slots) {
		return false
	}
	return len(r.h.consumer.Chan()) > 0 || len(r.h.redeliveries) > 0
}

// maxHandOutBuffer bounds the buffer of a Subscribe channel with an ack
// window (see SubscriberConfig.AckWindow).
const maxHandOutBuffer = 8

// handOutBuffer is the capacity of a Subscribe channel: none with window 1,
// so the next message is handed out only when taken, else up to
// maxHandOutBuffer within the window.
func (s *Subscriber) handOutBuffer() int {
	if s.cfg.AckWindow <= 1 {
		return 0
	}
	return min(s.cfg.AckWindow, maxHandOutBuffer)
}

// closeHandedOut drops what is left in the buffer of out, messages that
// were nacked when the subscription ended and nobody took, and closes it.
func closeHandedOut(out chan *message.Message) {
	for {
		select {
		case <-out:
		default:
			close(out)
			return
		}
	}
}

// SubscribeInitialize creates the subscription on topic, so that messages
// published before the first Subscribe are kept for it: it subscribes and
// closes the consumer without unsubscribing. It does nothing for a
// non-durable subscription, or when this subscriber already consumes topic
// with an exclusive or failover subscription.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	name, err := TopicName(topic)
	if err != nil {
		return fmt.Errorf("pulsarpubsub: initializing subscription: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSubscriberClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	if s.cfg.NonDurable {
		return nil
	}
	if s.cfg.SubscriptionType.oneConsumer() {
		s.sharedMu.Lock()
		defer s.sharedMu.Unlock()
		if _, ok := s.shared[name]; ok {
			return nil
		}
	}
	consumer, err := s.subscribe(name)
	if err != nil {
		return err
	}
	consumer.Close()
	return nil
}

// acquire returns a consumer of topic for one Subscribe call and the function
// that gives it back.
func (s *Subscriber) acquire(topic string) (*consumerHandle, func(), error) {
	if !s.cfg.SubscriptionType.oneConsumer() {
		h, err := s.newHandle(topic)
		if err != nil {
			return nil, nil, err
		}
		return h, func() { s.closeHandle(h) }, nil
	}
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	h, ok := s.shared[topic]
	if !ok {
		var err error
		h, err = s.newHandle(topic)
		if err != nil {
			return nil, nil, err
		}
		s.shared[topic] = h
	}
	h.refs++
	release := func() {
		s.sharedMu.Lock()
		h.refs--
		last := h.refs == 0
		if last {
			delete(s.shared, topic)
		}
		s.sharedMu.Unlock()
		if last {
			s.closeHandle(h)
		}
	}
	return h, release, nil
}

// newHandle creates a consumer of topic and registers it for Health.
func (s *Subscriber) newHandle(topic string) (*consumerHandle, error) {
	consumer, err := s.subscribe(topic)
	if err != nil {
		return nil, err
	}
	h := &consumerHandle{
		consumer:   consumer,
		name:       consumer.Name(),
		topic:      topic,
		persistent: !strings.HasPrefix(topic, "non-persistent://"),
		done:       make(chan struct{}),
	}
	if !h.persistent && s.cfg.SubscriptionType.oneConsumer() {
		h.inProcess = true
		h.redeliveries = make(chan redelivery)
	}
	s.mu.Lock()
	s.active[h] = struct{}{}
	s.mu.Unlock()
	return h, nil
}

// closeHandle closes the consumer of h (without unsubscribing) and drops
// the messages h still had to hand out again.
func (s *Subscriber) closeHandle(h *consumerHandle) {
	s.mu.Lock()
	delete(s.active, h)
	s.mu.Unlock()
	close(h.done)
	h.consumer.Close()
}

// subscribe creates a consumer of topic.
func (s *Subscriber) subscribe(topic string) (pulsar.Consumer, error) {
	opts, err := s.consumerOptions(topic)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	hook, interval, limit := s.conn.slowHook(s.cfg.ClientConfig)
	stopWatch := slowWatch(hook, interval, limit)
	consumer, err := s.client.Subscribe(opts)
	stopWatch()
	if err != nil {
		return nil, fmt.Errorf("pulsarpubsub: subscribing to %s as %q (%s): %w",
			topic, s.cfg.SubscriptionName, s.cfg.SubscriptionType, s.conn.describe(err, started))
	}
	return consumer, nil
}

func (s *Subscriber) consumerOptions(topic string) (pulsar.ConsumerOptions, error) {
	c := s.cfg
	typ, err := c.SubscriptionType.pulsar()
	if err != nil {
		return pulsar.ConsumerOptions{}, err
	}
	opts := pulsar.ConsumerOptions{
		Topic:               topic,
		SubscriptionName:    c.SubscriptionName,
		Type:                typ,
		NackRedeliveryDelay: c.NackRedeliveryDelay,
		// The client rounds a nack's due time down to 2^8 ms by default,
		// so a message could come back up to 255 ms before the delay;
		// precision 0 makes the delay a lower bound.
		NackPrecisionBit:  new(int64),
		ReceiverQueueSize: c.ReceiverQueueSize,
		Name:              c.ConsumerName,
		AckWithResponse:   c.AckWithResponse,

		EnableBatchIndexAcknowledgment: c.EnableBatchIndexAcknowledgment,
		BackOffPolicyFunc:              newBackoffFunc(c.ReconnectMaxBackoff),
	}
	if strings.HasPrefix(topic, "non-persistent://") {
		// Pulsar gives every message of a non-persistent topic the same
		// id. The client drops a received message whose id has an ack
		// still waiting in its ack group as a duplicate, so grouped acks
		// would silently lose most messages; ack each one at once.
		opts.AckGroupingOptions = &pulsar.AckGroupingOptions{MaxSize: 1}
	}
	if c.InitialPosition == Earliest {
		opts.SubscriptionInitialPosition = pulsar.SubscriptionPositionEarliest
	} else {
		opts.SubscriptionInitialPosition = pulsar.SubscriptionPositionLatest
	}
	if c.NonDurable {
		opts.SubscriptionMode = pulsar.NonDurable
	}
	if d := c.DeadLetter; d != nil {
		policy := &pulsar.DLQPolicy{
			MaxDeliveries:           d.MaxDeliveries,
			InitialSubscriptionName: d.InitialSubscription,
			ProducerOptions: pulsar.ProducerOptions{
				BackOffPolicyFunc: newBackoffFunc(c.ReconnectMaxBackoff),
			},
		}
		if d.Topic != "" {
			name, err := TopicName(d.Topic)
			if err != nil {
				return pulsar.ConsumerOptions{}, fmt.Errorf("pulsarpubsub: dead-letter topic: %w", err)
			}
			policy.DeadLetterTopic = name
		} else {
			policy.DeadLetterTopic = topic + "-" + c.SubscriptionName + "-DLQ"
		}
		opts.DLQ = policy
	}
	return opts, nil
}

// consume passes the consumer's messages, and those nacked to be handed out
// again in process, to out, until ctx ends or the subscriber closes: one at a
// time, each after the previous one was acked or nacked. With AckWindow > 1
// consumeWindow does this instead.
func (s *Subscriber) consume(ctx context.Context, h *consumerHandle, out chan<- *message.Message, logger watermill.LoggerAdapter) {
	in := h.consumer.Chan()
	for {
		r, ok := s.next(ctx, h, in)
		if !ok {
			return
		}
		if !s.deliver(ctx, h, r, out, logger) {
			return
		}
	}
}

// consumeWindow is consume for AckWindow > 1, up to AckWindow messages
// not yet acked or nacked. A slot of the window (one of slots, a channel
// of capacity AckWindow) is taken before the next message is received from
// the consumer; the message handed out joins the window's queue, whose
// settler (see settleWindow) passes its ack or nack on to the broker, ends
// its context and gives the slot back. When ctx ends or the subscriber closes, the
// settler nacks what is not acked, and consumeWindow returns after it, so
// the consumer is not closed before.
func (s *Subscriber) consumeWindow(ctx context.Context, h *consumerHandle, out chan<- *message.Message, slots chan struct{}, logger watermill.LoggerAdapter) {
	q := newWindowQueue(s.cfg.AckWindow)
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		s.settleWindow(ctx, h, q, slots, logger)
	}()
	defer func() {
		q.close()
		<-settled
	}()
	in := h.consumer.Chan()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		}
		r, ok := s.next(ctx, h, in)
		if !ok {
			return
		}
		msg, mctx := s.message(ctx, h, r)
		if !s.handOut(ctx, h, r, msg, out, logger) {
			mctx.end()
			return
		}
		q.push(handedOut{r: r, msg: msg, ctx: mctx})
	}
}

// next returns the next message to hand out: one from the consumer, or one
// nacked to be handed out again in process. It reports false when ctx ended,
// the subscriber closed or the consumer's channel was closed.
func (s *Subscriber) next(ctx context.Context, h *consumerHandle, in <-chan pulsar.ConsumerMessage) (redelivery, bool) {
	select {
	case cm, ok := <-in:
		if !ok {
			return redelivery{}, false
		}
		return redelivery{pm: cm.Message, attempt: deliveryAttempt(cm.Message, h.persistent)}, true
	case r := <-h.redeliveries:
		return r, true
	case <-ctx.Done():
		return redelivery{}, false
	case <-s.closing:
		return redelivery{}, false
	}
}

// message returns the watermill message of r, consumed by h, with a
// context that ends with ctx or when its end is called, once the message
// was settled.
func (s *Subscriber) message(ctx context.Context, h *consumerHandle, r redelivery) (*message.Message, *messageContext) {
	msg := watermillMessage(r.pm, s.cfg.MessageKeyMetadata, r.attempt, h.persistent)
	mctx := newMessageContext(ctx)
	msg.SetContext(mctx)
	return msg, mctx
}

// deliver sends one message to out and waits for its ack or nack, and passes
// that on to the broker. It reports false when ctx ended or the subscriber
// closed first; the message is nacked then, with no delay on a
// non-persistent topic.
func (s *Subscriber) deliver(ctx context.Context, h *consumerHandle, r redelivery, out chan<- *message.Message, logger watermill.LoggerAdapter) bool {
	msg, mctx := s.message(ctx, h, r)
	defer mctx.end()
	if !s.handOut(ctx, h, r, msg, out, logger) {
		return false
	}
	return s.settle(ctx, h, r, msg, logger)
}

// handOut sends msg, the message of r, to out. It reports false when ctx
// ended or the subscriber closed first; r is nacked then, with no delay on a
// non-persistent topic.
func (s *Subscriber) handOut(ctx context.Context, h *consumerHandle, r redelivery, msg *message.Message, out chan<- *message.Message, logger watermill.LoggerAdapter) bool {
	select {
	case out <- msg:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	s.nack(h, r, 0, logger)
	return false
}

// settle waits for the ack or nack of msg, the message of r handed out, and
// passes it on to the broker. It reports false when ctx ended or the
// subscriber closed first; r is nacked then, with no delay on a
// non-persistent topic, unless msg was acked by then.
func (s *Subscriber) settle(ctx context.Context, h *consumerHandle, r redelivery, msg *message.Message, logger watermill.LoggerAdapter) bool {
	select {
	case <-msg.Acked():
		s.ack(h, r, msg, logger)
		return true
	case <-msg.Nacked():
		s.nack(h, r, s.cfg.NackRedeliveryDelay, logger)
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	s.settleAtEnd(h, r, msg, logger)
	return false
}

// settleAtEnd settles msg, the message of r, when its subscription ends:
// an ack given by then is kept, even when the end won the race; otherwise
// r is nacked, with no delay on a non-persistent topic.
func (s *Subscriber) settleAtEnd(h *consumerHandle, r redelivery, msg *message.Message, logger watermill.LoggerAdapter) {
	select {
	case <-msg.Acked():
		s.ack(h, r, msg, logger)
	default:
		s.nack(h, r, 0, logger)
	}
}

// ack acknowledges r, whose message msg was acked, to the broker.
func (s *Subscriber) ack(h *consumerHandle, r redelivery, msg *message.Message, logger watermill.LoggerAdapter) {
	if err := h.consumer.Ack(r.pm); err != nil {
		logger.Error("Acking message failed; it will be delivered again", err,
			watermill.LogFields{"message_uuid": msg.UUID, "message_id": r.pm.ID().String()})
	}
}

// nack makes the message come again after delay. On a persistent topic the
// broker redelivers it after NackRedeliveryDelay (delay is not used). On a
// non-persistent topic, where the broker redelivers nothing, see
// nackNonPersistent.
func (s *Subscriber) nack(h *consumerHandle, r redelivery, delay time.Duration, logger watermill.LoggerAdapter) {
	if h.persistent {
		h.consumer.Nack(r.pm)
		return
	}
	s.nackNonPersistent(h, r, delay, logger)
}

// nackNonPersistent handles a nack on a non-persistent topic. The broker
// forgot the message when it dispatched it, so the original is acked at once
// (which only tidies the client's bookkeeping) and, after delay:
//   - on a shared or key_shared subscription, a copy (same payload,
//     properties and key, attempt plus one) is published to the topic, where
//     the subscription's consumers compete for it behind the messages that
//     arrived meanwhile;
//   - on an exclusive or failover subscription, the message is handed out
//     again by this process, to a Subscribe call sharing the consumer, with
//     its attempt plus one; publishing a copy would reach every other
//     subscription of the topic as well (every client of a response topic).
//
// When the subscriber closes during the delay, a copy is published at once
// and a message to hand out in process is dropped, as it is when the last
// Subscribe call of its consumer ends.
func (s *Subscriber) nackNonPersistent(h *consumerHandle, r redelivery, delay time.Duration, logger watermill.LoggerAdapter) {
	if err := h.consumer.Ack(r.pm); err != nil {
		logger.Debug("Acking a nacked message of a non-persistent topic failed", watermill.LogFields{"error": err.Error()})
	}
	next := redelivery{pm: r.pm, attempt: r.attempt + 1}
	s.pending.Add(1)
	if h.inProcess {
		go func() {
			defer s.pending.Done()
			timer := time.NewTimer(delay)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-h.done:
				return
			}
			select {
			case h.redeliveries <- next:
			case <-h.done:
			}
		}()
		return
	}
	go func() {
		defer s.pending.Done()
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-s.closing:
		}
		if err := s.republish(h.topic, next); err != nil {
			logger.Error("Publishing a nacked message of a non-persistent topic again failed; it is lost", err,
				watermill.LogFields{"message_uuid": next.pm.Properties()[UUIDProperty]})
		}
	}()
}

// republish publishes a copy of r.pm with attempt r.attempt to topic and
// waits for the broker's acknowledgement.
func (s *Subscriber) republish(topic string, r redelivery) error {
	producer, err := s.republisher(topic)
	if err != nil {
		return err
	}
	props := make(map[string]string, len(r.pm.Properties())+1)
	for k, v := range r.pm.Properties() {
		props[k] = v
	}
	props[schema.DeliveryAttemptKey] = strconv.Itoa(r.attempt)
	payload := r.pm.Payload()
	if payload == nil {
		payload = []byte{}
	}
	_, err = producer.Send(context.Background(), &pulsar.ProducerMessage{
		Payload: payload, Properties: props, Key: r.pm.Key(),
	})
	if err != nil {
		return fmt.Errorf("pulsarpubsub: publishing a nacked message to %s again: %w", topic, err)
	}
	return nil
}

// republisher returns the producer that publishes nacked messages of topic
// again, creating it on first use.
func (s *Subscriber) republisher(topic string) (pulsar.Producer, error) {
	s.repMu.Lock()
	if s.republishDone {
		s.repMu.Unlock()
		return nil, ErrSubscriberClosed
	}
	e, ok := s.republishers[topic]
	if ok {
		s.repMu.Unlock()
		<-e.ready
		return e.producer, e.err
	}
	e = &producerEntry{ready: make(chan struct{})}
	s.republishers[topic] = e
	s.repMu.Unlock()

	started := time.Now()
	e.producer, e.err = s.client.CreateProducer(pulsar.ProducerOptions{
		Topic:             topic,
		DisableBatching:   true,
		BackOffPolicyFunc: newBackoffFunc(s.cfg.ReconnectMaxBackoff),
	})
	if e.err != nil {
		e.err = fmt.Errorf("pulsarpubsub: creating producer for %s: %w", topic, s.conn.describe(e.err, started))
		s.repMu.Lock()
		delete(s.republishers, topic)
		s.repMu.Unlock()
	}
	close(e.ready)
	return e.producer, e.err
}

// Health returns nil while every consumer of the subscriber is connected to
// the broker, and otherwise an error that names the topic of a consumer
// without a connection, since when, and why. A subscriber with no
// subscription open is healthy. The client library reconnects consumers on
// its own; Health only reports. On a client not made by this package
// (SubscriberConfig.Client not from NewClient) it cannot tell and returns
// nil. After Close it returns ErrSubscriberClosed.
func (s *Subscriber) Health() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSubscriberClosed
	}
	names := make(map[string]bool, len(s.active))
	for h := range s.active {
		names[h.name] = true
	}
	s.mu.Unlock()
	return s.conn.health(consumerLink, names, fmt.Sprintf("consumer (subscription %q)", s.cfg.SubscriptionName))
}

// Close ends every subscription: it closes their channels (messages not acked
// are delivered again) and their consumers, without unsubscribing, and closes
// the client if the subscriber made it. Nacked messages of non-persistent
// topics waiting to be published again are published first. Closing twice is
// harmless.
func (s *Subscriber) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.closing)
		s.mu.Unlock()
		s.wg.Wait()
		s.pending.Wait()
		s.repMu.Lock()
		s.republishDone = true
		entries := s.republishers
		s.republishers = map[string]*producerEntry{}
		s.repMu.Unlock()
		for _, e := range entries {
			<-e.ready
			if e.producer != nil {
				e.producer.Close()
			}
		}
		if s.ownClient {
			s.client.Close()
		}
	})
	return nil
}
