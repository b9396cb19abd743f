package pulsarpubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"
)

// ErrSubscriberClosed is returned by Subscribe and SubscribeInitialize after
// Close.
var ErrSubscriberClosed = errors.New("pulsarpubsub: subscriber is closed")

// Subscriber consumes Pulsar topics as one subscription (consumer group). It
// is safe for concurrent use.
//
// Every Subscribe call returns its own channel, which holds back the next
// message until the previous one was acked or nacked. With a shared or
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
	shared   map[string]*sharedConsumer

	closeOnce sync.Once
}

type sharedConsumer struct {
	consumer pulsar.Consumer
	refs     int
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
		cfg:     config,
		client:  config.Client,
		logger:  logger.With(watermill.LogFields{"subscription": config.SubscriptionName}),
		closing: make(chan struct{}),
		shared:  map[string]*sharedConsumer{},
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

	consumer, release, err := s.acquire(name)
	if err != nil {
		s.wg.Done()
		return nil, err
	}
	out := make(chan *message.Message)
	logger := s.logger.With(watermill.LogFields{"topic": name})
	go func() {
		defer s.wg.Done()
		defer release()
		defer close(out)
		s.consume(ctx, consumer, out, logger)
	}()
	return out, nil
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
func (s *Subscriber) acquire(topic string) (pulsar.Consumer, func(), error) {
	if !s.cfg.SubscriptionType.oneConsumer() {
		consumer, err := s.subscribe(topic)
		if err != nil {
			return nil, nil, err
		}
		return consumer, consumer.Close, nil
	}
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	sc, ok := s.shared[topic]
	if !ok {
		consumer, err := s.subscribe(topic)
		if err != nil {
			return nil, nil, err
		}
		sc = &sharedConsumer{consumer: consumer}
		s.shared[topic] = sc
	}
	sc.refs++
	release := func() {
		s.sharedMu.Lock()
		sc.refs--
		last := sc.refs == 0
		if last {
			delete(s.shared, topic)
		}
		s.sharedMu.Unlock()
		if last {
			sc.consumer.Close()
		}
	}
	return sc.consumer, release, nil
}

// subscribe creates a consumer of topic.
func (s *Subscriber) subscribe(topic string) (pulsar.Consumer, error) {
	opts, err := s.consumerOptions(topic)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	consumer, err := s.client.Subscribe(opts)
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
		ReceiverQueueSize:   c.ReceiverQueueSize,
		Name:                c.ConsumerName,
		AckWithResponse:     c.AckWithResponse,

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

// consume passes the consumer's messages to out, one at a time, until ctx
// ends or the subscriber closes.
func (s *Subscriber) consume(ctx context.Context, consumer pulsar.Consumer, out chan<- *message.Message, logger watermill.LoggerAdapter) {
	in := consumer.Chan()
	for {
		var cm pulsar.ConsumerMessage
		var ok bool
		select {
		case cm, ok = <-in:
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		}
		if !s.deliver(ctx, consumer, cm.Message, out, logger) {
			return
		}
	}
}

// deliver sends one message to out and waits for its ack or nack, and passes
// that on to the broker. It reports false when ctx ended or the subscriber
// closed first; the message is nacked then.
func (s *Subscriber) deliver(ctx context.Context, consumer pulsar.Consumer, pm pulsar.Message, out chan<- *message.Message, logger watermill.LoggerAdapter) bool {
	msg := watermillMessage(pm, s.cfg.MessageKeyMetadata)
	msgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msg.SetContext(msgCtx)

	select {
	case out <- msg:
	case <-ctx.Done():
		consumer.Nack(pm)
		return false
	case <-s.closing:
		consumer.Nack(pm)
		return false
	}
	select {
	case <-msg.Acked():
		if err := consumer.Ack(pm); err != nil {
			logger.Error("Acking message failed; it will be delivered again", err,
				watermill.LogFields{"message_uuid": msg.UUID, "message_id": pm.ID().String()})
		}
		return true
	case <-msg.Nacked():
		consumer.Nack(pm)
		return true
	case <-ctx.Done():
		consumer.Nack(pm)
		return false
	case <-s.closing:
		consumer.Nack(pm)
		return false
	}
}

// Close ends every subscription: it closes their channels (messages not acked
// are delivered again) and their consumers, without unsubscribing, and closes
// the client if the subscriber made it. Closing twice is harmless.
func (s *Subscriber) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.closing)
		s.mu.Unlock()
		s.wg.Wait()
		if s.ownClient {
			s.client.Close()
		}
	})
	return nil
}
