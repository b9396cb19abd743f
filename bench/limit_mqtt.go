package bench

import (
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"
)

// mqttLimit is the limit loop on MQTT: paho alone. One persistent session
// holds the shared subscription with manual acks, as the raw-sync loop's
// does; one worker decodes each request, does the work and publishes the
// response with QoS 1 on a second connection without waiting; an acker
// takes the publish tokens in order and acks each request once the broker's
// PUBACK for its response completed the token. At most spec.window requests
// are unconfirmed.
type mqttLimit struct {
	sub, pub mqtt.Client
	in       chan mqtt.Message
	pending  chan mqttPending // responses published, in order
	window   slots
	done     chan struct{}
	worker   sync.WaitGroup
	acker    sync.WaitGroup
	once     sync.Once
}

// mqttPending is a response on its way and the request it answers.
type mqttPending struct {
	tok mqtt.Token
	in  mqtt.Message
}

func (h *mqttHarness) newLimit(spec runSpec) (processor, error) {
	p := &mqttLimit{
		in:      make(chan mqtt.Message, spec.window),
		pending: make(chan mqttPending, spec.window),
		window:  newSlots(spec.window),
		done:    make(chan struct{}),
	}
	var err error
	if p.pub, p.sub, err = h.connectProcessor(spec.name, p.in, p.done); err != nil {
		return nil, err
	}
	p.acker.Add(1)
	go func() {
		defer p.acker.Done()
		p.ack()
	}()
	p.worker.Add(1)
	go func() {
		defer p.worker.Done()
		p.work(mqttTopic(spec.out), byte(spec.out.QoS), h.logger)
	}()
	if err := subscribe(p.sub, "$share/"+spec.name+"/"+mqttTopic(spec.in), byte(spec.in.QoS)); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

func (p *mqttLimit) work(outTopic string, outQoS byte, logger watermill.LoggerAdapter) {
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
			logger.Error("MQTT limit loop: bad envelope", err, nil)
			m.Ack()
			continue
		}
		resp, err := EchoPayload(payload)
		if err != nil {
			logger.Error("MQTT limit loop: bad request", err, nil)
			m.Ack()
			continue
		}
		if !p.window.acquire(p.done) {
			return
		}
		buf = encodeEnvelope(buf[:0], uuid.NewString(), id, resp)
		tok := p.pub.Publish(outTopic, outQoS, false, append([]byte(nil), buf...))
		// Never blocks: the slot taken above has room in pending.
		p.pending <- mqttPending{tok: tok, in: m}
	}
}

// ack acks each request once its response's token completed without an
// error; a request whose response failed is left unacked, and the broker
// delivers it again after a reconnect.
func (p *mqttLimit) ack() {
	for pe := range p.pending {
		if pe.tok.WaitTimeout(mqttTimeout) && pe.tok.Error() == nil {
			pe.in.Ack()
		}
		p.window.release()
	}
}

// Stop ends the worker, lets the acker ack what the broker confirms, and
// disconnects both connections.
func (p *mqttLimit) Stop() error {
	p.once.Do(func() {
		close(p.done)
		p.worker.Wait()
		close(p.pending)
		p.acker.Wait()
		if p.sub != nil {
			p.sub.Disconnect(250)
		}
		p.pub.Disconnect(250)
	})
	return nil
}

// PID is 0: the loop runs in this process.
func (p *mqttLimit) PID() int { return 0 }
