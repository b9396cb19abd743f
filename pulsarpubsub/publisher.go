package pulsarpubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"
)

// ErrPublisherClosed is returned by Publish after Close, and passed to the
// done function of PublishAsync after Close or, wrapped, when Close gave up
// waiting for the broker's confirmation.
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
	// names caches TopicName for the topics given to PublishAsync, up to
	// maxCachedNames of them.
	names map[string]string
	// inflight counts Publish calls, and PublishAsync messages until their
	// done function returned.
	inflight sync.WaitGroup
	// handing counts PublishAsync calls until the message is handed to the
	// producer; Close closes no producer before they are done.
	handing sync.WaitGroup
	// closing is set by Close; PublishAsync calls still handing a message
	// over then flush it at once.
	closing atomic.Bool
	// background counts the goroutines that flush producers or drop
	// broken ones; bgStopped, set by Close under mu, lets no new one start.
	background sync.WaitGroup
	bgStopped  bool

	// unflushed lists the producers that were handed messages by
	// PublishAsync since their last flush; anyUnflushed tells FlushBatches
	// without a lock whether it is empty. spare is a slice to reuse for it.
	unflushedMu  sync.Mutex
	unflushed    []*producerEntry
	spare        []*producerEntry
	anyUnflushed atomic.Bool

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
	name  string
	topic string

	// The rest serves PublishAsync (see async.go).

	// mu guards the list of messages handed over and not yet confirmed.
	mu         sync.Mutex
	head, tail *asyncSend
	// unflushed is set while the entry is in Publisher.unflushed.
	unflushed atomic.Bool
	// flush is flushIdle, flushRunning or flushAgain.
	flush atomic.Int32
	// forgotten is set once the producer was found broken and is dropped.
	forgotten atomic.Bool
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
		names:     map[string]string{},
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
	e, err := p.producer(name)
	if err != nil {
		return err
	}
	failures := p.send(e.producer, msgs)
	if len(failures) == 0 {
		return nil
	}
	for i := range failures {
		failures[i].err = markPermanent(failures[i].err)
	}
	for _, f := range failures {
		if producerBroken(f.err) {
			if e.forgotten.CompareAndSwap(false, true) {
				p.forget(e, f.err)
			}
			break
		}
	}
	return publishError(name, msgs, failures)
}

// producerBroken reports whether err says that the producer can no longer
// send, so that a new one must be created.
func producerBroken(err error) bool {
	return errors.Is(err, pulsar.ErrProducerClosed) || errors.Is(err, pulsar.ErrTopicNotfound) ||
		errors.Is(err, pulsar.ErrTopicTerminated) || errors.Is(err, pulsar.ErrProducerFenced)
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
		producer.SendAsync(p.ctx, producerMessage(msg, p.cfg.MessageKeyMetadata, p.cfg.OmitUUID),
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				results <- result{i, err}
			})
	}
	_, lastErr := producer.Send(p.ctx, producerMessage(msgs[last], p.cfg.MessageKeyMetadata, p.cfg.OmitUUID))
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

// producer returns the entry of the producer of topic, creating the producer
// on first use. Callers wanting the same topic at the same time wait for one
// creation.
func (p *Publisher) producer(topic string) (*producerEntry, error) {
	p.mu.Lock()
	e, ok := p.producers[topic]
	if ok {
		p.mu.Unlock()
		<-e.ready
		if e.err != nil {
			return nil, e.err
		}
		return e, nil
	}
	e = &producerEntry{ready: make(chan struct{}), topic: topic}
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
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// forget drops the producer of e, which can no longer send, so that the next
// Publish creates a new one, and fails the messages PublishAsync handed to it
// that are still waiting, with cause: a producer the client library closed
// on its own never confirms or fails the messages it held back. The caller
// sets e.forgotten first. Nothing happens when Close took the producer
// already.
func (p *Publisher) forget(e *producerEntry, cause error) {
	p.mu.Lock()
	if p.producers[e.topic] != e {
		p.mu.Unlock()
		return
	}
	delete(p.producers, e.topic)
	p.mu.Unlock()
	e.producer.Close()
	p.failOutstanding(e, cause)
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

// Close waits (up to CloseTimeout) for Publish calls in flight and for the
// broker to confirm the messages given to PublishAsync, flushes and closes
// every producer, and closes the client if the publisher made it. The done
// function of every PublishAsync call has been called when Close returns:
// messages still unconfirmed after CloseTimeout get an error that wraps
// ErrPublisherClosed. Closing twice is harmless.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.closing.Store(true)
		entries := make([]*producerEntry, 0, len(p.producers))
		for _, e := range p.producers {
			entries = append(entries, e)
		}
		p.mu.Unlock()

		// Messages held back for batching go out now rather than after
		// the batching delay; calls still handing messages over flush
		// their own (closing is set).
		for _, e := range entries {
			select {
			case <-e.ready:
				if e.producer != nil && !p.cfg.DisableBatching {
					p.startFlush(e)
				}
			default:
			}
		}

		deadline := time.Now().Add(p.cfg.CloseTimeout)
		if !waitTimeout(&p.inflight, p.cfg.CloseTimeout) {
			p.closeErr = fmt.Errorf("pulsarpubsub: closing publisher: Publish calls or unconfirmed messages still waiting after %s", p.cfg.CloseTimeout)
			p.cancel()
		}
		// With p.ctx cancelled, a call blocked on a full producer queue
		// gives up at once; no producer may close while a call hands it a
		// message.
		p.handing.Wait()
		p.mu.Lock()
		p.bgStopped = true
		taken := p.producers
		p.producers = map[string]*producerEntry{}
		p.mu.Unlock()
		// Flushes end once the broker confirmed what they sent, which
		// all messages were if inflight ended; otherwise p.ctx ends them.
		if !waitTimeout(&p.background, time.Until(deadline)) {
			p.cancel()
			p.background.Wait()
		}

		var errs []error
		if p.closeErr != nil {
			errs = append(errs, p.closeErr)
		}
		for topic, e := range taken {
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
			p.failOutstanding(e, errClosedUnconfirmed)
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
