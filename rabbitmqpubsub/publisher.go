package rabbitmqpubsub

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
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/schema"
)

// ContentType is the content_type of every published message, as
// TrustGraph sets it.
const ContentType = "application/json"

// Publisher publishes watermill messages to RabbitMQ exchanges laid out as
// TrustGraph lays them out (see WireOf). It is safe for concurrent use.
type Publisher struct {
	cfg    PublisherConfig
	logger watermill.LoggerAdapter
	conn   *conn

	mu         sync.Mutex
	idle       []*pubChannel
	declared   map[string]uint64 // exchange -> connection generation it was declared on
	calls      int               // Publish calls running
	callsEnded chan struct{}     // closed by the last Publish call to end after Close
	closed     bool
	lane       *asyncLane // PublishAsync's pipeline, started by its first call

	wiresMu sync.RWMutex
	wires   map[string]*Wire // topic -> layout, for PublishAsync
}

// pubChannel is a channel in confirm mode.
type pubChannel struct {
	ch     *amqp.Channel
	gen    uint64
	closes chan *amqp.Error
	err    error // the close reason, once seen
}

// NewPublisher connects to the broker; it fails when the broker cannot be
// reached or refuses the login. A nil logger logs nothing.
func NewPublisher(config PublisherConfig, logger watermill.LoggerAdapter) (*Publisher, error) {
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
	return &Publisher{cfg: config, logger: logger, conn: c, declared: map[string]uint64{}, wires: map[string]*Wire{}}, nil
}

// Health returns nil while the publisher is connected, else what is wrong.
func (p *Publisher) Health() error { return p.conn.health() }

// Publish publishes msgs, in order, to the topic's exchange (declared first,
// as a durable fanout exchange), and returns after the broker confirmed
// every one of them. A connection lost on the way is waited for, and what it
// left unconfirmed is published again, until PublishTimeout; a message may
// therefore reach the broker twice. The error names the message that failed;
// it is a *PermanentError when trying again cannot help.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errClosed
	}
	p.calls++
	p.mu.Unlock()
	defer p.endCall()

	w, err := WireOf(topic)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("rabbitmqpubsub: publishing to %q: %w", topic, err)}
	}
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
	defer cancel()

	pending := make([]int, len(msgs))
	for i := range pending {
		pending[i] = i
	}
	b := backoff{max: p.cfg.ReconnectMaxBackoff}
	var lastErr error
	for {
		pending, lastErr = p.publishOnce(ctx, w, msgs, pending)
		if len(pending) == 0 {
			return nil
		}
		if isPermanent(lastErr) {
			return lastErr
		}
		p.logger.Debug("RabbitMQ publish incomplete; trying again", watermill.LogFields{"exchange": w.Exchange, "error": lastErr.Error(), "unconfirmed": len(pending)})
		if !sleep(ctx, nil, b.pause()) {
			i := pending[0]
			return fmt.Errorf("rabbitmqpubsub: message %s (%d of %d) to exchange %s not confirmed within %s: %w",
				msgs[i].UUID, i+1, len(msgs), w.Exchange, p.cfg.PublishTimeout, lastErr)
		}
	}
}

// endCall counts the end of a Publish call.
func (p *Publisher) endCall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls--
	if p.calls == 0 && p.callsEnded != nil {
		close(p.callsEnded)
		p.callsEnded = nil
	}
}

// publishOnce publishes the pending messages on one channel and waits for
// their confirms. It returns those still unconfirmed and why.
func (p *Publisher) publishOnce(ctx context.Context, w Wire, msgs []*message.Message, pending []int) ([]int, error) {
	pc, err := p.acquire(ctx)
	if err != nil {
		return pending, err
	}
	healthy := false
	defer func() { p.release(pc, healthy) }()

	if err := p.declare(ctx, pc, w); err != nil {
		return pending, err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(pending))
	var sendErr error
	for _, i := range pending {
		dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, w.Exchange, "", false, false, publishing(msgs[i], w.Persistent))
		if err != nil {
			sendErr = err
			break
		}
		confirms = append(confirms, dc)
	}
	var left []int
	var nacked error
	for k, dc := range confirms {
		ack, err := dc.WaitContext(ctx)
		switch {
		case err != nil:
			left = append(left, pending[k:]...)
			return left, fmt.Errorf("waiting for the broker's confirms: %w", err)
		case !ack:
			left = append(left, pending[k])
			if nacked == nil {
				nacked = errors.New("the broker refused the message (basic.nack)")
			}
		}
	}
	left = append(left, pending[len(confirms):]...)
	if cerr := pc.closeError(); cerr != nil {
		return left, p.classify(w, msgs, left, cerr)
	}
	if sendErr != nil {
		return left, fmt.Errorf("sending to exchange %s: %w", w.Exchange, sendErr)
	}
	healthy = true
	if len(left) > 0 {
		return left, nacked
	}
	return nil, nil
}

// classify turns a channel or connection error into the error of the first
// message it concerns, permanent when retrying cannot fix it.
func (p *Publisher) classify(w Wire, msgs []*message.Message, left []int, cerr error) error {
	if len(left) == 0 {
		return cerr
	}
	i := left[0]
	if tooLarge(cerr) {
		// Name the first unconfirmed message above the broker's limit.
		var ae *amqp.Error
		errors.As(cerr, &ae)
		if limit, ok := parseMaxSize(ae.Reason); ok {
			for _, j := range left {
				if len(msgs[j].Payload) > limit {
					i = j
					break
				}
			}
		}
	}
	err := fmt.Errorf("rabbitmqpubsub: publishing message %s (%d of %d, %d bytes) to exchange %s: %w",
		msgs[i].UUID, i+1, len(msgs), len(msgs[i].Payload), w.Exchange, cerr)
	if permanentAMQP(cerr) {
		return &PermanentError{Err: err}
	}
	return err
}

// parseMaxSize reads the limit out of RabbitMQ's "message size N is larger
// than configured max size M".
func parseMaxSize(reason string) (int, bool) {
	const marker = "max size "
	i := strings.LastIndex(reason, marker)
	if i < 0 {
		return 0, false
	}
	s := reason[i+len(marker):]
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(s[:end])
	return n, err == nil
}

// closeError returns the error the channel was closed with, if it was.
func (pc *pubChannel) closeError() error {
	if pc.err != nil {
		return pc.err
	}
	var wait <-chan time.Time
	if pc.ch.IsClosed() {
		// The close reason is sent just after the channel is marked closed.
		wait = time.After(100 * time.Millisecond)
	}
	select {
	case e, ok := <-pc.closes:
		pc.err = amqp.ErrClosed
		if ok && e != nil {
			pc.err = e
		}
	case <-wait:
		pc.err = amqp.ErrClosed
	default:
		if wait == nil {
			return nil
		}
		select {
		case e, ok := <-pc.closes:
			pc.err = amqp.ErrClosed
			if ok && e != nil {
				pc.err = e
			}
		case <-wait:
			pc.err = amqp.ErrClosed
		}
	}
	return pc.err
}

// declare declares the exchange as TrustGraph does, once per connection.
func (p *Publisher) declare(ctx context.Context, pc *pubChannel, w Wire) error {
	p.mu.Lock()
	gen, ok := p.declared[w.Exchange]
	p.mu.Unlock()
	if ok && gen == pc.gen {
		return nil
	}
	if err := declareExchange(pc.ch, w); err != nil {
		err = fmt.Errorf("rabbitmqpubsub: declaring exchange %s: %w", w.Exchange, err)
		if permanentAMQP(err) {
			return &PermanentError{Err: err}
		}
		return err
	}
	p.mu.Lock()
	p.declared[w.Exchange] = pc.gen
	p.mu.Unlock()
	return nil
}

// declareExchange declares w's exchange with TrustGraph's flags: fanout,
// durable, not auto-deleted, not internal, no arguments.
func declareExchange(ch *amqp.Channel, w Wire) error {
	return ch.ExchangeDeclare(w.Exchange, amqp.ExchangeFanout, true, false, false, false, nil)
}

// acquire returns an idle channel of the current connection or opens one.
func (p *Publisher) acquire(ctx context.Context) (*pubChannel, error) {
	p.mu.Lock()
	for len(p.idle) > 0 {
		pc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !pc.ch.IsClosed() {
			p.mu.Unlock()
			return pc, nil
		}
	}
	p.mu.Unlock()
	ch, gen, err := p.conn.channel(ctx)
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("rabbitmqpubsub: turning on publisher confirms: %w", err)
	}
	return &pubChannel{ch: ch, gen: gen, closes: ch.NotifyClose(make(chan *amqp.Error, 1))}, nil
}

// release keeps a healthy channel for later calls, or closes it.
func (p *Publisher) release(pc *pubChannel, healthy bool) {
	if pc == nil {
		return
	}
	p.mu.Lock()
	if healthy && !p.closed && len(p.idle) < p.cfg.MaxIdleChannels && !pc.ch.IsClosed() {
		p.idle = append(p.idle, pc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = pc.ch.Close()
}

// publishing turns msg into an AMQP message: the payload as body,
// content_type application/json, delivery_mode persistent or not, the UUID
// as message_id, and every metadata entry as a string header, except
// schema.DeliveryAttemptKey, which only the subscriber's redelivery sets.
func publishing(msg *message.Message, persistent bool) amqp.Publishing {
	pub := amqp.Publishing{
		ContentType:  ContentType,
		DeliveryMode: amqp.Transient,
		MessageId:    msg.UUID,
		Body:         msg.Payload,
	}
	if persistent {
		pub.DeliveryMode = amqp.Persistent
	}
	if len(msg.Metadata) > 0 {
		h := make(amqp.Table, len(msg.Metadata))
		for k, v := range msg.Metadata {
			if k != schema.DeliveryAttemptKey {
				h[k] = v
			}
		}
		if len(h) > 0 {
			pub.Headers = h
		}
	}
	return pub
}

// Close waits up to CloseTimeout for Publish calls in flight and for the
// broker to confirm every message given to PublishAsync (those still
// unconfirmed then get an error), then closes the connection. It is
// idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	lane := p.lane
	p.mu.Unlock()
	expired := make(chan struct{})
	timer := time.AfterFunc(p.cfg.CloseTimeout, func() { close(expired) })
	defer timer.Stop()
	var errs []error
	if lane != nil && !lane.close(expired) {
		errs = append(errs, fmt.Errorf("rabbitmqpubsub: PublishAsync messages still unconfirmed after %s; failed them", p.cfg.CloseTimeout))
	}
	p.mu.Lock()
	var calls chan struct{}
	if p.calls > 0 {
		calls = make(chan struct{})
		p.callsEnded = calls
	}
	p.mu.Unlock()
	if calls != nil {
		select {
		case <-calls:
		case <-expired:
			errs = append(errs, fmt.Errorf("rabbitmqpubsub: Publish calls still running after %s; closing anyway", p.cfg.CloseTimeout))
		}
	}
	for _, pc := range idle {
		_ = pc.ch.Close()
	}
	p.conn.close()
	return errors.Join(errs...)
}
