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

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("mqtt: publisher is closed")

// PublishError says which message of a Publish call failed. Messages before
// Index were acknowledged by the broker; Index and the ones after it may or
// may not have been delivered.
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
	mu     sync.RWMutex
	closed bool
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
		config: config,
		logger: logger.With(watermill.LogFields{"mqtt_client_id": config.ClientID}),
		lost:   make(chan struct{}, 1),
		done:   make(chan struct{}),
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
	p.wg.Add(1)
	go p.reconnect()
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
		// Fixed header (at most 5 bytes), topic length and name, packet id.
		if size := 5 + 2 + len(dest.name) + 2 + len(payload); size > p.config.MaxPacketSize {
			return fail(i, &PermanentError{Err: fmt.Errorf("the MQTT packet of %d bytes is larger than the broker's maximum packet size of %d bytes", size, p.config.MaxPacketSize)})
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

// Close waits for the Publish calls in progress and for a reconnection
// attempt under way, then disconnects. It is idempotent.
func (p *Publisher) Close() error {
	// Stop reconnecting first (an attempt under way finishes), so that no
	// connection is made after the disconnect, and stop Publish calls that
	// wait for the connection.
	p.closeOnce.Do(func() { close(p.done) })
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.wg.Wait()
	p.client.Disconnect(uint(p.config.DisconnectTimeout / time.Millisecond))
	p.logger.Debug("MQTT publisher closed", nil)
	return nil
}
