package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// pulsarTimeout bounds creating a client, producer or consumer.
const pulsarTimeout = 30 * time.Second

// pulsarHarness runs against a Pulsar broker. The load client and the raw
// loop use pulsar-client-go directly, with the options the switchyard
// adapter uses: batching producers with the library's defaults (a publish
// waits for the broker's receipt and flushes its batch at once), and one
// consumer of the Shared subscription per concurrency slot, each with the
// default receiver queue.
type pulsarHarness struct {
	url    string
	token  string
	logger watermill.LoggerAdapter
	python pythonSettings

	mu    sync.Mutex
	specs []runSpec // runs whose processor leaves its subscriptions
}

// close drops the subscriptions that the processors of its runs leave on
// the broker (a router never unsubscribes, nor does the Python processor),
// so that the broker deletes the topics and what they stored: at tens of
// thousands of messages a second a run writes gigabytes, and a topic with a
// subscription keeps its current ledger however long it is idle. The limit
// and raw-sync loops and the load client drop their own.
func (h *pulsarHarness) close() error {
	h.mu.Lock()
	specs := h.specs
	h.specs = nil
	h.mu.Unlock()
	if len(specs) == 0 {
		return nil
	}
	c, err := h.client()
	if err != nil {
		return fmt.Errorf("dropping the benchmark subscriptions: %w", err)
	}
	defer c.Close()
	for _, s := range specs {
		for _, sub := range []struct {
			topic schema.Topic
			name  string
		}{{s.in, s.name}, {router.PoisonTopic(s.in), router.PoisonSubscription}} {
			if err := pulsarUnsubscribe(c, pulsarTopic(sub.topic), sub.name); err != nil {
				return fmt.Errorf("dropping the subscription %s of %s: %w", sub.name, pulsarTopic(sub.topic), err)
			}
		}
	}
	return nil
}

// pulsarUnsubscribe removes subscription from topic.
func pulsarUnsubscribe(c pulsar.Client, topic, subscription string) error {
	consumer, err := c.Subscribe(pulsar.ConsumerOptions{
		Topic:             topic,
		SubscriptionName:  subscription,
		Type:              pulsar.Shared,
		ReceiverQueueSize: 1,
	})
	if err != nil {
		return err
	}
	defer consumer.Close()
	return consumer.Unsubscribe()
}

// pulsarTopic is the Pulsar topic of a queue.
func pulsarTopic(t schema.Topic) string {
	kind := "persistent"
	if !t.QoS.Persistent() {
		kind = "non-persistent"
	}
	return kind + "://" + t.Tenant + "/" + t.Namespace + "/" + t.Queue
}

func (h *pulsarHarness) client() (pulsar.Client, error) {
	opts := pulsar.ClientOptions{
		URL:               h.url,
		ConnectionTimeout: pulsarTimeout,
		OperationTimeout:  pulsarTimeout,
		Logger:            plog.DefaultNopLogger(),
	}
	if h.token != "" {
		opts.Authentication = pulsar.NewAuthenticationToken(h.token)
	}
	return pulsar.NewClient(opts)
}

func (h *pulsarHarness) newLoad(_ context.Context, spec runSpec, fn responseFunc) (loadClient, error) {
	if spec.variant != VariantLimit && spec.variant != VariantRawSync {
		h.mu.Lock()
		h.specs = append(h.specs, spec)
		h.mu.Unlock()
	}
	c, err := h.client()
	if err != nil {
		return nil, err
	}
	consumer, err := c.Subscribe(pulsar.ConsumerOptions{
		Topic:            pulsarTopic(spec.out),
		SubscriptionName: spec.name + "-counter",
		Type:             pulsar.Exclusive,
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribing to %s: %w", pulsarTopic(spec.out), err)
	}
	producer, err := c.CreateProducer(pulsar.ProducerOptions{Topic: pulsarTopic(spec.in)})
	if err != nil {
		consumer.Close()
		c.Close()
		return nil, fmt.Errorf("creating a producer for %s: %w", pulsarTopic(spec.in), err)
	}
	l := &pulsarLoad{client: c, producer: producer, consumer: consumer, done: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ch := consumer.Chan()
		for {
			select {
			case cm, ok := <-ch:
				if !ok {
					return
				}
				fn(cm.Properties()[middleware.IDProperty], cm.Payload())
				_ = consumer.Ack(cm.Message)
			case <-l.done:
				return
			}
		}
	}()
	return l, nil
}

type pulsarLoad struct {
	client   pulsar.Client
	producer pulsar.Producer
	consumer pulsar.Consumer
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once

	mu  sync.Mutex
	err error // first asynchronous send failure
}

// Publish sends one request; with flush it waits for the broker's receipt.
func (l *pulsarLoad) Publish(id string, payload []byte, flush bool) error {
	msg := &pulsar.ProducerMessage{Payload: payload, Properties: map[string]string{middleware.IDProperty: id}}
	if flush {
		_, err := l.producer.Send(context.Background(), msg)
		return err
	}
	l.mu.Lock()
	err := l.err
	l.mu.Unlock()
	if err != nil {
		return err
	}
	l.producer.SendAsync(context.Background(), msg, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
		if err != nil {
			l.mu.Lock()
			if l.err == nil {
				l.err = err
			}
			l.mu.Unlock()
		}
	})
	return nil
}

// Close ends the counter and closes the producer, consumer and client.
func (l *pulsarLoad) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.wg.Wait()
		l.producer.Close()
		_ = l.consumer.Unsubscribe()
		l.consumer.Close()
		l.client.Close()
	})
	return nil
}

func (h *pulsarHarness) newProcessor(ctx context.Context, spec runSpec) (processor, error) {
	switch {
	case spec.variant == VariantLimit:
		return h.newLimit(spec)
	case isSwitchyard(spec.variant):
		cfg := backend.Config{Name: backend.Pulsar, ClientName: spec.name}
		cfg.Pulsar.URL, cfg.Pulsar.Token = h.url, h.token
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
	case spec.variant == VariantPython:
		return startPython(ctx, h.python, spec, h.url, h.token)
	default:
		return h.newRaw(spec)
	}
}

// pulsarRaw is the raw-sync variant on Pulsar: pulsar-client-go alone. Each of
// spec.concurrency workers has its own consumer on the Shared subscription
// and handles one message at a time: decode, work, Send (which waits for
// the broker's receipt), then Ack.
type pulsarRaw struct {
	client    pulsar.Client
	producer  pulsar.Producer
	consumers []pulsar.Consumer
	done      chan struct{}
	wg        sync.WaitGroup
	once      sync.Once
}

func (h *pulsarHarness) newRaw(spec runSpec) (processor, error) {
	c, err := h.client()
	if err != nil {
		return nil, err
	}
	p := &pulsarRaw{client: c, done: make(chan struct{})}
	p.producer, err = c.CreateProducer(pulsar.ProducerOptions{Topic: pulsarTopic(spec.out)})
	if err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("creating a producer for %s: %w", pulsarTopic(spec.out), err)
	}
	for i := 0; i < spec.concurrency; i++ {
		consumer, err := c.Subscribe(pulsar.ConsumerOptions{
			Topic:               pulsarTopic(spec.in),
			SubscriptionName:    spec.name,
			Type:                pulsar.Shared,
			NackRedeliveryDelay: time.Second,
		})
		if err != nil {
			_ = p.Stop()
			return nil, fmt.Errorf("subscribing to %s: %w", pulsarTopic(spec.in), err)
		}
		p.consumers = append(p.consumers, consumer)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.work(consumer, h.logger)
		}()
	}
	return p, nil
}

func (p *pulsarRaw) work(consumer pulsar.Consumer, logger watermill.LoggerAdapter) {
	ch := consumer.Chan()
	for {
		var cm pulsar.ConsumerMessage
		var ok bool
		select {
		case cm, ok = <-ch:
			if !ok {
				return
			}
		case <-p.done:
			return
		}
		resp, err := EchoPayload(cm.Payload())
		if err != nil {
			logger.Error("raw Pulsar processor: bad request", err, nil)
			_ = consumer.Ack(cm.Message)
			continue
		}
		out := &pulsar.ProducerMessage{Payload: resp, Properties: map[string]string{middleware.IDProperty: cm.Properties()[middleware.IDProperty]}}
		if _, err := p.producer.Send(context.Background(), out); err != nil {
			consumer.Nack(cm.Message)
			continue
		}
		_ = consumer.Ack(cm.Message)
	}
}

// Stop ends the workers and closes the consumers, producer and client.
func (p *pulsarRaw) Stop() error {
	p.once.Do(func() {
		close(p.done)
		p.wg.Wait()
		// The queues of a run are used once: drop the subscription (which
		// needs its other consumers gone first) so the broker can delete
		// the topic when it is inactive.
		for i, c := range p.consumers {
			if i == len(p.consumers)-1 {
				_ = c.Unsubscribe()
			}
			c.Close()
		}
		if p.producer != nil {
			p.producer.Close()
		}
		p.client.Close()
	})
	return nil
}

// PID is 0: the raw loop runs in this process.
func (p *pulsarRaw) PID() int { return 0 }
