package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/schema"
)

// mqttTimeout bounds connecting, subscribing and one publish.
const mqttTimeout = 10 * time.Second

// mqttHarness runs against an MQTT broker. Messages travel in switchyard's
// MQTT envelope (see package mqttpubsub), which the load client and the raw
// loop read and write themselves, so every variant carries the same bytes.
type mqttHarness struct {
	host   string
	port   int
	logger watermill.LoggerAdapter
}

func newMQTTHarness(addr string, logger watermill.LoggerAdapter) (*mqttHarness, error) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, err
	}
	return &mqttHarness{host: host, port: port, logger: logger}, nil
}

func (h *mqttHarness) close() error { return nil }

func (h *mqttHarness) broker() string { return fmt.Sprintf("tcp://%s:%d", h.host, h.port) }

// mqttTopic is the MQTT topic of a queue.
func mqttTopic(t schema.Topic) string { return t.Tenant + "/" + t.Namespace + "/" + t.Queue }

// connect opens a paho connection with the options every client here uses.
func (h *mqttHarness) connect(clientID string, clean bool, configure func(*mqtt.ClientOptions)) (mqtt.Client, error) {
	o := mqtt.NewClientOptions()
	o.AddBroker(h.broker())
	o.SetClientID(clientID)
	o.SetCleanSession(clean)
	o.SetProtocolVersion(4)
	o.SetConnectTimeout(mqttTimeout)
	o.SetAutoReconnect(true)
	o.SetConnectRetry(false)
	if configure != nil {
		configure(o)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(2 * mqttTimeout) {
		c.Disconnect(0)
		return nil, fmt.Errorf("connecting to %s: no answer within %s", h.broker(), 2*mqttTimeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", h.broker(), err)
	}
	return c, nil
}

// connectProcessor connects a raw processor: a clean publishing client and
// a persistent session with manual acks whose messages go to in, in order,
// until done is closed.
func (h *mqttHarness) connectProcessor(name string, in chan<- mqtt.Message, done <-chan struct{}) (pub, sub mqtt.Client, err error) {
	pub, err = h.connect(name+"-pub", true, nil)
	if err != nil {
		return nil, nil, err
	}
	sub, err = h.connect(name+"-sub", false, func(o *mqtt.ClientOptions) {
		o.SetAutoAckDisabled(true)
		o.SetOrderMatters(true)
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			select {
			case in <- m:
			case <-done:
			}
		})
	})
	if err != nil {
		pub.Disconnect(250)
		return nil, nil, err
	}
	return pub, sub, nil
}

func subscribe(c mqtt.Client, filter string, qos byte) error {
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(mqttTimeout) {
		return fmt.Errorf("subscribing to %q: no answer within %s", filter, mqttTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscribing to %q: %w", filter, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for _, code := range st.Result() {
			if code > 2 {
				return fmt.Errorf("subscribing to %q: refused with code %#x", filter, code)
			}
		}
	}
	return nil
}

func (h *mqttHarness) newLoad(_ context.Context, spec runSpec, fn responseFunc) (loadClient, error) {
	// The subscription is made again on every (re)connection: a clean
	// session loses it when the broker restarts.
	subscribed := make(chan error, 1)
	filter, qos := mqttTopic(spec.out), byte(spec.out.QoS)
	c, err := h.connect(spec.name+"-load", true, func(o *mqtt.ClientOptions) {
		o.SetOrderMatters(true)
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			_, id, payload, err := decodeEnvelope(m.Payload())
			if err != nil {
				fn("", nil)
				return
			}
			fn(id, payload)
		})
		o.SetOnConnectHandler(func(c mqtt.Client) {
			err := subscribe(c, filter, qos)
			select {
			case subscribed <- err:
			default:
			}
		})
	})
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(2 * mqttTimeout)
	defer t.Stop()
	select {
	case err = <-subscribed:
	case <-t.C:
		err = fmt.Errorf("subscribing to %q: no answer within %s", filter, 2*mqttTimeout)
	}
	if err != nil {
		c.Disconnect(250)
		return nil, err
	}
	return &mqttLoad{client: c, topic: mqttTopic(spec.in), qos: byte(spec.in.QoS)}, nil
}

type mqttLoad struct {
	client mqtt.Client
	topic  string
	qos    byte
}

// Publish sends one request to the input topic with QoS 1.
func (l *mqttLoad) Publish(id string, payload []byte, _ bool) error {
	tok := l.client.Publish(l.topic, l.qos, false, encodeEnvelope(nil, id, id, payload))
	// The token completes when the broker acknowledged the message; the
	// generator does not wait for it (the window bounds what is in flight),
	// but a failure that is already known is returned.
	select {
	case <-tok.Done():
		return tok.Error()
	default:
		return nil
	}
}

// Close disconnects.
func (l *mqttLoad) Close() error {
	l.client.Disconnect(250)
	return nil
}

func (h *mqttHarness) newProcessor(ctx context.Context, spec runSpec) (processor, error) {
	switch {
	case spec.variant == VariantLimit:
		return h.newLimit(spec)
	case isSwitchyard(spec.variant):
		cfg := backend.Config{Name: backend.MQTT, ClientName: spec.name,
			MQTT: backend.MQTTSettings{Host: h.host, Port: h.port, ClientID: spec.name}}
		b, err := backend.New(ctx, cfg, h.logger)
		if err != nil {
			return nil, err
		}
		p, err := startRouter(ctx, b, true, spec, h.logger)
		if err != nil {
			_ = b.Close()
			return nil, err
		}
		return p, nil
	}
	return h.newRaw(spec)
}

// mqttRaw is the raw-sync variant on MQTT: paho alone. One persistent session
// holds the shared subscription $share/{name}/{topic} with manual acks (as
// the adapter's session does); spec.concurrency workers take its messages
// in turn, and each decodes, does the work, publishes the response on a
// shared publisher connection, waits for the broker's PUBACK, and only
// then acks the input.
type mqttRaw struct {
	sub, pub mqtt.Client
	in       chan mqtt.Message
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

func (h *mqttHarness) newRaw(spec runSpec) (processor, error) {
	p := &mqttRaw{in: make(chan mqtt.Message, 1024), done: make(chan struct{})}
	var err error
	if p.pub, p.sub, err = h.connectProcessor(spec.name, p.in, p.done); err != nil {
		return nil, err
	}
	outTopic, outQoS := mqttTopic(spec.out), byte(spec.out.QoS)
	for i := 0; i < spec.concurrency; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 0, 2048)
			for {
				var m mqtt.Message
				select {
				case m = <-p.in:
				case <-p.done:
					return
				}
				_, id, payload, err := decodeEnvelope(m.Payload())
				if err != nil {
					h.logger.Error("raw MQTT processor: bad envelope", err, nil)
					m.Ack()
					continue
				}
				resp, err := EchoPayload(payload)
				if err != nil {
					h.logger.Error("raw MQTT processor: bad request", err, nil)
					m.Ack()
					continue
				}
				buf = encodeEnvelope(buf[:0], uuid.NewString(), id, resp)
				tok := p.pub.Publish(outTopic, outQoS, false, append([]byte(nil), buf...))
				if !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
					// Not acked: the broker delivers it again after a reconnect.
					continue
				}
				m.Ack()
			}
		}()
	}
	if err := subscribe(p.sub, "$share/"+spec.name+"/"+mqttTopic(spec.in), byte(spec.in.QoS)); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// Stop ends the workers and disconnects both connections.
func (p *mqttRaw) Stop() error {
	p.once.Do(func() {
		// Release a message callback blocked on a full queue first, so that
		// the disconnect does not wait for it.
		close(p.done)
		if p.sub != nil {
			p.sub.Disconnect(250)
		}
		p.wg.Wait()
		p.pub.Disconnect(250)
	})
	return nil
}

// PID is 0: the raw loop runs in this process.
func (p *mqttRaw) PID() int { return 0 }

// envelope is switchyard's MQTT envelope as the raw loops read it.
type envelope struct {
	Version  *int              `json:"switchyard"`
	UUID     string            `json:"uuid"`
	Metadata map[string]string `json:"metadata"`
	Encoding string            `json:"encoding"`
	Payload  json.RawMessage   `json:"payload"`
}

var errEnvelope = errors.New("not an MQTT envelope with a JSON payload")

// decodeEnvelope reads an envelope whose payload is embedded JSON.
func decodeEnvelope(b []byte) (msgUUID, id string, payload []byte, err error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return "", "", nil, err
	}
	if e.Version == nil || *e.Version != 1 || (e.Encoding != "" && e.Encoding != "json") || len(e.Payload) == 0 {
		return "", "", nil, errEnvelope
	}
	return e.UUID, e.Metadata[middleware.IDProperty], e.Payload, nil
}

// encodeEnvelope appends to dst an envelope with the message UUID, the id
// property and payload, which must be JSON without surrounding white space.
func encodeEnvelope(dst []byte, msgUUID, id string, payload []byte) []byte {
	dst = append(dst, `{"switchyard":1,"uuid":`...)
	dst = appendJSONString(dst, msgUUID)
	dst = append(dst, `,"metadata":{"id":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `},"payload":`...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
