package rabbitmqpubsub

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/schema"
)

// DeliveryCountHeader is the header in which quorum queues count earlier
// deliveries of a message.
const DeliveryCountHeader = "x-delivery-count"

// Subscriber consumes RabbitMQ queues laid out as TrustGraph lays them out
// (see WireOf). It is safe for concurrent use.
type Subscriber struct {
	cfg    SubscriberConfig
	logger watermill.LoggerAdapter
	conn   *conn

	mu        sync.Mutex
	closed    bool
	closing   chan struct{}
	wg        sync.WaitGroup
	nextID    int
	consumers map[int]*consumerState
	exclusive map[string]exclusiveQueue // exchange -> this subscriber's server-named queue
}

// consumerState is the health of one Subscribe call.
type consumerState struct {
	topic string
	queue string
	err   error // nil while consuming
	since time.Time
}

// exclusiveQueue is the server-named queue of a response or notify topic on
// one connection generation.
type exclusiveQueue struct {
	name string
	gen  uint64
}

// NewSubscriber connects to the broker; it fails when the broker cannot be
// reached or refuses the login. A nil logger logs nothing.
func NewSubscriber(config SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	c, err := newConn(config.ConnectionConfig, logger)
	if err != nil {
		return nil, err
	}
	return &Subscriber{
		cfg:       config,
		logger:    logger,
		conn:      c,
		closing:   make(chan struct{}),
		consumers: map[int]*consumerState{},
		exclusive: map[string]exclusiveQueue{},
	}, nil
}

// Health returns nil while the subscriber is connected and every Subscribe
// call is consuming, else what is wrong.
func (s *Subscriber) Health() error {
	if err := s.conn.health(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int, 0, len(s.consumers))
	for id, st := range s.consumers {
		if st.err != nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Ints(ids)
	st := s.consumers[ids[0]]
	return fmt.Errorf("rabbitmqpubsub: %d of %d subscriptions not consuming; %s (queue %q) since %s: %v",
		len(ids), len(s.consumers), st.topic, st.queue, st.since.Format("15:04:05"), st.err)
}

func (s *Subscriber) wire(topic string) (Wire, error) {
	w, err := WireOf(topic)
	if err != nil {
		return Wire{}, fmt.Errorf("rabbitmqpubsub: subscribing to %q: %w", topic, err)
	}
	if !w.Exclusive {
		if s.cfg.SubscriptionName == "" {
			return Wire{}, fmt.Errorf("rabbitmqpubsub: subscribing to %q: SubscriptionName is empty; %s queues are shared by a subscription name", topic, w.Class)
		}
		if q := w.QueueName(s.cfg.SubscriptionName); len(q) > maxNameLength {
			return Wire{}, fmt.Errorf("rabbitmqpubsub: subscribing to %q: queue name %q is longer than %d bytes", topic, q, maxNameLength)
		}
	}
	return w, nil
}

// SubscribeInitialize declares the topic's exchange and, for a shared
// (flow, request or classless) topic, its queue and binding, so that
// messages published before the first Subscribe are kept. Response and
// notify topics get their queue at Subscribe.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	w, err := s.wire(topic)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConnectTimeout+s.cfg.CloseTimeout)
	defer cancel()
	ch, _, err := s.conn.channel(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmqpubsub: initializing %s: %w", topic, err)
	}
	defer ch.Close()
	if err := declareExchange(ch, w); err != nil {
		return fmt.Errorf("rabbitmqpubsub: declaring exchange %s: %w", w.Exchange, err)
	}
	if w.Exclusive {
		return nil
	}
	if _, err := declareSharedQueue(ch, w, s.cfg.SubscriptionName); err != nil {
		return err
	}
	return nil
}

// declareSharedQueue declares and binds the queue of a shared subscription
// with TrustGraph's flags: durable for flow, not exclusive, not auto-deleted,
// no arguments.
func declareSharedQueue(ch *amqp.Channel, w Wire, subscription string) (string, error) {
	name := w.QueueName(subscription)
	if _, err := ch.QueueDeclare(name, w.DurableQueue, false, false, false, nil); err != nil {
		return "", fmt.Errorf("rabbitmqpubsub: declaring queue %s: %w", name, err)
	}
	if err := ch.QueueBind(name, "", w.Exchange, false, nil); err != nil {
		return "", fmt.Errorf("rabbitmqpubsub: binding queue %s to exchange %s: %w", name, w.Exchange, err)
	}
	return name, nil
}

// exclusiveQueueName returns this subscriber's server-named queue of a
// response or notify topic on connection generation gen, declaring and
// binding it (durable=false, exclusive=true, auto_delete=true) on ch when it
// has none yet. All Subscribe calls of the subscriber on the topic share it.
func (s *Subscriber) exclusiveQueueName(ch *amqp.Channel, gen uint64, w Wire) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.exclusive[w.Exchange]; ok && q.gen == gen {
		return q.name, nil
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return "", fmt.Errorf("rabbitmqpubsub: declaring a server-named queue for exchange %s: %w", w.Exchange, err)
	}
	if err := ch.QueueBind(q.Name, "", w.Exchange, false, nil); err != nil {
		return "", fmt.Errorf("rabbitmqpubsub: binding queue %s to exchange %s: %w", q.Name, w.Exchange, err)
	}
	s.exclusive[w.Exchange] = exclusiveQueue{name: q.Name, gen: gen}
	return q.Name, nil
}

func (s *Subscriber) forgetExclusive(w Wire, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.exclusive[w.Exchange]; ok && q.name == name {
		delete(s.exclusive, w.Exchange)
	}
}

// Subscribe consumes the topic until ctx ends or the subscriber closes. Each
// call is a consumer of its own on the topic's queue, so several calls
// compete for the queue's messages. The returned channel hands out the
// queue's messages in the broker's order, up to AckWindow of them (default
// 1) before the oldest is acked or nacked; with window 1 the next comes
// after the previous was acked or nacked.
// A lost connection or channel is re-established with backoff; the channel
// closes only when ctx ends or the subscriber closes.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	w, err := s.wire(topic)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	id := s.nextID
	s.nextID++
	st := &consumerState{topic: topic, queue: w.QueueName(s.cfg.SubscriptionName), err: errors.New("not consuming yet"), since: time.Now()}
	s.consumers[id] = st
	s.wg.Add(1)
	s.mu.Unlock()

	out := make(chan *message.Message)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer func() {
			s.mu.Lock()
			delete(s.consumers, id)
			s.mu.Unlock()
		}()
		s.run(ctx, w, st, out)
	}()
	return out, nil
}

func (s *Subscriber) setState(st *consumerState, queue string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if queue != "" {
		st.queue = queue
	}
	if err == nil || st.err == nil {
		st.since = time.Now()
	}
	st.err = err
}

// run consumes until ctx ends or the subscriber closes, re-establishing the
// consumer after every failure.
func (s *Subscriber) run(ctx context.Context, w Wire, st *consumerState, out chan<- *message.Message) {
	b := backoff{max: s.cfg.ReconnectMaxBackoff}
	for {
		delivered, err := s.consume(ctx, w, st, out)
		if ctx.Err() != nil || s.isClosing() {
			return
		}
		if err == nil {
			err = errors.New("consumer ended")
		}
		s.setState(st, "", err)
		s.logger.Error("RabbitMQ consumer stopped; starting it again", err, watermill.LogFields{"topic": st.topic})
		if delivered {
			b.reset()
		}
		if !sleep(ctx, s.closing, b.pause()) {
			return
		}
	}
}

func (s *Subscriber) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// consume runs one consumer on its own channel until the channel, the
// connection, ctx or the subscriber ends. It reports whether it handed out
// a message.
func (s *Subscriber) consume(ctx context.Context, w Wire, st *consumerState, out chan<- *message.Message) (bool, error) {
	ch, gen, err := s.conn.channel(ctx)
	if err != nil {
		return false, err
	}
	// Closing the channel returns its unacknowledged messages to the queue.
	defer ch.Close()
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	prefetch := max(s.cfg.Prefetch, s.cfg.AckWindow)
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return false, fmt.Errorf("setting prefetch %d: %w", prefetch, err)
	}
	// Confirms for the copies a nack publishes; they do not affect consuming.
	if err := ch.Confirm(false); err != nil {
		return false, fmt.Errorf("turning on publisher confirms: %w", err)
	}
	if err := declareExchange(ch, w); err != nil {
		return false, fmt.Errorf("declaring exchange %s: %w", w.Exchange, err)
	}
	var queue string
	if w.Exclusive {
		queue, err = s.exclusiveQueueName(ch, gen, w)
	} else {
		queue, err = declareSharedQueue(ch, w, s.cfg.SubscriptionName)
	}
	if err != nil {
		return false, err
	}
	deliveries, err := ch.ConsumeWithContext(context.WithoutCancel(ctx), queue, "", false, false, false, false, nil)
	if err != nil {
		if w.Exclusive {
			// An auto-delete queue is gone once its last consumer left.
			s.forgetExclusive(w, queue)
		}
		return false, fmt.Errorf("consuming queue %s: %w", queue, err)
	}
	s.setState(st, queue, nil)

	// Each message handed out is settled by a goroutine of its own, which
	// waits for its ack or nack and frees its place in the window; a nacked
	// message waits there for its delay, so that the messages behind it
	// keep flowing. They end with the channel, before it closes (deferred
	// above): what they did not ack goes back to the queue.
	win := &ackWindow{
		slots:  make(chan struct{}, s.cfg.AckWindow),
		failed: make(chan error, 1),
		stop:   make(chan struct{}),
	}
	defer func() {
		close(win.stop)
		win.settlers.Wait()
	}()

	delivered := false
	for {
		// A place in the window first: with window 1 the next message waits
		// for the previous one's ack or nack.
		select {
		case win.slots <- struct{}{}:
		case err := <-win.failed:
			return delivered, err
		case <-ctx.Done():
			return delivered, nil
		case <-s.closing:
			return delivered, nil
		}
		var d amqp.Delivery
		select {
		case dd, ok := <-deliveries:
			if !ok {
				select {
				case e := <-closes:
					if e != nil {
						return delivered, fmt.Errorf("channel of queue %s closed: %w", queue, e)
					}
				default:
				}
				return delivered, fmt.Errorf("consumer of queue %s cancelled", queue)
			}
			d = dd
		case err := <-win.failed:
			return delivered, err
		case <-ctx.Done():
			return delivered, nil
		case <-s.closing:
			return delivered, nil
		}
		delivered = true
		msg := toMessage(d)
		msgCtx, cancel := context.WithCancel(ctx)
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case err := <-win.failed:
			cancel()
			return delivered, err
		case <-ctx.Done():
			cancel()
			return delivered, nil
		case <-s.closing:
			cancel()
			return delivered, nil
		}
		win.settlers.Add(1)
		go s.settle(ch, queue, d, msg, cancel, win)
	}
}

// ackWindow is the state one consumer shares with the goroutines that
// settle its messages.
type ackWindow struct {
	// slots holds one token per message handed out and neither acked nor
	// nacked yet; its capacity is AckWindow.
	slots chan struct{}
	// failed receives the first ack the broker did not take.
	failed chan error
	// stop closes when the consumer ends.
	stop     chan struct{}
	settlers sync.WaitGroup
}

// settle waits for msg's ack or nack. An ack is passed to the broker by d's
// delivery tag; a nack starts the redelivery of d. Either frees msg's place
// in the window. When the consumer ends first, d stays unacknowledged, unless
// it was acked meanwhile, and the broker delivers it again once the channel
// is closed.
func (s *Subscriber) settle(ch *amqp.Channel, queue string, d amqp.Delivery, msg *message.Message, cancel context.CancelFunc, win *ackWindow) {
	defer win.settlers.Done()
	defer cancel()
	select {
	case <-msg.Acked():
		err := d.Ack(false)
		<-win.slots
		if err != nil {
			select {
			case win.failed <- fmt.Errorf("acking message %s: %w", msg.UUID, err):
			default:
			}
		}
	case <-msg.Nacked():
		<-win.slots
		s.redeliver(ch, queue, d, win.stop)
	case <-win.stop:
		// An ack given before the consumer ended still counts: it reaches
		// the broker before the channel closes.
		select {
		case <-msg.Acked():
			_ = d.Ack(false)
		default:
		}
	}
}

// redeliver brings a nacked message back after NackDelay: it publishes a
// copy with the attempt header raised by one to the same queue only (the
// default exchange, routing key = queue name, so the other subscriptions of
// the topic do not see it), waits for the broker's confirm and then acks the
// original. When that fails it nacks the original with requeue, so the
// message is never lost. When stop closes first, the original stays
// unacknowledged and comes back when the channel closes.
func (s *Subscriber) redeliver(ch *amqp.Channel, queue string, d amqp.Delivery, stop <-chan struct{}) {
	if !sleep(context.Background(), stop, s.cfg.NackDelay) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, requeued(d))
	if err == nil {
		var ack bool
		ack, err = dc.WaitContext(ctx)
		if err == nil && !ack {
			err = errors.New("the broker refused the copy (basic.nack or channel closed)")
		}
	}
	if err != nil {
		select {
		case <-stop:
			return
		default:
		}
		s.logger.Error("RabbitMQ redelivery copy failed; requeueing the original", err, watermill.LogFields{"queue": queue})
		_ = d.Nack(false, true)
		return
	}
	if err := d.Ack(false); err != nil {
		// The copy is queued; the original comes back as well when the
		// channel closes: a duplicate, never a loss.
		s.logger.Error("acking a redelivered message failed", err, watermill.LogFields{"queue": queue})
	}
}

// requeued is the copy of d that a nack publishes: same body and
// properties, the broker's delivery counter dropped, the attempt raised.
func requeued(d amqp.Delivery) amqp.Publishing {
	h := make(amqp.Table, len(d.Headers)+1)
	for k, v := range d.Headers {
		if k != DeliveryCountHeader {
			h[k] = v
		}
	}
	h[schema.DeliveryAttemptKey] = strconv.Itoa(attempt(d) + 1)
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// attempt is the delivery attempt of d: the attempt header carried on the
// wire (1 when absent), plus the broker's count of earlier deliveries of this
// copy: x-delivery-count on quorum queues, else at least one when the
// redelivered flag is set (the copy was handed to a consumer that went away
// without acking it).
func attempt(d amqp.Delivery) int {
	n := 1
	if v, ok := d.Headers[schema.DeliveryAttemptKey]; ok {
		if a, err := strconv.Atoi(headerString(v)); err == nil && a > 0 {
			n = a
		}
	}
	if v, ok := d.Headers[DeliveryCountHeader]; ok {
		if c, err := strconv.Atoi(headerString(v)); err == nil && c > 0 {
			return n + c
		}
		return n
	}
	if d.Redelivered {
		n++
	}
	return n
}

// headerString renders a header value as a string: strings and byte strings
// as they are, other values in their usual text form.
func headerString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// toMessage turns a delivery into a watermill message: the UUID from
// message_id (a new one when the producer set none, as TrustGraph's Python
// processors do), every header as metadata, and schema.DeliveryAttemptKey.
func toMessage(d amqp.Delivery) *message.Message {
	uuid := d.MessageId
	if uuid == "" {
		uuid = watermill.NewUUID()
	}
	md := make(message.Metadata, len(d.Headers)+1)
	for k, v := range d.Headers {
		if k != DeliveryCountHeader {
			md[k] = headerString(v)
		}
	}
	md[schema.DeliveryAttemptKey] = strconv.Itoa(attempt(d))
	msg := message.NewMessage(uuid, d.Body)
	msg.Metadata = md
	return msg
}

// Close stops every Subscribe call (their channels close, and the messages
// they held unacknowledged go back to their queues), waits up to
// CloseTimeout for them, and closes the connection. It never deletes a
// queue; the server-named queues of response and notify topics go away with
// the connection, as they were declared. Close is idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-time.After(s.cfg.CloseTimeout):
		err = fmt.Errorf("rabbitmqpubsub: consumers still running after %s; closing the connection anyway", s.cfg.CloseTimeout)
	}
	s.conn.close()
	return err
}
