package mqttpubsub

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// session is one MQTT connection subscribed to one topic filter, with the
// messages it received waiting in broker order until a consumer (a Subscribe
// call) takes them. The consumers of a shared subscription in this process
// all use one session, found in the registry by client id; an exclusive
// subscription has a session of its own.
type session struct {
	key        string // registry key; "" for an exclusive session
	clientID   string
	filter     string
	qos        byte
	persistent bool
	conn       ConnectionConfig
	maxQoS0    int
	logger     watermill.LoggerAdapter
	client     mqtt.Client

	mu      sync.Mutex
	queue   list.List                // of *inbound, in arrival order
	byID    map[uint16]*list.Element // QoS 1 and 2 entries by packet id
	qos0    int                      // QoS 0 entries in queue
	dropped uint64                   // QoS 0 messages dropped because the queue was full
	notify  chan struct{}            // capacity 1: an entry may be free to take

	connects atomic.Int64
	stopping atomic.Bool

	// Guarded by the registry's mutex.
	refs     int
	opened   chan struct{} // closed when open finished
	openErr  error
	closing  bool
	finished chan struct{} // closed when the session was torn down
}

// inbound is a received message waiting in a session.
type inbound struct {
	msg   mqtt.Message
	taken bool // a consumer is handling it
}

func newSession(key, clientID, filter string, qos byte, persistent bool, conn ConnectionConfig, maxQoS0 int, logger watermill.LoggerAdapter) *session {
	return &session{
		key:        key,
		clientID:   clientID,
		filter:     filter,
		qos:        qos,
		persistent: persistent,
		conn:       conn,
		maxQoS0:    maxQoS0,
		logger:     logger.With(watermill.LogFields{"mqtt_client_id": clientID, "mqtt_filter": filter}),
		byID:       map[uint16]*list.Element{},
		notify:     make(chan struct{}, 1),
		opened:     make(chan struct{}),
		finished:   make(chan struct{}),
		refs:       1,
	}
}

// open connects and subscribes. Messages that a persistent session kept
// while it was away may arrive before the subscription is renewed; they are
// queued like any other.
func (s *session) open() error {
	opts := s.conn.clientOptions(s.clientID, !s.persistent)
	opts.SetAutoAckDisabled(true)
	opts.SetOrderMatters(true)
	opts.SetDefaultPublishHandler(s.onMessage)
	opts.SetOnConnectHandler(s.onConnect)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		if !s.stopping.Load() {
			s.logger.Error("MQTT subscription lost its connection; reconnecting", err, nil)
		}
	})
	s.client = mqtt.NewClient(opts)
	present, err := s.conn.connect(s.client, s.clientID)
	if err != nil {
		return err
	}
	// Subscribe even when the broker kept the session: Mosquitto keeps the
	// session but not its shared subscriptions across a restart.
	if err := s.conn.subscribe(s.client, s.filter, s.qos, s.persistent && present); err != nil {
		s.stopping.Store(true)
		s.client.Disconnect(uint(s.conn.DisconnectTimeout / time.Millisecond))
		return err
	}
	s.logger.Debug("MQTT subscription connected", watermill.LogFields{"persistent": s.persistent, "session_present": present})
	return nil
}

// onConnect renews the subscription after a reconnect. paho calls it in a
// goroutine of its own for every connection, the first one included, which
// open subscribes itself.
func (s *session) onConnect(client mqtt.Client) {
	if s.connects.Add(1) == 1 || s.stopping.Load() {
		return
	}
	// The session may or may not have survived on the broker; subscribing
	// again is harmless when it did.
	if err := s.conn.subscribe(client, s.filter, s.qos, s.persistent); err != nil {
		if !s.stopping.Load() {
			s.logger.Error("MQTT subscription could not be renewed after a reconnect", err, nil)
		}
		return
	}
	s.logger.Info("MQTT subscription reconnected", nil)
}

// onMessage queues a message from the broker. It never blocks: paho calls it
// on the goroutine that reads the connection.
func (s *session) onMessage(_ mqtt.Client, m mqtt.Message) {
	s.mu.Lock()
	if m.Qos() > 0 {
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
		s.byID[m.MessageID()] = s.queue.PushBack(&inbound{msg: m})
	} else {
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
	}
	s.mu.Unlock()
	s.signal()
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
			if in.taken {
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
		}
	}
}

// payload returns the current payload of a taken entry.
func (s *session) payload(el *list.Element) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return el.Value.(*inbound).msg.Payload()
}

// untake gives a taken entry back to the other consumers.
func (s *session) untake(el *list.Element) {
	s.mu.Lock()
	el.Value.(*inbound).taken = false
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
	} else {
		s.qos0--
	}
	s.mu.Unlock()
	m.Ack()
}

// close disconnects without unsubscribing, so a persistent session keeps its
// subscription and the messages not yet acknowledged.
func (s *session) close() {
	s.stopping.Store(true)
	s.client.Disconnect(uint(s.conn.DisconnectTimeout / time.Millisecond))
	s.logger.Debug("MQTT subscription disconnected", nil)
}

// sessionRegistry holds the shared sessions of this process by key, so that
// every subscription of one group and topic uses one session and its stable
// client id.
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
	if s.key == "" {
		s.close()
		return
	}
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
