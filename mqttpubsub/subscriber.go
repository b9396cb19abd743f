package mqttpubsub

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
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
	id     string // tells this Subscriber's exclusive sessions apart

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
	active  map[*session]int // sessions in use by Subscribe calls, for Health
}

// NewSubscriber returns a Subscriber. It does not connect: each Subscribe
// call connects (or joins the connection of its subscription), and a
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
	return &Subscriber{
		config:  config,
		logger:  logger,
		id:      watermill.NewShortUUID(),
		closing: make(chan struct{}),
		active:  map[*session]int{},
	}, nil
}

// plan works out the subscription to topic: shared for a group, durable for a
// durable subscriber, otherwise (and always for response and notify queues)
// exclusive through a clean session with a unique client id, shared by the
// Subscribe calls of this Subscriber.
func (s *Subscriber) plan(topic string) (sessionOptions, error) {
	dest, err := resolveTopic(topic)
	if err != nil {
		return sessionOptions{}, err
	}
	o := sessionOptions{
		dest:      dest,
		filter:    dest.name,
		raw:       s.config.PayloadMode == PayloadRaw,
		nackDelay: s.config.NackDelay,
		maxQoS0:   s.config.MaxBufferedQoS0,
		window:    s.config.MaxUnacked,
	}
	shared := false
	if !dest.class.Exclusive() {
		shared = s.config.Group != ""
		o.persistent = shared || s.config.Durable
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
	o.clientID = strings.Join(parts, ":")
	if shared {
		o.filter = "$share/" + s.config.Group + "/" + dest.name
	}
	if o.persistent {
		o.key = s.config.Broker + "\x00" + s.config.Username + "\x00" + o.clientID
	} else {
		o.clientID += ":" + watermill.NewShortUUID()
		o.key = "exclusive\x00" + s.id + "\x00" + dest.name
	}
	if shared {
		o.target = o.filter
	} else {
		o.target = o.clientID
	}
	return o, nil
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

func (s *Subscriber) session(o sessionOptions) (*session, error) {
	return sessions.acquire(o.key, func() *session {
		return newSession(o, s.config.ConnectionConfig, s.logger)
	})
}

// SubscribeInitialize makes sure the persistent session of a shared or
// durable subscription to topic exists on the broker, so that messages
// published before the first Subscribe are kept for it. For an exclusive
// subscription it only checks the topic.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	o, err := s.plan(topic)
	if err != nil {
		return err
	}
	if !o.persistent {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	sess, err := s.session(o)
	if err != nil {
		return err
	}
	sessions.release(sess)
	return nil
}

// Subscribe returns the messages of topic, in the order the broker
// delivered them. The channel is closed when ctx is done or the subscriber
// is closed. With AckWindow 1 (the default) the next message is sent only
// after the previous one was acked or nacked; with a larger window, once
// fewer than AckWindow messages sent on the channel wait for their ack or
// nack. Several Subscribe calls for one topic share one subscription and
// compete for its messages.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	o, err := s.plan(topic)
	if err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	sess, err := s.session(o)
	if err != nil {
		s.wg.Done()
		return nil, err
	}
	s.mu.Lock()
	s.active[sess]++
	s.mu.Unlock()
	out := make(chan *message.Message)
	c := &consumer{sub: s, sess: sess, topic: topic, logger: s.logger.With(watermill.LogFields{"topic": topic, "mqtt_client_id": sess.clientID})}
	go c.run(ctx, out)
	return out, nil
}

// Health returns nil while every subscription of this subscriber is
// connected and confirmed by the broker, else an error that says which one
// is not, since when and why.
func (s *Subscriber) Health() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSubscriberClosed
	}
	active := make([]*session, 0, len(s.active))
	for sess := range s.active {
		active = append(active, sess)
	}
	s.mu.Unlock()
	var problems []string
	for _, sess := range active {
		if msg := sess.health(); msg != "" {
			problems = append(problems, msg)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return fmt.Errorf("mqtt subscriber: %s", strings.Join(problems, "; "))
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
	defer func() {
		c.sub.mu.Lock()
		if c.sub.active[c.sess]--; c.sub.active[c.sess] <= 0 {
			delete(c.sub.active, c.sess)
		}
		c.sub.mu.Unlock()
		sessions.release(c.sess)
	}()
	stop := c.sub.closing
	if window := c.sub.config.AckWindow; window > 1 {
		c.runWindow(ctx, stop, out, window)
		return
	}
	for {
		el := c.sess.take(ctx, stop)
		if el == nil {
			return
		}
		msg := c.sess.prepare(el, c.logger)
		if msg == nil {
			continue
		}
		switch c.deliver(ctx, stop, out, msg) {
		case delivered:
			c.sess.ack(el)
		case nacked:
			c.sess.nack(el)
		default:
			c.sess.untake(el)
			return
		}
	}
}

// runWindow hands out the session's messages in order while fewer than
// window of them wait for their ack or nack, and settles each in a goroutine
// of its own as its ack or nack comes, in any order. When ctx is done or stop
// is closed it gives back every message handed out and not yet settled, as
// run does for its one message, all at once so that the session's other
// consumers take them in order, and returns once it did.
func (c *consumer) runWindow(ctx context.Context, stop <-chan struct{}, out chan<- *message.Message, window int) {
	slots := make(chan struct{}, window) // one per message handed out and not yet settled
	var (
		settling  sync.WaitGroup
		mu        sync.Mutex
		unsettled []*list.Element // handed out, not acked or nacked when the subscription ended
	)
	defer func() {
		settling.Wait()
		c.sess.untake(unsettled...)
	}()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		case <-stop:
			return
		}
		// A place freed by a message given back at the end must not be
		// used for another one.
		if ending(ctx, stop) {
			return
		}
		el := c.sess.take(ctx, stop)
		if el == nil {
			return
		}
		msg := c.sess.prepare(el, c.logger)
		if msg == nil {
			<-slots
			continue
		}
		msgCtx, cancel := context.WithCancel(ctx)
		msg.SetContext(msgCtx)
		if !offer(ctx, stop, out, msg) {
			cancel()
			mu.Lock()
			unsettled = append(unsettled, el)
			mu.Unlock()
			return
		}
		settling.Add(1)
		go func() {
			defer settling.Done()
			switch await(ctx, stop, msg) {
			case delivered:
				c.sess.ack(el)
			case nacked:
				c.sess.nack(el)
			default:
				mu.Lock()
				unsettled = append(unsettled, el)
				mu.Unlock()
			}
			cancel()
			<-slots
		}()
	}
}

// ending reports whether ctx is done or stop is closed.
func ending(ctx context.Context, stop <-chan struct{}) bool {
	select {
	case <-ctx.Done():
		return true
	case <-stop:
		return true
	default:
		return false
	}
}

type outcome int

const (
	ended outcome = iota
	delivered
	nacked
)

// deliver hands one message to out and waits for its ack or nack. It
// returns ended when the subscription ended first.
func (c *consumer) deliver(ctx context.Context, stop <-chan struct{}, out chan<- *message.Message, msg *message.Message) outcome {
	msgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msg.SetContext(msgCtx)
	if !offer(ctx, stop, out, msg) {
		return ended
	}
	return await(ctx, stop, msg)
}

// offer sends msg on out; false when the subscription ended first.
func offer(ctx context.Context, stop <-chan struct{}, out chan<- *message.Message, msg *message.Message) bool {
	select {
	case out <- msg:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// await waits for the ack or nack of a message sent on a Subscribe channel.
// It returns ended when the subscription ended first.
func await(ctx context.Context, stop <-chan struct{}, msg *message.Message) outcome {
	select {
	case <-msg.Acked():
		return delivered
	case <-msg.Nacked():
		return nacked
	case <-ctx.Done():
		return ended
	case <-stop:
		return ended
	}
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
