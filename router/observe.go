package router

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/middleware"
)

// Observer receives timings from a running router, for metrics. Its methods
// are called on the message path, concurrently: they must be cheap and safe
// for concurrent use. Counts are in Stats; an Observer sees durations.
type Observer interface {
	// Handled is called after each message a handler took, with the
	// handler's input queue and the time from receiving the message to the
	// end of its handling (outputs published).
	Handled(handler, input string, took time.Duration)
	// Published is called after each publish call of a handler's outputs,
	// with how many messages it carried and how long the broker took to
	// confirm them; err is the publish error, if any.
	Published(handler, topic string, messages int, took time.Duration, err error)
}

// Observe sets the router's observer. Call it before Run.
func (r *Router) Observe(o Observer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observer = o
}

// timedHandler reports each call of h to o.
func timedHandler(name, input string, o Observer, h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		start := time.Now()
		out, err := h(msg)
		o.Handled(name, input, time.Since(start))
		return out, err
	}
}

// observedPublisher publishes a handler's outputs, counts them and reports
// each publish to the router's observer.
type observedPublisher struct {
	message.Publisher
	reg *registration
}

// Publish publishes and reports how long the broker took.
func (p *observedPublisher) Publish(topic string, msgs ...*message.Message) error {
	start := time.Now()
	err := p.Publisher.Publish(topic, msgs...)
	if err == nil {
		p.reg.counters.AddPublished(len(msgs))
	}
	if o := p.reg.observer; o != nil {
		o.Published(p.reg.name, topic, len(msgs), time.Since(start), err)
	}
	return err
}

// newObservedPublisher wraps pub for reg; the result can publish
// asynchronously when pub can.
func newObservedPublisher(pub message.Publisher, reg *registration) message.Publisher {
	o := &observedPublisher{Publisher: pub, reg: reg}
	if ap, ok := pub.(middleware.AsyncPublisher); ok {
		return &observedAsyncPublisher{observedPublisher: o, async: ap}
	}
	return o
}

// observedAsyncPublisher is an observedPublisher on a publisher that can
// publish asynchronously.
type observedAsyncPublisher struct {
	*observedPublisher
	async middleware.AsyncPublisher
}

// PublishAsync publishes without waiting, and counts and reports the
// broker's answer when it comes.
func (p *observedAsyncPublisher) PublishAsync(topic string, msg *message.Message, done func(error)) {
	start := time.Now()
	reg := p.reg
	p.async.PublishAsync(topic, msg, func(err error) {
		if err == nil {
			reg.counters.AddPublished(1)
		}
		if o := reg.observer; o != nil {
			o.Published(reg.name, topic, 1, time.Since(start), err)
		}
		done(err)
	})
}

// FlushBatches asks the publisher to send what it holds back for batching,
// if it batches.
func (p *observedAsyncPublisher) FlushBatches() {
	if f, ok := p.async.(middleware.BatchFlusher); ok {
		f.FlushBatches()
	}
}

// Close leaves the shared publisher open: the backend closes it.
func (*observedPublisher) Close() error { return nil }
