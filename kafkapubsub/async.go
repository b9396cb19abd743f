package kafkapubsub

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxCachedSpecs caps the queue names whose Kafka topic PublishAsync
// remembers.
const maxCachedSpecs = 1024

// PublishAsync hands msg to the producer of topic (created first if it does
// not exist, which the first call for a topic waits for) and returns without
// waiting for the broker's confirmation. It blocks while the producer holds
// its maximum of buffered records (franz-go's MaxBufferedRecords): that is
// the backpressure.
//
// done is called exactly once, possibly before PublishAsync returns: with
// nil once the broker confirmed msg, or with the error Publish would have
// returned for it, a *PermanentError when retrying cannot help (an invalid
// queue name, a message too large, an authorization failure). done is called
// from the producer's promise goroutine, one record after the other, so it
// must return quickly and must not publish synchronously.
//
// Messages given to PublishAsync for one topic are stored in the order of
// the calls: every topic has one partition, and the producers keep the order
// of a partition (idempotent ones by sequence numbers, the others with one
// request in flight). The producers do not linger (ProducerLinger 0): a
// record is sent as soon as no request to its broker is in flight, so there
// is nothing to flush by hand. Close waits for every outstanding record, or
// fails it: done is always called.
func (p *Publisher) PublishAsync(topic string, msg *message.Message, done func(error)) {
	spec, err := p.spec(topic)
	if err != nil {
		done(err)
		return
	}
	p.mu.Lock()
	cl, err := p.clientLocked(spec)
	if err != nil {
		p.mu.Unlock()
		done(err)
		return
	}
	p.senders.Add(1)
	p.mu.Unlock()
	defer p.senders.Done()
	if err := p.topics.ensure(context.Background(), spec); err != nil {
		done(err)
		return
	}
	ar := &asyncRecord{Context: context.Background(), msg: msg, done: done}
	fillRecord(&ar.rec, spec.name, msg)
	ar.rec.Context = ar
	cl.Produce(ar, &ar.rec, asyncPromise)
}

// asyncRecord is a record of PublishAsync with what its promise needs. It
// is the record's Context, which is how the promise finds it: one allocation
// per message for the record, its context and its promise. As a context it
// is context.Background (the record is never cancelled).
type asyncRecord struct {
	context.Context
	rec  kgo.Record
	msg  *message.Message
	done func(error)
}

// asyncPromise is the promise of every PublishAsync record.
func asyncPromise(r *kgo.Record, err error) {
	ar := r.Context.(*asyncRecord)
	if err != nil {
		err = classify(fmt.Sprintf("publishing message 1 of 1 (uuid %s) to %s", ar.msg.UUID, r.Topic), err)
	}
	ar.done(err)
}

// spec is parseTopic for queue names seen before, without parsing them again.
func (p *Publisher) spec(topic string) (topicSpec, error) {
	p.specsMu.RLock()
	spec, ok := p.specs[topic]
	p.specsMu.RUnlock()
	if ok {
		return spec, nil
	}
	spec, err := parseTopic(topic)
	if err != nil {
		return topicSpec{}, err
	}
	p.specsMu.Lock()
	if len(p.specs) < maxCachedSpecs {
		p.specs[topic] = spec
	}
	p.specsMu.Unlock()
	return spec, nil
}
