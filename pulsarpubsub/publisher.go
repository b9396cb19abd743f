package pulsarpubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("pulsarpubsub: publisher is closed")

// maxListedFailures bounds how many failed messages a Publish error names one
// by one.
const maxListedFailures = 10

// Publisher publishes watermill messages to Pulsar topics. It is safe for
// concurrent use. It keeps one producer per topic, created on first use.
type Publisher struct {
	cfg       PublisherConfig
	client    pulsar.Client
	ownClient bool
	conn      *connInfo
	logger    watermill.LoggerAdapter

	// ctx ends when Close gives up waiting for Publish calls in flight; it
	// bounds sends blocked on a full producer queue.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	producers map[string]*producerEntry
	inflight  sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// producerEntry is the producer of one topic; ready is closed once producer
// or err is set.
type producerEntry struct {
	ready    chan struct{}
	producer pulsar.Producer
	err      error
	// name is the producer's name, read once at creation: the client
	// library rewrites it, unsynchronised, whenever the producer reconnects.
	name string
}

// NewPublisher returns a Publisher configured by config. It does not connect
// yet: the producer of a topic is created by the first Publish to it.
func NewPublisher(config PublisherConfig, logger watermill.LoggerAdapter) (*Publisher, error) {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	p := &Publisher{
		cfg:       config,
		client:    config.Client,
		logger:    logger,
		producers: map[string]*producerEntry{},
	}
	if p.client == nil {
		client, conn, err := newClient(config.ClientConfig, logger)
		if err != nil {
			return nil, err
		}
		p.client, p.conn, p.ownClient = client, conn, true
	} else {
		p.conn = infoOf(p.client)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// Publish sends msgs to topic, a queue name in any form TopicName accepts,
// and returns when the broker has acknowledged all of them. Messages are
// handed to the producer one after the other, so they are stored in order.
// The error names every message (index and UUID) that failed. An error that
// retrying cannot fix (an invalid topic name, a topic that does not exist and
// cannot be created, a message over the broker's size limit, no permission)
// wraps a *PermanentError.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPublisherClosed
	}
	p.inflight.Add(1)
	p.mu.Unlock()
	defer p.inflight.Done()

	name, err := TopicName(topic)
	if err != nil {
		return fmt.Errorf("pulsarpubsub: publishing: %w", &PermanentError{Err: err})
	}
	if len(msgs) == 0 {
		return nil
	}
	producer, err := p.producer(name)
	if err != nil {
		return err
	}
	failures := p.send(producer, msgs)
	if len(failures) == 0 {
		return nil
	}
	for i := range failures {
		failures[i].err = markPermanent(failures[i].err)
	}
	for _, f := range failures {
		if errors.Is(f.err, pulsar.ErrProducerClosed) || errors.Is(f.err, pulsar.ErrTopicNotfound) ||
			errors.Is(f.err, pulsar.ErrTopicTerminated) || errors.Is(f.err, pulsar.ErrProducerFenced) {
			p.forget(name, producer)
			break
		}
	}
	return publishError(name, msgs, failures)
}

type sendFailure struct {
	index int
	err   error
}

// send hands every message to the producer and waits for all broker
// acknowledgements. The last message is sent with an immediate flush, so the
// batch holding the others goes out at once instead of after the batching
// delay.
func (p *Publisher) send(producer pulsar.Producer, msgs []*message.Message) []sendFailure {
	type result struct {
		index int
		err   error
	}
	results := make(chan result, len(msgs))
	last := len(msgs) - 1
	for i, msg := range msgs[:last] {
		producer.SendAsync(p.ctx, producerMessage(msg, p.cfg.MessageKeyMetadata),
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				results <- result{i, err}
			})
	}
	_, lastErr := producer.Send(p.ctx, producerMessage(msgs[last], p.cfg.MessageKeyMetadata))
	var failures []sendFailure
	if lastErr != nil {
		failures = append(failures, sendFailure{last, lastErr})
	}
	for range last {
		r := <-results
		if r.err != nil {
			failures = append(failures, sendFailure{r.index, r.err})
		}
	}
	return failures
}

// publishError describes the failed messages of one Publish call.
func publishError(topic string, msgs []*message.Message, failures []sendFailure) error {
	if len(failures) == 1 {
		f := failures[0]
		return fmt.Errorf("pulsarpubsub: publishing message %d (uuid %s) of %d to %s: %w",
			f.index, msgs[f.index].UUID, len(msgs), topic, f.err)
	}
	sortFailures(failures)
	errs := make([]error, 0, maxListedFailures+1)
	for i, f := range failures {
		if i == maxListedFailures {
			errs = append(errs, fmt.Errorf("and %d more", len(failures)-maxListedFailures))
			break
		}
		errs = append(errs, fmt.Errorf("message %d (uuid %s): %w", f.index, msgs[f.index].UUID, f.err))
	}
	return fmt.Errorf("pulsarpubsub: publishing %d of %d messages to %s failed: %w",
		len(failures), len(msgs), topic, errors.Join(errs...))
}

func sortFailures(f []sendFailure) {
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].index < f[j-1].index; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

// producer returns the producer of topic, creating it on first use. Callers
// wanting the same topic at the same time wait for one creation.
func (p *Publisher) producer(topic string) (pulsar.Producer, error) {
	p.mu.Lock()
	e, ok := p.producers[topic]
	if ok {
		p.mu.Unlock()
		<-e.ready
		if e.err != nil {
			return nil, e.err
		}
		return e.producer, nil
	}
	e = &producerEntry{ready: make(chan struct{})}
	p.producers[topic] = e
	p.mu.Unlock()

	started := time.Now()
	hook, interval, limit := p.conn.slowHook(p.cfg.ClientConfig)
	stopWatch := slowWatch(hook, interval, limit)
	e.producer, e.err = p.client.CreateProducer(p.producerOptions(topic))
	stopWatch()
	if e.err == nil {
		e.name = e.producer.Name()
	}
	if e.err != nil {
		e.err = fmt.Errorf("pulsarpubsub: creating producer for %s: %w", topic, p.conn.describe(markPermanent(e.err), started))
		p.mu.Lock()
		if p.producers[topic] == e {
			delete(p.producers, topic)
		}
		p.mu.Unlock()
	}
	close(e.ready)
	return e.producer, e.err
}

// forget drops a producer that can no longer send, so that the next Publish
// creates a new one.
func (p *Publisher) forget(topic string, producer pulsar.Producer) {
	p.mu.Lock()
	e, ok := p.producers[topic]
	if !ok || e.producer != producer {
		p.mu.Unlock()
		return
	}
	delete(p.producers, topic)
	p.mu.Unlock()
	producer.Close()
}

func (p *Publisher) producerOptions(topic string) pulsar.ProducerOptions {
	c := p.cfg
	opts := pulsar.ProducerOptions{
		Topic:                   topic,
		SendTimeout:             c.SendTimeout,
		MaxPendingMessages:      c.MaxPendingMessages,
		DisableBatching:         c.DisableBatching,
		BatchingMaxPublishDelay: c.BatchingMaxPublishDelay,
		BatchingMaxMessages:     c.BatchingMaxMessages,
		BatchingMaxSize:         c.BatchingMaxSize,
		EnableChunking:          c.EnableChunking,
		ChunkMaxMessageSize:     c.ChunkMaxMessageSize,
		CompressionType:         c.CompressionType,
		BackOffPolicyFunc:       newBackoffFunc(c.ReconnectMaxBackoff),
	}
	if c.ProducerName != "" {
		opts.Name = c.ProducerName + "-" + watermill.NewShortUUID()
	}
	if c.MessageKeyMetadata != "" && !c.DisableBatching {
		// A batch goes to the consumer of its key: batch per key so that
		// key_shared subscriptions keep every key on one consumer.
		opts.BatcherBuilderType = pulsar.KeyBasedBatchBuilder
	}
	return opts
}

// Health returns nil while every producer of the publisher is connected to
// the broker, and otherwise an error that names the topic of a producer
// without a connection, since when, and why. A publisher that has not
// published yet has no producer and is healthy. The client library
// reconnects producers on its own; Health only reports. On a client not
// made by this package (PublisherConfig.Client not from NewClient) it
// cannot tell and returns nil. After Close it returns ErrPublisherClosed.
func (p *Publisher) Health() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPublisherClosed
	}
	names := make(map[string]bool, len(p.producers))
	for _, e := range p.producers {
		select {
		case <-e.ready:
			if e.producer != nil {
				names[e.name] = true
			}
		default:
		}
	}
	p.mu.Unlock()
	return p.conn.health(producerLink, names, "producer")
}

// Close waits (up to CloseTimeout) for Publish calls in flight, flushes and
// closes every producer, and closes the client if the publisher made it.
// Closing twice is harmless.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()

		deadline := time.Now().Add(p.cfg.CloseTimeout)
		if !waitTimeout(&p.inflight, p.cfg.CloseTimeout) {
			p.closeErr = fmt.Errorf("pulsarpubsub: closing publisher: Publish calls still waiting after %s", p.cfg.CloseTimeout)
			p.cancel()
		}

		p.mu.Lock()
		entries := p.producers
		p.producers = map[string]*producerEntry{}
		p.mu.Unlock()

		var errs []error
		if p.closeErr != nil {
			errs = append(errs, p.closeErr)
		}
		for topic, e := range entries {
			<-e.ready
			if e.producer == nil {
				continue
			}
			ctx, cancel := context.WithDeadline(p.ctx, deadline)
			if err := e.producer.FlushWithCtx(ctx); err != nil {
				errs = append(errs, fmt.Errorf("pulsarpubsub: flushing producer of %s: %w", topic, err))
			}
			cancel()
			e.producer.Close()
		}
		p.cancel()
		if p.ownClient {
			p.client.Close()
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// waitTimeout waits for wg up to d and reports whether it finished. On a
// timeout the helper goroutine ends when wg does.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
