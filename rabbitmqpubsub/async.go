package rabbitmqpubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Bounds of the PublishAsync pipeline. PublishAsync blocks while
// asyncQueued messages wait to be sent and asyncMaxUnconfirmed sent ones
// wait for the broker's confirm: that is the backpressure of the pipeline.
const (
	asyncQueued         = 256
	asyncMaxUnconfirmed = 4096
	// maxCachedWires caps the topics whose parsed layout is remembered.
	maxCachedWires = 1024
)

// errNacked is the cause given when the broker refuses a message with a
// basic.nack.
var errNacked = errors.New("the broker refused the message (basic.nack)")

// asyncPub is one PublishAsync call on its way through the pipeline.
type asyncPub struct {
	msg      *message.Message
	w        *Wire
	pub      amqp.Publishing
	done     func(error)
	deadline time.Time
	dc       *amqp.DeferredConfirmation // of the latest send
	lastErr  error                      // why the latest attempt failed
}

// asyncLane sends the messages of PublishAsync, in the order of the calls,
// on one confirm-mode channel of its own, and calls each message's done
// when the broker confirmed it. A lost channel or connection is waited for
// and the messages it left unconfirmed are sent again, in their order and
// before any later message, until their PublishTimeout. One goroutine (run)
// owns the channel and the queues.
type asyncLane struct {
	p  *Publisher
	in chan *asyncPub
	// senders counts PublishAsync calls that are handing a message in.
	senders sync.WaitGroup
	// drain asks run to end once everything handed in is settled;
	// cancelling ctx asks it to fail what is left and end at once.
	drain chan struct{}
	ctx   context.Context
	stop  context.CancelFunc
	ended chan struct{}

	// Owned by run.
	pc          *pubChannel
	unsent      pubQueue // to be sent (again), in order, before anything from in
	unconfirmed pubQueue // sent on pc, in order, waiting for the confirm
	b           backoff
}

func newAsyncLane(p *Publisher) *asyncLane {
	ctx, stop := context.WithCancel(context.Background())
	l := &asyncLane{
		p:     p,
		in:    make(chan *asyncPub, asyncQueued),
		drain: make(chan struct{}),
		ctx:   ctx,
		stop:  stop,
		ended: make(chan struct{}),
		b:     backoff{max: p.cfg.ReconnectMaxBackoff},
	}
	go l.run()
	return l
}

// PublishAsync hands msg to the publisher's send pipeline for topic and
// returns without waiting for the broker's confirmation. It blocks while the
// pipeline is full (asyncQueued messages waiting to be sent, or
// asyncMaxUnconfirmed sent and not yet confirmed): that is the backpressure.
//
// done is called exactly once, from any goroutine and possibly before
// PublishAsync returns: with nil once the broker confirmed msg, or with the
// error Publish would have returned for it. A *PermanentError (an invalid
// topic, a message above the broker's max_message_size, access refused, a
// conflicting declaration) means trying again cannot help. A lost
// connection is waited for and the messages it left unconfirmed are sent
// again, in order, until PublishTimeout after the call; a message may
// therefore reach the broker twice. A basic.nack from the broker fails the
// message at once (sending it again would put it behind later ones).
//
// Messages given to PublishAsync are sent on one channel in the order of
// the calls, so those of one topic are stored in that order. done is called
// from the pipeline's goroutine, one message after the other: it must return
// quickly and must not wait for a PublishAsync of the same Publisher (which
// may wait for that goroutine). Close waits for
// (or, after CloseTimeout, fails) every outstanding message: done is always
// called.
func (p *Publisher) PublishAsync(topic string, msg *message.Message, done func(error)) {
	w, err := p.wireOf(topic)
	if err != nil {
		done(&PermanentError{Err: fmt.Errorf("rabbitmqpubsub: publishing to %q: %w", topic, err)})
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		done(errClosed)
		return
	}
	if p.lane == nil {
		p.lane = newAsyncLane(p)
	}
	l := p.lane
	l.senders.Add(1)
	p.mu.Unlock()
	defer l.senders.Done()

	ap := &asyncPub{
		msg:      msg,
		w:        w,
		pub:      publishing(msg, w.Persistent),
		done:     done,
		deadline: time.Now().Add(p.cfg.PublishTimeout),
	}
	select {
	case l.in <- ap:
	case <-l.ctx.Done():
		done(errClosed)
	}
}

// wireOf is WireOf for topics seen before, without parsing them again.
func (p *Publisher) wireOf(topic string) (*Wire, error) {
	p.wiresMu.RLock()
	w, ok := p.wires[topic]
	p.wiresMu.RUnlock()
	if ok {
		return w, nil
	}
	parsed, err := WireOf(topic)
	if err != nil {
		return nil, err
	}
	w = &parsed
	p.wiresMu.Lock()
	if len(p.wires) < maxCachedWires {
		p.wires[topic] = w
	}
	p.wiresMu.Unlock()
	return w, nil
}

// run sends what PublishAsync hands in and settles the confirms until
// drain (with everything settled) or stop.
func (l *asyncLane) run() {
	defer close(l.ended)
	defer func() {
		if l.pc != nil {
			_ = l.pc.ch.Close()
			l.pc = nil
		}
	}()
	deadline := time.NewTimer(time.Hour)
	deadline.Stop()
	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	drain := l.drain
	draining := false
	var armed *asyncPub // the message the deadline timer is set for
	for {
		if retryC == nil && l.unsent.len() > 0 {
			if wait, ok := l.send(); !ok {
				if retry == nil {
					retry = time.NewTimer(wait)
				} else {
					retry.Reset(wait)
				}
				retryC = retry.C
			}
		}
		if draining && l.unsent.len() == 0 && l.unconfirmed.len() == 0 && len(l.in) == 0 {
			return
		}
		// The oldest message not settled sets the deadline.
		var head *asyncPub
		var headDone <-chan struct{}
		if l.unconfirmed.len() > 0 {
			head = l.unconfirmed.front()
			headDone = head.dc.Done()
		} else if l.unsent.len() > 0 {
			head = l.unsent.front()
		}
		if head != armed {
			armed = head
			if head != nil {
				deadline.Reset(time.Until(head.deadline))
			} else {
				deadline.Stop()
			}
		}
		// New messages are taken only while nothing waits to be sent
		// again and the unconfirmed ones are within bounds.
		var in <-chan *asyncPub
		if l.unsent.len() == 0 && l.unconfirmed.len() < asyncMaxUnconfirmed {
			in = l.in
		}
		select {
		case ap := <-in:
			l.unsent.push(ap)
		case <-headDone:
			l.settle()
		case <-retryC:
			retryC = nil
		case <-deadline.C:
			armed = nil
			l.expire()
		case <-drain:
			drain = nil
			draining = true
		case <-l.ctx.Done():
			l.failAll(fmt.Errorf("the publisher closed after waiting %s (CloseTimeout)", l.p.cfg.CloseTimeout))
			return
		}
	}
}

// send sends the unsent messages in order. When it cannot (no connection,
// a lost channel) it returns how long to wait before trying again and false.
func (l *asyncLane) send() (time.Duration, bool) {
	for l.unsent.len() > 0 {
		ap := l.unsent.front()
		if l.pc == nil {
			pc, err := l.open(ap.deadline)
			if err != nil {
				ap.lastErr = err
				return l.b.pause(), false
			}
			l.pc = pc
		}
		if err := l.p.declare(l.ctx, l.pc, *ap.w); err != nil {
			permanent := isPermanent(err)
			if permanent {
				l.pop(ap, err)
			} else {
				ap.lastErr = err
			}
			// A refused declaration closes the channel.
			cerr := l.pc.closeError()
			if cerr == nil && permanent {
				continue
			}
			if cerr == nil {
				cerr = err
				_ = l.pc.ch.Close()
			}
			l.lost(cerr, false)
			if permanent {
				continue // the next message gets a new channel at once
			}
			return l.b.pause(), false
		}
		dc, err := l.pc.ch.PublishWithDeferredConfirm(ap.w.Exchange, "", false, false, ap.pub)
		if err != nil {
			ap.lastErr = fmt.Errorf("sending to exchange %s: %w", ap.w.Exchange, err)
			cerr := l.pc.closeError()
			if cerr == nil {
				cerr = err
				// Not a closed channel: do not use it again.
				_ = l.pc.ch.Close()
			}
			l.lost(cerr, false)
			return l.b.pause(), false
		}
		ap.dc = dc
		l.unsent.pop()
		l.unconfirmed.push(ap)
	}
	l.b.reset()
	return 0, true
}

// open opens the lane's channel, waiting for a connection until deadline or
// stop.
func (l *asyncLane) open(deadline time.Time) (*pubChannel, error) {
	ctx, cancel := context.WithDeadline(l.ctx, deadline)
	defer cancel()
	return l.p.acquire(ctx)
}

// pop removes ap, the first unsent message, and calls its done with err.
func (l *asyncLane) pop(ap *asyncPub, err error) {
	l.unsent.pop()
	ap.done(err)
}

// settle calls done for the confirmed messages at the head of the
// unconfirmed ones, in order, and handles a refusal or a lost channel.
func (l *asyncLane) settle() {
	for l.unconfirmed.len() > 0 {
		ap := l.unconfirmed.front()
		select {
		case <-ap.dc.Done():
		default:
			return
		}
		if ap.dc.Acked() {
			l.unconfirmed.pop()
			ap.done(nil)
			continue
		}
		// Not acked: the broker refused it, or the channel closed and the
		// library gave up on every outstanding confirm.
		if cerr := l.pc.closeError(); cerr != nil {
			l.lost(cerr, true)
			return
		}
		l.unconfirmed.pop()
		ap.done(fmt.Errorf("rabbitmqpubsub: publishing message %s (%d bytes) to exchange %s: %w",
			ap.msg.UUID, len(ap.msg.Payload), ap.w.Exchange, errNacked))
	}
}

// lost handles the loss of the lane's channel with cerr: the messages it
// confirmed are settled, and those it did not are put back, in order, in
// front of the unsent ones. With blame, when cerr is an error that retrying
// cannot fix, the message that caused it fails with a *PermanentError
// instead of being sent again.
func (l *asyncLane) lost(cerr error, blame bool) {
	if l.pc != nil {
		_ = l.pc.ch.Close()
		l.pc = nil
	}
	culprit := -1
	if blame && permanentAMQP(cerr) {
		culprit = l.culprit(cerr)
	}
	again := make([]*asyncPub, 0, l.unconfirmed.len()+l.unsent.len())
	for i, ap := range l.unconfirmed.all() {
		if ap.dc.Acked() {
			ap.done(nil)
			continue
		}
		if i == culprit {
			ap.done(&PermanentError{Err: fmt.Errorf("rabbitmqpubsub: publishing message %s (%d bytes) to exchange %s: %w",
				ap.msg.UUID, len(ap.msg.Payload), ap.w.Exchange, cerr)})
			continue
		}
		ap.lastErr = cerr
		again = append(again, ap)
	}
	l.unconfirmed.reset()
	again = append(again, l.unsent.all()...)
	l.unsent.reset()
	l.unsent.items = again
	if len(again) > 0 {
		l.p.logger.Debug("RabbitMQ channel lost during PublishAsync; sending the unconfirmed messages again",
			watermill.LogFields{"error": cerr.Error(), "unconfirmed": len(again)})
	}
}

// culprit returns the index, among the unconfirmed messages not yet
// confirmed, of the one that made the broker close the channel with cerr:
// the first one above the size limit for a message too large, else the
// first one to the exchange the error names, else the first one.
func (l *asyncLane) culprit(cerr error) int {
	var ae *amqp.Error
	errors.As(cerr, &ae)
	first := -1
	for i, ap := range l.unconfirmed.all() {
		if ap.dc.Acked() {
			continue
		}
		if first < 0 {
			first = i
		}
		if ae == nil {
			break
		}
		if tooLarge(cerr) {
			if limit, ok := parseMaxSize(ae.Reason); ok && len(ap.msg.Payload) > limit {
				return i
			}
			continue
		}
		if strings.Contains(ae.Reason, "'"+ap.w.Exchange+"'") {
			return i
		}
	}
	return first
}

// expire fails the messages at the head whose PublishTimeout has passed.
func (l *asyncLane) expire() {
	now := time.Now()
	for l.unconfirmed.len() > 0 && !l.unconfirmed.front().deadline.After(now) {
		ap := l.unconfirmed.pop()
		ap.done(l.timeoutError(ap))
	}
	if l.unconfirmed.len() > 0 {
		return
	}
	for l.unsent.len() > 0 && !l.unsent.front().deadline.After(now) {
		ap := l.unsent.pop()
		ap.done(l.timeoutError(ap))
	}
}

func (l *asyncLane) timeoutError(ap *asyncPub) error {
	cause := ap.lastErr
	if cause == nil {
		cause = context.DeadlineExceeded
	}
	return fmt.Errorf("rabbitmqpubsub: message %s to exchange %s not confirmed within %s: %w",
		ap.msg.UUID, ap.w.Exchange, l.p.cfg.PublishTimeout, cause)
}

// failAll fails every message in the lane with why.
func (l *asyncLane) failAll(why error) {
	fail := func(ap *asyncPub) {
		if ap.dc != nil && ap.dc.Acked() {
			ap.done(nil)
			return
		}
		ap.done(fmt.Errorf("rabbitmqpubsub: message %s to exchange %s not confirmed: %w", ap.msg.UUID, ap.w.Exchange, why))
	}
	for _, ap := range l.unconfirmed.all() {
		fail(ap)
	}
	l.unconfirmed.reset()
	for _, ap := range l.unsent.all() {
		fail(ap)
	}
	l.unsent.reset()
	for {
		select {
		case ap := <-l.in:
			fail(ap)
		default:
			return
		}
	}
}

// close ends the lane: it waits until every message handed in is settled,
// or until timeout closes, then fails what is left. done has then been
// called for every message. It reports whether everything was settled in
// time.
func (l *asyncLane) close(timeout <-chan struct{}) bool {
	settled := make(chan struct{})
	go func() {
		l.senders.Wait()
		close(l.drain)
		<-l.ended
		close(settled)
	}()
	select {
	case <-settled:
		l.stop()
		return true
	case <-timeout:
	}
	l.stop()
	<-settled
	// A PublishAsync that raced with stop may have handed in a message
	// after run ended.
	l.failAll(errClosed)
	return false
}

// pubQueue is a FIFO of messages that reuses its storage.
type pubQueue struct {
	items []*asyncPub
	head  int // index of the front in items
}

func (q *pubQueue) len() int { return len(q.items) - q.head }

// front returns the first message; the queue must not be empty.
func (q *pubQueue) front() *asyncPub { return q.items[q.head] }

// all returns the messages in order; valid until the next change.
func (q *pubQueue) all() []*asyncPub { return q.items[q.head:] }

func (q *pubQueue) push(ap *asyncPub) {
	if len(q.items) == cap(q.items) && q.head >= len(q.items)/2 {
		// Move the messages to the front instead of growing: at least
		// half the storage is free there.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	q.items = append(q.items, ap)
}

// pop removes and returns the first message; the queue must not be empty.
func (q *pubQueue) pop() *asyncPub {
	ap := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
	}
	return ap
}

// reset empties the queue.
func (q *pubQueue) reset() {
	clear(q.items)
	q.items = q.items[:0]
	q.head = 0
}
