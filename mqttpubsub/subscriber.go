package mqttpubsub

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrSubscriberClosed is returned by Subscribe and SubscribeInitialize after Close.
var ErrSubscriberClosed = errors.New("mqtt: subscriber is closed")

// Subscriber consumes watermill messages from an MQTT broker. It implements
// message.Subscriber and message.SubscribeInitializer and is safe for
// concurrent use.
type Subscriber struct {
	config SubscriberConfig
	logger watermill.LoggerAdapter

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

// NewSubscriber returns a Subscriber. It does not connect: each Subscribe
// call connects (or joins the connection of its group and topic), and a
// broker that cannot be reached or refuses the login fails that call with a
// *ConnectError.
func NewSubscriber(config SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	conn, err := config.ConnectionConfig.resolved()
	if err != nil {
		return nil, err
	}
	config.ConnectionConfig = conn
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Subscriber{config: config, logger: logger, closing: make(chan struct{})}, nil
}

// plan says how the subscriber consumes one topic.
type plan struct {
	dest       destination
	shared     bool   // through $share/{group}/
	persistent bool   // through a persistent session kept in the registry
	filter     string // the topic filter subscribed to
	clientID   string
	key        string // registry key of a persistent session
}

// plan works out the subscription to topic: shared for a group, durable for a
// durable subscriber, otherwise (and always for response and notify queues)
// exclusive through a clean session with a unique client id.
func (s *Subscriber) plan(topic string) (plan, error) {
	dest, err := resolveTopic(topic)
	if err != nil {
		return plan{}, err
	}
	p := plan{dest: dest, filter: dest.name}
	if !dest.class.Exclusive() {
		p.shared = s.config.Group != ""
		p.persistent = p.shared || s.config.Durable
	}
	var parts []string
	if s.config.ClientID != "" {
		parts = append(parts, s.config.ClientID)
	}
	if s.config.Group != "" {
		parts = append(parts, s.config.Group)
	} else if s.config.ClientID == "" {
		parts = append(parts, "switchyard")
	}
	parts = append(parts, dest.clientIDPart())
	p.clientID = strings.Join(parts, ":")
	if p.shared {
		p.filter = "$share/" + s.config.Group + "/" + dest.name
	}
	if p.persistent {
		p.key = s.config.Broker + "\x00" + s.config.Username + "\x00" + p.clientID
	} else {
		p.clientID += ":" + watermill.NewShortUUID()
	}
	return p, nil
}

// begin registers a call that must finish before Close returns.
func (s *Subscriber) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSubscriberClosed
	}
	s.wg.Add(1)
	return nil
}

func (s *Subscriber) session(p plan) (*session, error) {
	newFn := func() *session {
		return newSession(p.key, p.clientID, p.filter, p.dest.qos, p.persistent, s.config.ConnectionConfig, s.config.MaxBufferedQoS0, s.logger)
	}
	if !p.persistent {
		sess := newFn()
		if err := sess.open(); err != nil {
			return nil, err
		}
		return sess, nil
	}
	return sessions.acquire(p.key, newFn)
}

// SubscribeInitialize makes sure the persistent session of a shared or
// durable subscription to topic exists on the broker, so that messages
// published before the first Subscribe are kept for it. For an exclusive
// subscription it only checks the topic.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	p, err := s.plan(topic)
	if err != nil {
		return err
	}
	if !p.persistent {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	sess, err := s.session(p)
	if err != nil {
		return err
	}
	sessions.release(sess)
	return nil
}

// Subscribe returns the messages of topic. The channel is closed when ctx is
// done or the subscriber is closed. The next message is sent only after the
// previous one was acked or nacked.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	p, err := s.plan(topic)
	if err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	sess, err := s.session(p)
	if err != nil {
		s.wg.Done()
		return nil, err
	}
	out := make(chan *message.Message)
	c := &consumer{sub: s, sess: sess, topic: topic, logger: s.logger.With(watermill.LogFields{"topic": topic, "mqtt_client_id": sess.clientID})}
	go c.run(ctx, out)
	return out, nil
}

// Close ends every subscription of this subscriber and waits until they
// disconnected. It never unsubscribes. It is idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// consumer delivers the messages of one session to one Subscribe channel.
type consumer struct {
	sub    *Subscriber
	sess   *session
	topic  string
	logger watermill.LoggerAdapter
}

func (c *consumer) run(ctx context.Context, out chan<- *message.Message) {
	defer c.sub.wg.Done()
	defer close(out)
	defer sessions.release(c.sess)
	stop := c.sub.closing
	for {
		el := c.sess.take(ctx, stop)
		if el == nil {
			return
		}
		if !c.deliver(ctx, stop, out, el) {
			c.sess.untake(el)
			return
		}
		c.sess.ack(el)
	}
}

// deliver hands one message to out until it is acked, delivering it again
// after a nack. It returns false when the subscription ended first.
func (c *consumer) deliver(ctx context.Context, stop <-chan struct{}, out chan<- *message.Message, el *list.Element) bool {
	uuid, metadata, payload := c.decode(c.sess.payload(el))
	for attempt := 0; ; attempt++ {
		p := payload
		if attempt > 0 {
			p = bytes.Clone(payload)
		}
		msg := message.NewMessage(uuid, p)
		msg.Metadata = maps.Clone(metadata)
		msgCtx, cancel := context.WithCancel(ctx)
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case <-ctx.Done():
			cancel()
			return false
		case <-stop:
			cancel()
			return false
		}
		select {
		case <-msg.Acked():
			cancel()
			return true
		case <-msg.Nacked():
			cancel()
		case <-ctx.Done():
			cancel()
			return false
		case <-stop:
			cancel()
			return false
		}
		if !sleep(ctx, stop, c.sub.config.NackDelay) {
			return false
		}
	}
}

// decode turns an MQTT payload into a watermill message's parts. A payload
// that is not an envelope keeps its bytes and carries the reason under
// EnvelopeErrorKey.
func (c *consumer) decode(data []byte) (string, message.Metadata, []byte) {
	if c.sub.config.PayloadMode == PayloadRaw {
		return watermill.NewUUID(), message.Metadata{}, data
	}
	uuid, metadata, payload, err := unmarshalEnvelope(data)
	if err != nil {
		c.logger.Error("MQTT message is not a valid envelope; delivering it flagged as poison", err, nil)
		return watermill.NewUUID(), message.Metadata{EnvelopeErrorKey: err.Error()}, data
	}
	return uuid, metadata, payload
}

// sleep waits for d; it returns false when ctx is done or stop is closed first.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
	_ message.Publisher            = (*Publisher)(nil)
)
