package mqttpubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ErrPublisherClosed is returned by Publish, and given to PublishAsync's
// done, after Close.
var ErrPublisherClosed = errors.New("mqtt: publisher is closed")

// PublishError says which message of a Publish call failed. Messages before
// Index were acknowledged by the broker; Index and the ones after it may or
// may not have been delivered. PublishAsync reports a failed message as
// message 0 of 1.
type PublishError struct {
	Index int    // position of the failed message in the Publish call
	Count int    // number of messages in the Publish call
	UUID  string // UUID of the failed message
	Topic string // the watermill topic
	Err   error  // what went wrong
}

// Error implements error.
func (e *PublishError) Error() string {
	return fmt.Sprintf("mqtt: publishing message %d of %d (uuid %s) to %s: %v", e.Index+1, e.Count, e.UUID, e.Topic, e.Err)
}

// Unwrap returns the cause.
func (e *PublishError) Unwrap() error { return e.Err }

// Publisher publishes watermill messages to an MQTT broker. It is safe for
// concurrent use.
//
// It reconnects by itself rather than through paho's automatic reconnection:
// after a lost connection paho's automatic reconnection resends the messages
// still waiting for an acknowledgement and reports them as published before
// the broker acknowledged them, and it races with messages published at that
// moment. A fresh connection instead fails the waiting messages, so that
// Publish reports them and the caller can publish them again.
type Publisher struct {
	config PublisherConfig
	logger watermill.LoggerAdapter
	client mqtt.Client

	lost      chan struct{} // capacity 1: the connection was lost
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup

	stateMu sync.Mutex
	link    linkState
	readyAt time.Time // Publish waits until then after a reconnect

	// mu is held for reading by Publish and for writing by Close, which so
	// waits for the Publish calls in progress.
	mu       sync.RWMutex
	closed   bool
	finished chan struct{} // closed when Close is done

	// async counts the PublishAsync calls whose done has not returned yet;
	// Close waits for it. Calls are added under mu (read), before closed.
	async sync.WaitGroup
	// slots holds a token for every PublishAsync message handed to the
	// client and not yet confirmed; its capacity is MaxInFlight.
	slots chan struct{}
	// pending holds those messages in the order they were handed to the
	// client, for confirmAsync. Every entry holds a slot, so sending to it
	// never blocks.
	pending chan asyncPublish
}

// asyncPublish is a PublishAsync message waiting for its confirmation.
type asyncPublish struct {
	token mqtt.Token
	sent  time.Time
	done  func(error)
	topic string
	uuid  string
}

// NewPublisher connects to the broker and returns a Publisher. A broker that
// cannot be reached or refuses the login gives a *ConnectError within about
// twice the connect timeout.
func NewPublisher(config PublisherConfig, logger watermill.LoggerAdapter) (*Publisher, error) {
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
	if config.ClientID == "" {
		config.ClientID = "switchyard-pub-" + watermill.NewShortUUID()
	}
	p := &Publisher{
		config:   config,
		logger:   logger.With(watermill.LogFields{"mqtt_client_id": config.ClientID}),
		lost:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		slots:    make(chan struct{}, config.MaxInFlight),
		pending:  make(chan asyncPublish, config.MaxInFlight),
	}
	opts := conn.clientOptions(config.ClientID, true)
	opts.SetAutoReconnect(false)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		p.stateMu.Lock()
		p.link = linkState{since: time.Now(), err: err}
		p.stateMu.Unlock()
		p.logger.Error("MQTT publisher lost its connection; reconnecting", err, nil)
		select {
		case p.lost <- struct{}{}:
		default:
		}
	})
	p.client = mqtt.NewClient(opts)
	if _, err := conn.connect(p.client, config.ClientID); err != nil {
		return nil, err
	}
	p.link = linkState{up: true, since: time.Now()}
	p.wg.Add(2)
	go p.reconnect()
	go p.confirmAsync()
	p.logger.Debug("MQTT publisher connected", watermill.LogFields{"broker": conn.Broker})
	return p, nil
}

// reconnect connects again whenever the connection was lost, with pauses
// that grow up to MaxReconnectInterval, until Close.
func (p *Publisher) reconnect() {
	defer p.wg.Done()
	for {
		select {
		case <-p.lost:
		case <-p.done:
			return
		}
		pause := 100 * time.Millisecond
		for !p.client.IsConnectionOpen() {
			if !sleep(context.Background(), p.done, pause) {
				return
			}
			if _, err := p.config.connect(p.client, p.config.ClientID); err != nil {
				p.stateMu.Lock()
				p.link.err = err
				p.stateMu.Unlock()
				p.logger.Debug("MQTT publisher could not reconnect yet", watermill.LogFields{"error": err.Error()})
				pause = min(2*pause, p.config.MaxReconnectInterval)
				continue
			}
			p.stateMu.Lock()
			p.link = linkState{up: true, since: time.Now()}
			if p.config.ReconnectGrace > 0 {
				p.readyAt = time.Now().Add(p.config.ReconnectGrace)
			}
			p.stateMu.Unlock()
			p.logger.Info("MQTT publisher reconnected", nil)
		}
	}
}

// Publish sends msgs to topic, pipelined, and returns once the broker
// acknowledged all of them, or the first failure as a *PublishError. An
// invalid topic, and a message larger than MaxPacketSize, give a
// *PermanentError (inside the *PublishError for a message).
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	dest, err := resolveTopic(topic)
	if err != nil {
		return &PermanentError{Err: err}
	}
	if len(msgs) == 0 {
		return nil
	}
	payloads := make([][]byte, len(msgs))
	for i, msg := range msgs {
		if payloads[i], err = p.encode(msg); err != nil {
			return &PublishError{Index: i, Count: len(msgs), UUID: msg.UUID, Topic: topic, Err: err}
		}
	}
	return p.publish(topic, dest, payloads, func(i int) string { return msgs[i].UUID })
}

// publish sends encoded payloads to dest; uuid names message i in errors.
func (p *Publisher) publish(topic string, dest destination, payloads [][]byte, uuid func(int) string) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrPublisherClosed
	}
	fail := func(i int, err error) error {
		return &PublishError{Index: i, Count: len(payloads), UUID: uuid(i), Topic: topic, Err: err}
	}
	for i, payload := range payloads {
		if err := p.checkSize(dest, payload); err != nil {
			return fail(i, err)
		}
	}
	if err := p.waitConnected(time.Now().Add(p.config.PublishTimeout)); err != nil {
		return fail(0, err)
	}

	type pending struct {
		token mqtt.Token
		sent  time.Time
	}
	window := make([]pending, len(payloads))
	next := 0 // the oldest message not yet confirmed
	confirm := func(i int) error {
		w := window[i]
		remaining := time.Until(w.sent.Add(p.config.PublishTimeout))
		if remaining <= 0 || !w.token.WaitTimeout(remaining) {
			return fmt.Errorf("the broker did not acknowledge the message within %s", p.config.PublishTimeout)
		}
		return w.token.Error()
	}
	for i := range payloads {
		for i-next >= p.config.MaxInFlight {
			if err := confirm(next); err != nil {
				return fail(next, err)
			}
			next++
		}
		window[i] = pending{token: p.client.Publish(dest.name, dest.qos, false, payloads[i]), sent: time.Now()}
	}
	for ; next < len(payloads); next++ {
		if err := confirm(next); err != nil {
			return fail(next, err)
		}
	}
	return nil
}

// PublishAsync hands msg to the MQTT client for topic and returns without
// waiting for the broker's acknowledgement. It blocks while MaxInFlight
// PublishAsync messages wait for theirs (that is the backpressure), while
// the client's connection takes the message, and while the publisher
// reconnects (at most PublishTimeout, as Publish).
//
// done is called exactly once, possibly before PublishAsync returns: with
// nil once the broker acknowledged msg (QoS 1 and 2) or once it was written
// to the connection (QoS 0), else with the error Publish would have
// returned for it: a *PermanentError for an invalid topic, ErrPublisherClosed
// after Close, and a *PublishError (message 0 of 1) for the rest, a
// *PermanentError inside it for a message larger than MaxPacketSize. A lost
// connection fails the messages it had not confirmed, and so does a broker
// that does not acknowledge one within PublishTimeout of its sending.
//
// The confirmations come in the order the messages were handed to the
// client, from one goroutine of the publisher: done must return quickly and
// must not call PublishAsync, which may be waiting for that goroutine.
// Messages given to PublishAsync one after another are sent in that order.
// Close waits until done was called for every PublishAsync call that
// started before it.
func (p *Publisher) PublishAsync(topic string, msg *message.Message, done func(error)) {
	dest, err := resolveTopic(topic)
	if err != nil {
		done(&PermanentError{Err: err})
		return
	}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		done(ErrPublisherClosed)
		return
	}
	p.async.Add(1)
	p.mu.RUnlock()
	token, err := p.sendAsync(dest, msg)
	if err != nil {
		done(&PublishError{Count: 1, UUID: msg.UUID, Topic: topic, Err: err})
		p.async.Done()
		return
	}
	p.pending <- asyncPublish{token: token, sent: time.Now(), done: done, topic: topic, uuid: msg.UUID}
}

// sendAsync encodes msg and hands it to the client once a slot is free. On
// success the caller owns the slot until the message is confirmed.
func (p *Publisher) sendAsync(dest destination, msg *message.Message) (mqtt.Token, error) {
	payload, err := p.encode(msg)
	if err != nil {
		return nil, err
	}
	if err := p.checkSize(dest, payload); err != nil {
		return nil, err
	}
	if err := p.waitConnected(time.Now().Add(p.config.PublishTimeout)); err != nil {
		return nil, err
	}
	// When all slots are taken, confirmAsync frees the oldest within
	// PublishTimeout of its sending (and once its done returned).
	p.slots <- struct{}{}
	return p.client.Publish(dest.name, dest.qos, false, payload), nil
}

// confirmAsync waits for the PublishAsync messages in the order they were
// sent, calls their done and frees their slots, until Close closes pending.
func (p *Publisher) confirmAsync() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for a := range p.pending {
		err := p.await(a.token, a.sent, timer)
		<-p.slots
		if err != nil {
			err = &PublishError{Count: 1, UUID: a.uuid, Topic: a.topic, Err: err}
		}
		a.done(err)
		p.async.Done()
	}
}

// await waits for token until PublishTimeout after sent, using timer, which
// it leaves stopped.
func (p *Publisher) await(token mqtt.Token, sent time.Time, timer *time.Timer) error {
	done := token.Done()
	select {
	case <-done:
		return token.Error()
	default:
	}
	if remaining := time.Until(sent.Add(p.config.PublishTimeout)); remaining > 0 {
		timer.Reset(remaining)
		select {
		case <-done:
			timer.Stop()
			return token.Error()
		case <-timer.C:
		}
	}
	select {
	case <-done:
		return token.Error()
	default:
		return fmt.Errorf("the broker did not acknowledge the message within %s", p.config.PublishTimeout)
	}
}

// checkSize fails a payload whose packet would be larger than MaxPacketSize.
func (p *Publisher) checkSize(dest destination, payload []byte) error {
	// Fixed header (at most 5 bytes), topic length and name, packet id.
	if size := 5 + 2 + len(dest.name) + 2 + len(payload); size > p.config.MaxPacketSize {
		return &PermanentError{Err: fmt.Errorf("the MQTT packet of %d bytes is larger than the broker's maximum packet size of %d bytes", size, p.config.MaxPacketSize)}
	}
	return nil
}

func (p *Publisher) encode(msg *message.Message) ([]byte, error) {
	if p.config.PayloadMode == PayloadRaw {
		return msg.Payload, nil
	}
	return marshalEnvelope(msg)
}

// waitConnected waits until the connection is up and the grace after a
// reconnect has passed, or the deadline passes.
func (p *Publisher) waitConnected(deadline time.Time) error {
	ready := func() bool {
		if !p.client.IsConnectionOpen() {
			return false
		}
		p.stateMu.Lock()
		at := p.readyAt
		p.stateMu.Unlock()
		return at.IsZero() || !time.Now().Before(at)
	}
	if ready() {
		return nil
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not connected to the broker at %s (reconnecting) within %s", p.config.Broker, p.config.PublishTimeout)
		}
		select {
		case <-tick.C:
		case <-p.done:
			return ErrPublisherClosed
		}
	}
	return nil
}

// Health returns nil while the publisher is connected, else an error that
// says since when and why it is not.
func (p *Publisher) Health() error {
	select {
	case <-p.done:
		return ErrPublisherClosed
	default:
	}
	p.stateMu.Lock()
	link := p.link
	p.stateMu.Unlock()
	if link.up && !p.client.IsConnectionOpen() {
		// Lost, and the handler has not run yet.
		link = linkState{since: time.Now()}
	}
	if msg := link.describe(p.config.Broker); msg != "" {
		return fmt.Errorf("mqtt publisher: %s", msg)
	}
	return nil
}

// Close waits for the Publish calls in progress, for every PublishAsync
// message to be confirmed or to fail (each within PublishTimeout of its
// sending; done is called for all of them) and for a reconnection attempt
// under way, then disconnects. Calls that wait for the connection fail at
// once with ErrPublisherClosed. It is idempotent; a second call returns
// when the first is done.
func (p *Publisher) Close() error {
	// Stop reconnecting first (an attempt under way finishes), so that no
	// connection is made after the disconnect, and stop Publish calls that
	// wait for the connection.
	p.closeOnce.Do(func() { close(p.done) })
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.finished
		return nil
	}
	p.closed = true
	// Not held while waiting for the PublishAsync calls: a done that
	// publishes again must find the publisher closed, not block.
	p.mu.Unlock()
	p.async.Wait()
	close(p.pending) // no PublishAsync call is left to send to it
	p.wg.Wait()
	p.client.Disconnect(uint(p.config.DisconnectTimeout / time.Millisecond))
	p.logger.Debug("MQTT publisher closed", nil)
	close(p.finished)
	return nil
}
