package mqttpubsub

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/switchyard-go/switchyard/schema"
)

// sessionReconnectInterval caps the pause between a subscription's
// reconnection attempts. It is short so that after a broker restart the
// subscriptions are back before publishers, which wait
// PublisherConfig.ReconnectGrace after reconnecting, publish again.
const sessionReconnectInterval = 250 * time.Millisecond

// sessionOptions are the settings of one session, taken from the
// subscriber that opened it.
type sessionOptions struct {
	key        string // registry key
	clientID   string
	filter     string // the topic filter subscribed to
	dest       destination
	persistent bool
	// target names the subscription in redelivery copies: the filter of a
	// shared subscription (group and topic), else the client id.
	target    string
	raw       bool // PayloadRaw
	nackDelay time.Duration
	maxQoS0   int
	window    int // MaxUnacked
}

// session is one MQTT connection subscribed to one topic filter, with the
// messages it received waiting in broker order until a consumer (a Subscribe
// call) takes them. Every Subscribe call of one subscription in this process
// (same group and topic, same durable client id and topic, or same
// Subscriber and exclusive topic) uses one session, found in the registry by
// key.
type session struct {
	sessionOptions
	conn   ConnectionConfig
	logger watermill.LoggerAdapter
	client mqtt.Client

	mu      sync.Mutex
	queue   list.List                // of *inbound, in arrival order
	byID    map[uint16]*list.Element // QoS 1 and 2 entries by packet id
	qos0    int                      // QoS 0 entries in queue
	unacked int                      // QoS 1 and 2 entries in queue
	dropped uint64                   // QoS 0 messages dropped because the queue was full
	link    linkState
	sub     linkState     // up: the broker confirmed the subscription on this connection
	notify  chan struct{} // capacity 1: an entry may be free to take
	freed   chan struct{} // capacity 1: a QoS 1/2 entry was acknowledged

	nackMu  sync.Mutex
	nackPub *Publisher // publishes redelivery copies; made on first use

	connects atomic.Int64 // connections made, for telling reconnects apart
	stopping atomic.Bool
	stop     chan struct{} // closed by close
	wg       sync.WaitGroup

	// Guarded by the registry's mutex.
	refs     int
	opened   chan struct{} // closed when open finished
	openErr  error
	closing  bool
	finished chan struct{} // closed when the session was torn down
}

// inbound is a received message waiting in a session.
type inbound struct {
	msg    mqtt.Message
	taken  bool // a consumer is handling it
	parked bool // nacked, waiting for its redelivery
	// Decoded on first delivery.
	decoded  bool
	uuid     string
	metadata message.Metadata
	payload  []byte
	attempt  int
	copyable bool // can be redelivered by publishing a copy
	foreign  bool // a redelivery copy for another subscription
}

func newSession(o sessionOptions, conn ConnectionConfig, logger watermill.LoggerAdapter) *session {
	return &session{
		sessionOptions: o,
		conn:           conn,
		logger:         logger.With(watermill.LogFields{"mqtt_client_id": o.clientID, "mqtt_filter": o.filter}),
		byID:           map[uint16]*list.Element{},
		notify:         make(chan struct{}, 1),
		freed:          make(chan struct{}, 1),
		stop:           make(chan struct{}),
		opened:         make(chan struct{}),
		finished:       make(chan struct{}),
		refs:           1,
	}
}

// open connects and subscribes. Messages that a persistent session kept
// while it was away may arrive before the subscription is renewed; they are
// queued like any other. When the broker still had the session, the
// subscription is renewed in the background (a backlog larger than the
// window would otherwise hold up the broker's answer until a consumer runs);
// a fresh session is subscribed before open returns, so that a refused
// subscription fails Subscribe.
func (s *session) open() error {
	opts := s.conn.clientOptions(s.clientID, !s.persistent)
	opts.SetMaxReconnectInterval(min(s.conn.MaxReconnectInterval, sessionReconnectInterval))
	opts.SetAutoAckDisabled(true)
	// Messages are handed to onMessage one at a time, on paho's goroutine
	// that reads the connection: blocking there is the backpressure.
	opts.SetOrderMatters(true)
	opts.SetDefaultPublishHandler(s.onMessage)
	opts.SetOnConnectHandler(s.onConnect)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		s.mu.Lock()
		s.link = linkState{since: time.Now(), err: err}
		s.sub = linkState{}
		s.mu.Unlock()
		if !s.stopping.Load() {
			s.logger.Error("MQTT subscription lost its connection; reconnecting", err, nil)
		}
	})
	s.client = mqtt.NewClient(opts)
	present, err := s.conn.connect(s.client, s.clientID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.link = linkState{up: true, since: time.Now()}
	s.mu.Unlock()
	// Subscribe even when the broker kept the session: Mosquitto keeps the
	// session but not its shared subscriptions across a restart.
	if s.persistent && present {
		s.wg.Add(1)
		go s.renew(1, true)
	} else {
		if err := s.conn.subscribe(s.client, s.filter, s.dest.qos, false); err != nil {
			s.stopping.Store(true)
			s.client.Disconnect(uint(s.conn.DisconnectTimeout / time.Millisecond))
			return err
		}
		s.mu.Lock()
		s.sub = linkState{up: true, since: time.Now()}
		s.mu.Unlock()
	}
	s.logger.Debug("MQTT subscription connected", watermill.LogFields{"persistent": s.persistent, "session_present": present})
	return nil
}

// onConnect renews the subscription after a reconnect. paho calls it in a
// goroutine of its own for every connection, the first one included, which
// open handles itself.
func (s *session) onConnect(mqtt.Client) {
	n := s.connects.Add(1)
	if n == 1 || s.stopping.Load() {
		return
	}
	s.mu.Lock()
	s.link = linkState{up: true, since: time.Now()}
	s.mu.Unlock()
	s.wg.Add(1)
	go s.renew(n, false)
}

// renew subscribes on connection number conn, retrying with growing pauses
// until the broker accepts, the connection is replaced or the session
// closes. The first failure is logged, and the recovery.
func (s *session) renew(conn int64, first bool) {
	defer s.wg.Done()
	pause := 100 * time.Millisecond
	failures := 0
	for {
		if s.stopping.Load() || max(s.connects.Load(), 1) != conn {
			return
		}
		err := s.conn.subscribe(s.client, s.filter, s.dest.qos, s.persistent)
		if err == nil {
			s.mu.Lock()
			s.sub = linkState{up: true, since: time.Now()}
			s.mu.Unlock()
			switch {
			case failures > 0:
				s.logger.Info("MQTT subscription renewed", watermill.LogFields{"failed_attempts": failures})
			case !first:
				s.logger.Info("MQTT subscription reconnected", nil)
			}
			return
		}
		if s.stopping.Load() {
			return
		}
		failures++
		s.mu.Lock()
		if s.sub.since.IsZero() {
			s.sub.since = time.Now()
		}
		s.sub.err = err
		s.mu.Unlock()
		if failures == 1 {
			s.logger.Error("MQTT subscription could not be renewed; retrying until it is", err, nil)
		}
		if !sleep(context.Background(), s.stop, pause) {
			return
		}
		pause = min(2*pause, max(s.conn.MaxReconnectInterval, pause))
	}
}

// health says what is wrong with the session, or "" when it is connected
// and subscribed.
func (s *session) health() string {
	s.mu.Lock()
	link, sub := s.link, s.sub
	s.mu.Unlock()
	if msg := link.describe(s.conn.Broker); msg != "" {
		return fmt.Sprintf("subscription %q: %s", s.filter, msg)
	}
	if !s.client.IsConnectionOpen() {
		return fmt.Sprintf("subscription %q: connection to %s lost, reconnecting", s.filter, s.conn.Broker)
	}
	if !sub.up {
		if sub.err != nil {
			return fmt.Sprintf("subscription %q: not renewed since %s: %s", s.filter, sub.since.Format(time.TimeOnly), oneLine(sub.err.Error()))
		}
		return fmt.Sprintf("subscription %q: waiting for the broker to confirm it", s.filter)
	}
	return ""
}

// onMessage queues a message from the broker. paho calls it on the
// goroutine that reads the connection, one message at a time. When the
// window of unacknowledged QoS 1/2 messages is full it waits for a free
// place: paho reads nothing more from the connection meanwhile, and TCP
// pushes back on the broker.
func (s *session) onMessage(c mqtt.Client, m mqtt.Message) {
	if m.Qos() == 0 {
		s.mu.Lock()
		if s.qos0 >= s.maxQoS0 {
			s.dropped++
			n := s.dropped
			s.mu.Unlock()
			if n == 1 || n%1000 == 0 {
				s.logger.Error("MQTT subscription dropped QoS 0 messages: too many waiting", nil, watermill.LogFields{"dropped": n, "max_buffered": s.maxQoS0})
			}
			return
		}
		s.qos0++
		s.queue.PushBack(&inbound{msg: m})
		s.mu.Unlock()
		s.signal()
		return
	}
	var tick *time.Ticker
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if el, ok := s.byID[m.MessageID()]; ok && m.Duplicate() {
			in := el.Value.(*inbound)
			if in.msg.Topic() == m.Topic() {
				// The broker sent it again after a reconnect: keep one copy,
				// acked through the new connection.
				in.msg = m
				s.mu.Unlock()
				return
			}
		}
		if s.unacked < s.window {
			s.unacked++
			s.byID[m.MessageID()] = s.queue.PushBack(&inbound{msg: m})
			s.mu.Unlock()
			s.signal()
			return
		}
		s.mu.Unlock()
		if tick == nil {
			tick = time.NewTicker(200 * time.Millisecond)
		}
		select {
		case <-s.freed:
		case <-s.stop:
			return // not acked: the broker sends it again
		case <-tick.C:
			if !c.IsConnectionOpen() {
				// This connection is gone; let paho finish with it. The
				// broker sends the message again on the next connection.
				return
			}
		}
	}
}

func (s *session) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// take waits for the oldest message no other consumer is handling and marks
// it taken. It returns nil when ctx is done or stop is closed.
func (s *session) take(ctx context.Context, stop <-chan struct{}) *list.Element {
	for {
		s.mu.Lock()
		var got *list.Element
		more := false
		for el := s.queue.Front(); el != nil; el = el.Next() {
			in := el.Value.(*inbound)
			if in.taken || in.parked {
				continue
			}
			if got == nil {
				in.taken = true
				got = el
				continue
			}
			more = true
			break
		}
		s.mu.Unlock()
		if got != nil {
			if more {
				s.signal() // pass the wake-up on to another consumer
			}
			return got
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		case <-s.stop:
			return nil
		}
	}
}

// prepare builds the watermill message of a taken entry. It returns nil for a
// redelivery copy meant for another subscription, which it acknowledges and
// removes.
func (s *session) prepare(el *list.Element, logger watermill.LoggerAdapter) *message.Message {
	s.mu.Lock()
	in := el.Value.(*inbound)
	if !in.decoded {
		s.decode(in, logger)
	}
	if in.foreign {
		s.mu.Unlock()
		s.ack(el)
		return nil
	}
	uuid, metadata, payload := in.uuid, maps.Clone(in.metadata), in.payload
	metadata[schema.DeliveryAttemptKey] = strconv.Itoa(in.attempt)
	s.mu.Unlock()
	msg := message.NewMessage(uuid, payload)
	msg.Metadata = metadata
	return msg
}

// decode fills in the decoded parts of in; a foreign copy is left with an
// empty uuid. Called with s.mu held.
func (s *session) decode(in *inbound, logger watermill.LoggerAdapter) {
	in.decoded = true
	in.attempt = 1
	data := in.msg.Payload()
	if in.msg.Duplicate() {
		// The broker sent it before, to this session or to the process that
		// had it before: it may have been handled.
		in.attempt = 2
	}
	if s.raw {
		in.uuid, in.metadata, in.payload = watermill.NewUUID(), message.Metadata{}, data
		return
	}
	env, err := decodeEnvelope(data)
	if err != nil {
		logger.Error("MQTT message is not a valid envelope; delivering it flagged as poison", err, nil)
		in.uuid, in.metadata, in.payload = watermill.NewUUID(), message.Metadata{EnvelopeErrorKey: err.Error()}, data
		return
	}
	if env.target != "" && env.target != s.target {
		in.foreign = true // a copy for another subscription of the topic
		return
	}
	in.uuid, in.metadata, in.payload = env.uuid, env.metadata, env.payload
	in.copyable = in.msg.Qos() > 0
	if env.target != "" {
		// A redelivery copy carries the attempt it is.
		if n, err := strconv.Atoi(env.metadata[schema.DeliveryAttemptKey]); err == nil && n > in.attempt {
			in.attempt = n
		}
	}
}

// untake gives taken entries back to the other consumers, all at once.
func (s *session) untake(els ...*list.Element) {
	if len(els) == 0 {
		return
	}
	s.mu.Lock()
	for _, el := range els {
		el.Value.(*inbound).taken = false
	}
	s.mu.Unlock()
	s.signal()
}

// ack removes a taken entry and acknowledges it to the broker.
func (s *session) ack(el *list.Element) {
	s.mu.Lock()
	in := el.Value.(*inbound)
	s.queue.Remove(el)
	m := in.msg
	if m.Qos() > 0 {
		if s.byID[m.MessageID()] == el {
			delete(s.byID, m.MessageID())
		}
		s.unacked--
	} else {
		s.qos0--
	}
	s.mu.Unlock()
	m.Ack()
	if m.Qos() > 0 {
		select {
		case s.freed <- struct{}{}:
		default:
		}
	}
}

// nack parks a taken entry and redelivers it after the nack delay, behind
// the messages that arrived meanwhile: by publishing a copy to the topic for
// this subscription and acknowledging the original once the broker
// confirmed the copy, or, for QoS 0, raw and unreadable messages, by moving
// it to the end of the session's queue.
func (s *session) nack(el *list.Element) {
	s.mu.Lock()
	in := el.Value.(*inbound)
	in.taken, in.parked = false, true
	copyable := in.copyable
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if !sleep(context.Background(), s.stop, s.nackDelay) {
			return // not acked: the broker sends it again to the next session
		}
		if copyable {
			if s.republish(el) {
				s.ack(el)
			}
			return
		}
		s.mu.Lock()
		in.parked = false
		in.attempt++
		s.queue.MoveToBack(el)
		s.mu.Unlock()
		s.signal()
	}()
}

// republish publishes the redelivery copy of a parked entry, retrying until
// the broker confirmed it; false when the session closed first.
func (s *session) republish(el *list.Element) bool {
	s.mu.Lock()
	in := el.Value.(*inbound)
	metadata := maps.Clone(in.metadata)
	metadata[schema.DeliveryAttemptKey] = strconv.Itoa(in.attempt + 1)
	data := appendEnvelope(in.uuid, metadata, in.payload, s.target)
	uuid := in.uuid
	s.mu.Unlock()
	pause := 100 * time.Millisecond
	for failures := 0; ; failures++ {
		pub, err := s.nackPublisher()
		if err == nil && !s.subscribed() {
			// After a broker restart the copy would reach no subscription
			// of the group (Mosquitto forgets shared subscriptions) and be
			// dropped: wait until this session has subscribed again.
			err = errors.New("the subscription is not renewed yet")
		}
		if err == nil {
			err = pub.publish(s.dest.topic.String(), s.dest, [][]byte{data}, func(int) string { return uuid })
		}
		if err == nil {
			return true
		}
		var perm interface{ Permanent() bool }
		if errors.As(err, &perm) && perm.Permanent() {
			// Cannot happen for a message the broker delivered; keep it
			// in this process rather than lose it.
			s.logger.Error("MQTT nacked message cannot be published again; redelivering it in this process", err, watermill.LogFields{"uuid": uuid})
			s.mu.Lock()
			in.copyable = false
			s.mu.Unlock()
			return false
		}
		if failures == 0 {
			s.logger.Error("MQTT nacked message could not be published again yet; retrying", err, watermill.LogFields{"uuid": uuid})
		}
		if !sleep(context.Background(), s.stop, pause) {
			return false
		}
		pause = min(2*pause, max(s.conn.MaxReconnectInterval, pause))
	}
}

// subscribed reports whether the broker confirmed the subscription on the
// current connection.
func (s *session) subscribed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.link.up && s.sub.up
}

// nackPublisher returns the publisher of redelivery copies, connecting it
// on first use. It has a connection of its own: the session's connection
// may be waiting for a free place in the window, and would not read the
// broker's acknowledgement of the copy.
func (s *session) nackPublisher() (*Publisher, error) {
	s.nackMu.Lock()
	defer s.nackMu.Unlock()
	if s.nackPub != nil {
		return s.nackPub, nil
	}
	select {
	case <-s.stop:
		return nil, ErrSubscriberClosed
	default:
	}
	pub, err := NewPublisher(PublisherConfig{
		ConnectionConfig: s.conn,
		ClientID:         s.clientID + ":nack:" + watermill.NewShortUUID(),
	}, s.logger)
	if err != nil {
		return nil, err
	}
	s.nackPub = pub
	return pub, nil
}

// close disconnects without unsubscribing, so a persistent session keeps its
// subscription and the messages not yet acknowledged.
func (s *session) close() {
	s.stopping.Store(true)
	close(s.stop)
	// Closing the copies' publisher ends a copy waiting for the connection;
	// its original stays unacknowledged and comes again from the broker.
	s.nackMu.Lock()
	if s.nackPub != nil {
		_ = s.nackPub.Close()
	}
	s.nackMu.Unlock()
	s.wg.Wait()
	s.client.Disconnect(uint(s.conn.DisconnectTimeout / time.Millisecond))
	s.logger.Debug("MQTT subscription disconnected", nil)
}

// sessionRegistry holds the sessions of this process by key, so that every
// Subscribe call of one subscription uses one session, and a persistent
// session its stable client id.
type sessionRegistry struct {
	mu       sync.Mutex
	sessions map[string]*session
}

var sessions = &sessionRegistry{sessions: map[string]*session{}}

// acquire returns the open session of key, opening it with newFn when there
// is none. Callers that arrive while it opens wait for the outcome; callers
// that arrive while it closes wait until it is closed and open a new one.
func (r *sessionRegistry) acquire(key string, newFn func() *session) (*session, error) {
	for {
		r.mu.Lock()
		s, ok := r.sessions[key]
		if ok {
			if s.closing {
				finished := s.finished
				r.mu.Unlock()
				<-finished
				continue
			}
			s.refs++
			opened := s.opened
			r.mu.Unlock()
			<-opened
			if s.openErr != nil {
				return nil, s.openErr
			}
			return s, nil
		}
		s = newFn()
		r.sessions[key] = s
		r.mu.Unlock()

		err := s.open()
		r.mu.Lock()
		s.openErr = err
		if err != nil {
			delete(r.sessions, key)
			close(s.finished)
		}
		close(s.opened)
		r.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// release drops one reference; the last one closes the session.
func (r *sessionRegistry) release(s *session) {
	r.mu.Lock()
	s.refs--
	if s.refs > 0 {
		r.mu.Unlock()
		return
	}
	s.closing = true
	r.mu.Unlock()

	s.close()

	r.mu.Lock()
	if r.sessions[s.key] == s {
		delete(r.sessions, s.key)
	}
	close(s.finished)
	r.mu.Unlock()
}
