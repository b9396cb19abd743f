package pulsarpubsub

import (
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"
)

// maxCachedNames bounds the topic names PublishAsync remembers the Pulsar
// topic of; names beyond it are mapped on every call.
const maxCachedNames = 1024

// maxReusedProperties is the largest property map a recycled message keeps.
const maxReusedProperties = 64

// States of producerEntry.flush.
const (
	flushIdle int32 = iota
	flushRunning
	flushAgain
)

// errClosedUnconfirmed is the cause given to the done functions of the
// messages that Close found unconfirmed.
var errClosedUnconfirmed = fmt.Errorf("closed before the broker confirmed it: %w", ErrPublisherClosed)

// asyncSend is one message given to PublishAsync, from its hand-over to the
// producer until done is called. It is linked in the list of its producer
// entry meanwhile, so that Close (or dropping a broken producer) can fail
// the messages the client library will never report on. Nodes, with their
// property maps, are recycled once the client library reported on them.
type asyncSend struct {
	p    *Publisher
	e    *producerEntry
	uuid string
	done func(error)
	pm   pulsar.ProducerMessage
	// cb is complete, bound once per node.
	cb func(pulsar.MessageID, *pulsar.ProducerMessage, error)

	prev, next *asyncSend
	listed     bool
}

// asyncSends holds recycled nodes.
var asyncSends sync.Pool

// newAsyncSend returns a recycled node or a new one.
func newAsyncSend() *asyncSend {
	if n, ok := asyncSends.Get().(*asyncSend); ok {
		return n
	}
	n := &asyncSend{}
	n.cb = n.complete
	return n
}

// PublishAsync hands msg to the producer of topic, a queue name in any form
// TopicName accepts, and returns without waiting for the broker's
// confirmation. It blocks while the producer's queue of unconfirmed messages
// is full (PublisherConfig.MaxPendingMessages), and while the topic's
// producer is created on first use.
//
// done is called exactly once, from any goroutine and possibly before
// PublishAsync returns: with nil once the broker confirmed msg, or with an
// error that names the topic and the message's UUID. As for Publish, an
// error that retrying cannot fix (an invalid topic name, a message over the
// broker's size limit, a topic that cannot be created, no permission) wraps
// a *PermanentError; after Close it is ErrPublisherClosed. done must not
// block: it may run on the client library's connection goroutine. A nil
// done drops the result.
//
// Messages given to PublishAsync for one topic are stored in the order of
// the calls. With batching on, the client library holds messages back for
// up to BatchingMaxPublishDelay to fill a batch; FlushBatches sends them at
// once. Close waits for the outstanding messages (see Close).
func (p *Publisher) PublishAsync(topic string, msg *message.Message, done func(error)) {
	if done == nil {
		done = ignoreResult
	}
	e, err := p.asyncProducer(topic)
	if err != nil {
		done(err)
		return
	}
	n := newAsyncSend()
	n.p, n.e, n.uuid, n.done = p, e, msg.UUID, done
	fillProducerMessage(&n.pm, msg, p.cfg.MessageKeyMetadata, p.cfg.OmitUUID)
	e.mu.Lock()
	e.link(n)
	e.mu.Unlock()
	// n may be recycled as soon as the client library reported on it: it
	// is not used after this call.
	e.producer.SendAsync(p.ctx, &n.pm, n.cb)
	p.handing.Done()

	if e.forgotten.Load() {
		// The producer was found broken meanwhile: it may have dropped
		// the message without a report.
		p.failOutstanding(e, pulsar.ErrProducerClosed)
		return
	}
	if p.cfg.DisableBatching {
		return
	}
	if p.closing.Load() {
		p.startFlush(e)
		return
	}
	if !e.unflushed.Load() && e.unflushed.CompareAndSwap(false, true) {
		p.unflushedMu.Lock()
		p.unflushed = append(p.unflushed, e)
		p.anyUnflushed.Store(true)
		p.unflushedMu.Unlock()
	}
}

// ignoreResult is the done function of a PublishAsync call given none.
func ignoreResult(error) {}

// asyncProducer returns the producer entry of topic for one PublishAsync
// call, counted in inflight (until done) and handing (until the hand-over).
// Its errors are final: inflight is not counted then.
func (p *Publisher) asyncProducer(topic string) (*producerEntry, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPublisherClosed
	}
	name, ok := p.names[topic]
	if !ok {
		var err error
		name, err = TopicName(topic)
		if err != nil {
			p.mu.Unlock()
			return nil, fmt.Errorf("pulsarpubsub: publishing: %w", &PermanentError{Err: err})
		}
		if len(p.names) < maxCachedNames {
			p.names[topic] = name
		}
	}
	p.inflight.Add(1)
	p.handing.Add(1)
	e := p.producers[name]
	p.mu.Unlock()
	if e != nil {
		select {
		case <-e.ready:
			if e.err == nil {
				return e, nil
			}
		default:
		}
	}
	e, err := p.producer(name)
	if err != nil {
		p.handing.Done()
		p.inflight.Done()
		return nil, err
	}
	return e, nil
}

// complete is the client library's report on n.
func (n *asyncSend) complete(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
	e := n.e
	e.mu.Lock()
	if !n.listed {
		// Failed already by Close or by dropping a broken producer.
		e.mu.Unlock()
		return
	}
	e.unlink(n)
	e.mu.Unlock()
	p, uuid, done := n.p, n.uuid, n.done
	n.p, n.e, n.uuid, n.done = nil, nil, "", nil
	n.pm.Payload, n.pm.Key = nil, ""
	if len(n.pm.Properties) > maxReusedProperties {
		n.pm.Properties = nil
	}
	asyncSends.Put(n)

	if err != nil {
		err = markPermanent(err)
		if producerBroken(err) {
			p.forgetAsync(e, err)
		}
		err = fmt.Errorf("pulsarpubsub: publishing message (uuid %s) to %s: %w", uuid, e.topic, err)
	}
	done(err)
	p.inflight.Done()
}

// failOutstanding calls done, with an error wrapping cause, for every
// message handed to the producer of e that the client library has not
// reported on. Nodes failed here are not recycled: the library may still
// report on them, and complete then ignores the report.
func (p *Publisher) failOutstanding(e *producerEntry, cause error) {
	e.mu.Lock()
	n := e.head
	for m := n; m != nil; m = m.next {
		m.listed = false
	}
	e.head, e.tail = nil, nil
	e.mu.Unlock()
	for n != nil {
		next := n.next
		n.prev, n.next = nil, nil
		n.done(fmt.Errorf("pulsarpubsub: publishing message (uuid %s) to %s: %w", n.uuid, e.topic, cause))
		p.inflight.Done()
		n = next
	}
}

// forgetAsync drops the broken producer of e on a goroutine of its own: the
// client library reports on messages from goroutines that closing the
// producer would wait for.
func (p *Publisher) forgetAsync(e *producerEntry, cause error) {
	if !e.forgotten.CompareAndSwap(false, true) {
		return
	}
	p.mu.Lock()
	if p.bgStopped {
		// Close takes the producer and fails its messages.
		p.mu.Unlock()
		return
	}
	p.background.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.background.Done()
		p.forget(e, cause)
	}()
}

// link appends n to the list of e; e.mu is held.
func (e *producerEntry) link(n *asyncSend) {
	n.listed = true
	n.prev, n.next = e.tail, nil
	if e.tail == nil {
		e.head = n
	} else {
		e.tail.next = n
	}
	e.tail = n
}

// unlink removes n from the list of e; e.mu is held.
func (e *producerEntry) unlink(n *asyncSend) {
	if n.prev == nil {
		e.head = n.next
	} else {
		n.prev.next = n.next
	}
	if n.next == nil {
		e.tail = n.prev
	} else {
		n.next.prev = n.prev
	}
	n.prev, n.next, n.listed = nil, nil, false
}

// FlushBatches starts sending at once the messages that the producers hold
// back for batching (up to PublisherConfig.BatchingMaxPublishDelay), for
// every producer that PublishAsync handed messages to since its last flush,
// without waiting for their confirmation. A caller that pipelines
// PublishAsync calls calls it when it has nothing more to publish for now,
// so that the last messages do not wait for the batching delay. It costs an
// atomic load when there is nothing to flush, and is safe for concurrent
// use. Each producer has at most one flush running; a request while one
// runs makes it flush once more when it is done.
func (p *Publisher) FlushBatches() {
	if !p.anyUnflushed.Load() {
		return
	}
	p.unflushedMu.Lock()
	list := p.unflushed
	p.unflushed, p.spare = p.spare[:0], nil
	p.anyUnflushed.Store(false)
	p.unflushedMu.Unlock()
	for i, e := range list {
		e.unflushed.Store(false)
		p.startFlush(e)
		list[i] = nil
	}
	p.unflushedMu.Lock()
	if p.spare == nil {
		p.spare = list[:0]
	}
	p.unflushedMu.Unlock()
}

// startFlush makes the producer of e flush, on a goroutine of its own, or
// once more when that goroutine is flushing already.
func (p *Publisher) startFlush(e *producerEntry) {
	for {
		switch e.flush.Load() {
		case flushIdle:
			if !e.flush.CompareAndSwap(flushIdle, flushRunning) {
				continue
			}
			p.mu.Lock()
			if p.bgStopped {
				// Close flushes every producer itself.
				p.mu.Unlock()
				e.flush.Store(flushIdle)
				return
			}
			p.background.Add(1)
			p.mu.Unlock()
			go p.flushLoop(e)
			return
		case flushRunning:
			if e.flush.CompareAndSwap(flushRunning, flushAgain) {
				return
			}
		default:
			return
		}
	}
}

// flushLoop flushes the producer of e until no flush was asked for while it
// flushed. A flush returns once the broker confirmed what it sent, or when
// Close gave up waiting (p.ctx).
func (p *Publisher) flushLoop(e *producerEntry) {
	defer p.background.Done()
	for {
		if err := e.producer.FlushWithCtx(p.ctx); err != nil && p.ctx.Err() == nil {
			p.logger.Debug("Flushing a producer failed", watermill.LogFields{"topic": e.topic, "error": err.Error()})
		}
		if e.flush.CompareAndSwap(flushRunning, flushIdle) {
			return
		}
		e.flush.Store(flushRunning)
	}
}
