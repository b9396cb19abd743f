package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
)

// rabbitmqTimeout bounds connecting and waiting for one confirmation in the
// RabbitMQ limit loop.
const rabbitmqTimeout = 10 * time.Second

// rabbitmqLimit is the limit loop on RabbitMQ: amqp091-go alone, on one
// connection. One consumer (prefetch spec.window, manual acks) on the
// request queue the adapter would consume; each response is published
// persistent on a channel in confirm mode with a deferred confirmation, and
// an acker takes the confirmations in order and acks the requests whose
// responses the broker confirmed, several at once (multiple) when their
// confirmations are already in. At most spec.window requests are
// unconfirmed. The exchanges, queue and binding are those rabbitmqpubsub
// declares, so the load client and the counter see the same topology.
type rabbitmqLimit struct {
	conn    *amqp.Connection
	cons    *amqp.Channel
	pub     *amqp.Channel
	tag     string
	pending chan rabbitmqPending // responses published, in order
	window  slots
	done    chan struct{}
	worker  sync.WaitGroup
	acker   sync.WaitGroup
	once    sync.Once
	err     error // closing the connection
}

// rabbitmqPending is a response on its way and the request it answers.
type rabbitmqPending struct {
	dc *amqp.DeferredConfirmation
	in amqp.Delivery
}

func newRabbitMQLimit(conn rabbitmqpubsub.ConnectionConfig, spec runSpec, logger watermill.LoggerAdapter) (processor, error) {
	in, err := rabbitmqpubsub.WireOf(spec.in.String())
	if err != nil {
		return nil, err
	}
	out, err := rabbitmqpubsub.WireOf(spec.out.String())
	if err != nil {
		return nil, err
	}
	ac, err := amqp.DialConfig(conn.URL(), amqp.Config{
		SASL:       []amqp.Authentication{&amqp.PlainAuth{Username: conn.Username, Password: conn.Password}},
		Vhost:      conn.VHost,
		Dial:       amqp.DefaultDial(rabbitmqTimeout),
		Properties: amqp.Table{"connection_name": spec.name},
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", conn.URL(), err)
	}
	p := &rabbitmqLimit{
		conn:    ac,
		tag:     spec.name,
		pending: make(chan rabbitmqPending, spec.window),
		window:  newSlots(spec.window),
		done:    make(chan struct{}),
	}
	fail := func(err error) (processor, error) {
		_ = ac.Close()
		return nil, err
	}
	if p.cons, err = ac.Channel(); err != nil {
		return fail(fmt.Errorf("opening the consumer channel: %w", err))
	}
	if p.pub, err = ac.Channel(); err != nil {
		return fail(fmt.Errorf("opening the publisher channel: %w", err))
	}
	for _, w := range []rabbitmqpubsub.Wire{in, out} {
		if err := p.cons.ExchangeDeclare(w.Exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return fail(fmt.Errorf("declaring exchange %s: %w", w.Exchange, err))
		}
	}
	queue := in.QueueName(spec.name)
	if _, err := p.cons.QueueDeclare(queue, in.DurableQueue, false, false, false, nil); err != nil {
		return fail(fmt.Errorf("declaring queue %s: %w", queue, err))
	}
	if err := p.cons.QueueBind(queue, "", in.Exchange, false, nil); err != nil {
		return fail(fmt.Errorf("binding queue %s: %w", queue, err))
	}
	if err := p.cons.Qos(spec.window, 0, false); err != nil {
		return fail(fmt.Errorf("setting prefetch %d: %w", spec.window, err))
	}
	if err := p.pub.Confirm(false); err != nil {
		return fail(fmt.Errorf("turning on publisher confirms: %w", err))
	}
	deliveries, err := p.cons.Consume(queue, p.tag, false, false, false, false, nil)
	if err != nil {
		return fail(fmt.Errorf("consuming %s: %w", queue, err))
	}
	p.acker.Add(1)
	go func() {
		defer p.acker.Done()
		p.ack()
	}()
	p.worker.Add(1)
	go func() {
		defer p.worker.Done()
		p.work(deliveries, out, logger)
	}()
	return p, nil
}

func (p *rabbitmqLimit) work(deliveries <-chan amqp.Delivery, out rabbitmqpubsub.Wire, logger watermill.LoggerAdapter) {
	mode := amqp.Transient
	if out.Persistent {
		mode = amqp.Persistent
	}
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
			if !ok {
				return
			}
		case <-p.done:
			return
		}
		resp, err := EchoPayload(d.Body)
		if err != nil {
			logger.Error("RabbitMQ limit loop: bad request", err, nil)
			_ = d.Ack(false)
			continue
		}
		if !p.window.acquire(p.done) {
			return
		}
		id, _ := d.Headers[middleware.IDProperty].(string)
		dc, err := p.pub.PublishWithDeferredConfirmWithContext(context.Background(), out.Exchange, "", false, false, amqp.Publishing{
			ContentType:  rabbitmqpubsub.ContentType,
			DeliveryMode: mode,
			MessageId:    uuid.NewString(),
			Body:         resp,
			Headers:      amqp.Table{middleware.IDProperty: id},
		})
		if err != nil {
			logger.Error("RabbitMQ limit loop: publishing failed", err, nil)
			p.window.release()
			_ = d.Nack(false, true)
			return
		}
		// Never blocks: the slot taken above has room in pending.
		p.pending <- rabbitmqPending{dc: dc, in: d}
	}
}

// ack settles the requests in order. A run of requests whose responses
// are confirmed is acked with one multiple ack, once the next response's
// confirmation is not in yet (or none is queued); a request whose response
// the broker refused, or whose confirmation did not come in time, is
// nacked and requeued.
func (p *rabbitmqLimit) ack() {
	var run []amqp.Delivery
	flush := func() {
		if len(run) == 0 {
			return
		}
		_ = run[len(run)-1].Ack(true)
		for range run {
			p.window.release()
		}
		run = run[:0]
	}
	defer flush()
	var next *rabbitmqPending
	for {
		var pe rabbitmqPending
		if next != nil {
			pe, next = *next, nil
		} else {
			var ok bool
			if pe, ok = <-p.pending; !ok {
				return
			}
		}
		if !p.confirmed(pe.dc) {
			flush()
			_ = pe.in.Nack(false, true)
			p.window.release()
			continue
		}
		run = append(run, pe.in)
		select {
		case n, ok := <-p.pending:
			if !ok {
				return
			}
			select {
			case <-n.dc.Done():
			default:
				flush()
			}
			next = &n
		default:
			flush()
		}
	}
}

// confirmed waits for dc and reports whether the broker acked it.
func (p *rabbitmqLimit) confirmed(dc *amqp.DeferredConfirmation) bool {
	ctx, cancel := context.WithTimeout(context.Background(), rabbitmqTimeout)
	defer cancel()
	ok, err := dc.WaitContext(ctx)
	return err == nil && ok
}

// Stop cancels the consumer, lets the acker settle what the broker
// confirms, and closes the channels and the connection. Requests not acked
// go back to the queue with the connection.
func (p *rabbitmqLimit) Stop() error {
	p.once.Do(func() {
		close(p.done)
		_ = p.cons.Cancel(p.tag, false)
		p.worker.Wait()
		close(p.pending)
		p.acker.Wait()
		_ = p.pub.Close()
		_ = p.cons.Close()
		if err := p.conn.Close(); err != nil {
			p.err = fmt.Errorf("closing the connection: %w", err)
		}
	})
	return p.err
}

// PID is 0: the loop runs in this process.
func (p *rabbitmqLimit) PID() int { return 0 }
