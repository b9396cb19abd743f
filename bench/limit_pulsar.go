package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/switchyard-go/switchyard/middleware"
)

// pulsarLimit is the limit loop on Pulsar: pulsar-client-go alone, one
// consumer of the Shared subscription, a batching producer whose SendAsync
// callback acks the request (or nacks it when the send failed), at most
// spec.window requests unconfirmed. When no request is ready it flushes the
// producer's batch, so that responses do not wait for the batching delay.
type pulsarLimit struct {
	client   pulsar.Client
	producer pulsar.Producer
	consumer pulsar.Consumer
	window   slots
	flush    chan struct{} // asks the flusher to flush, capacity 1
	done     chan struct{}
	wg       sync.WaitGroup
	flusher  sync.WaitGroup
	once     sync.Once
}

func (h *pulsarHarness) newLimit(spec runSpec) (processor, error) {
	c, err := h.client()
	if err != nil {
		return nil, err
	}
	p := &pulsarLimit{client: c, window: newSlots(spec.window), flush: make(chan struct{}, 1), done: make(chan struct{})}
	// Batching with the library's defaults (10 ms, 1000 messages, 128 KB):
	// with the flush when idle, a 1 ms delay or no flush measured the same.
	p.producer, err = c.CreateProducer(pulsar.ProducerOptions{Topic: pulsarTopic(spec.out)})
	if err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("creating a producer for %s: %w", pulsarTopic(spec.out), err)
	}
	p.consumer, err = c.Subscribe(pulsar.ConsumerOptions{
		Topic:               pulsarTopic(spec.in),
		SubscriptionName:    spec.name,
		Type:                pulsar.Shared,
		NackRedeliveryDelay: time.Second,
	})
	if err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("subscribing to %s: %w", pulsarTopic(spec.in), err)
	}
	p.flusher.Add(1)
	go func() {
		defer p.flusher.Done()
		for range p.flush {
			// Flush waits for the receipts of what it sent; the loop goes
			// on meanwhile.
			_ = p.producer.FlushWithCtx(context.Background())
		}
	}()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.loop(h.logger)
	}()
	return p, nil
}

func (p *pulsarLimit) loop(logger watermill.LoggerAdapter) {
	ch := p.consumer.Chan()
	for {
		var cm pulsar.ConsumerMessage
		var ok bool
		select {
		case cm, ok = <-ch:
		default:
			if len(p.window) > 0 {
				select {
				case p.flush <- struct{}{}:
				default:
				}
			}
			select {
			case cm, ok = <-ch:
			case <-p.done:
				return
			}
		}
		if !ok {
			return
		}
		if !p.window.acquire(p.done) {
			return
		}
		resp, err := EchoPayload(cm.Payload())
		if err != nil {
			logger.Error("Pulsar limit loop: bad request", err, nil)
			_ = p.consumer.Ack(cm.Message)
			p.window.release()
			continue
		}
		in := cm.Message
		out := &pulsar.ProducerMessage{Payload: resp, Properties: map[string]string{middleware.IDProperty: in.Properties()[middleware.IDProperty]}}
		p.producer.SendAsync(context.Background(), out, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				p.consumer.Nack(in)
			} else {
				_ = p.consumer.Ack(in)
			}
			p.window.release()
		})
	}
}

// Stop ends the loop, waits for the receipts of the responses sent (the
// producer's Close does), then drops the subscription and closes the client.
func (p *pulsarLimit) Stop() error {
	p.once.Do(func() {
		close(p.done)
		p.wg.Wait()
		close(p.flush)
		p.flusher.Wait()
		if p.producer != nil {
			p.producer.Close()
		}
		if p.consumer != nil {
			// The queues of a run are used once: see pulsarRaw.Stop.
			_ = p.consumer.Unsubscribe()
			p.consumer.Close()
		}
		p.client.Close()
	})
	return nil
}

// PID is 0: the loop runs in this process.
func (p *pulsarLimit) PID() int { return 0 }
