package pulsarpubsub

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// How long the window's settler waits for the oldest message before it
// looks for later messages that were acked or nacked meanwhile (see
// settleWindow): windowSweepInterval, doubled after each look that found
// nothing up to windowSweepMaxInterval, as when messages are acked in the
// order they were handed out.
const (
	windowSweepInterval    = 5 * time.Millisecond
	windowSweepMaxInterval = 160 * time.Millisecond
)

// handedOut is one message of an ack window: handed out, not yet settled.
type handedOut struct {
	r   redelivery
	msg *message.Message
	ctx *messageContext
}

// windowQueue holds the messages of an ack window in the order they were
// handed out, in a ring as large as the window (a slot is taken before
// each push and given back after the entry is removed, so it never holds
// more). consumeWindow appends, the settler removes.
type windowQueue struct {
	mu      sync.Mutex
	ring    []handedOut
	head, n int           // the oldest entry's index and the number of entries
	closed  bool          // no more appends
	wake    chan struct{} // capacity 1: an append to a queue of at most one, or close
}

func newWindowQueue(capacity int) *windowQueue {
	return &windowQueue{ring: make([]handedOut, max(capacity, 1)), wake: make(chan struct{}, 1)}
}

// at returns the i-th oldest entry.
func (q *windowQueue) at(i int) *handedOut { return &q.ring[(q.head+i)%len(q.ring)] }

// push appends e. It wakes the settler when the queue held at most one
// entry: the settler then either waits for an entry or waits for the oldest
// one without sweeping, as there was nothing behind it.
func (q *windowQueue) push(e handedOut) {
	q.mu.Lock()
	if q.n == len(q.ring) {
		// Not with slots taken as consumeWindow takes them; kept safe anyway.
		grown := make([]handedOut, 2*len(q.ring))
		for i := range q.n {
			grown[i] = *q.at(i)
		}
		q.ring, q.head = grown, 0
	}
	short := q.n <= 1
	*q.at(q.n) = e
	q.n++
	q.mu.Unlock()
	if short {
		q.signal()
	}
}

// close tells the settler that nothing more is appended.
func (q *windowQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *windowQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// front returns the oldest entry and how many entries there are; done
// reports that the queue is empty and closed.
func (q *windowQueue) front() (e handedOut, n int, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return handedOut{}, 0, q.closed
	}
	return *q.at(0), q.n, false
}

// popFront removes the oldest entry.
func (q *windowQueue) popFront() {
	q.mu.Lock()
	*q.at(0) = handedOut{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.mu.Unlock()
}

// removeSettled removes the entries after the oldest whose message was
// acked or nacked, and returns them with that outcome, in order.
func (q *windowQueue) removeSettled() []settledEntry {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []settledEntry
	kept := min(q.n, 1)
	for i := 1; i < q.n; i++ {
		e := *q.at(i)
		if acked, settled := outcome(e.msg); settled {
			out = append(out, settledEntry{handedOut: e, acked: acked})
			continue
		}
		*q.at(kept) = e
		kept++
	}
	for i := kept; i < q.n; i++ {
		*q.at(i) = handedOut{}
	}
	q.n = kept
	return out
}

// takeAll empties the queue and returns what it held, oldest first.
func (q *windowQueue) takeAll() []handedOut {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]handedOut, q.n)
	for i := range out {
		out[i] = *q.at(i)
		*q.at(i) = handedOut{}
	}
	q.head, q.n = 0, 0
	return out
}

// settledEntry is an entry removed by a sweep, with its outcome.
type settledEntry struct {
	handedOut
	acked bool
}

// outcome reports whether msg was acked or nacked, and which. (Two
// single-case selects cost a fraction of one with both cases.)
func outcome(msg *message.Message) (acked, settled bool) {
	select {
	case <-msg.Acked():
		return true, true
	default:
	}
	select {
	case <-msg.Nacked():
		return false, true
	default:
		return false, false
	}
}

// settleWindow passes the acks and nacks of the window's messages on to
// the broker, ends each message's context and gives its slot back, until
// the queue is closed and empty. Once ctx ends or the subscriber closes, it
// settles every message it holds or gets at once: an ack given by then is
// kept, the others are nacked with no delay on a non-persistent topic.
//
// One goroutine does this for the whole window. It waits for the oldest
// message, so when outputs are confirmed in batches a whole batch of
// inputs is settled in one wake-up. A message settled before the oldest one
// is passed on by the next sweep, at most windowSweepMaxInterval later and
// windowSweepInterval while messages keep settling out of order, so that a
// slow message neither holds back the broker's acks of the others nor
// keeps their slots for long.
func (s *Subscriber) settleWindow(ctx context.Context, h *consumerHandle, q *windowQueue, slots <-chan struct{}, logger watermill.LoggerAdapter) {
	sweep := time.NewTimer(windowSweepInterval)
	sweep.Stop()
	defer sweep.Stop()
	release := func(e handedOut, acked bool) {
		if acked {
			s.ack(h, e.r, e.msg, logger)
		} else {
			s.nack(h, e.r, s.cfg.NackRedeliveryDelay, logger)
		}
		e.ctx.end()
		<-slots
	}
	ctxDone, closing := ctx.Done(), s.closing
	ending := false
	interval := windowSweepInterval
	for {
		head, n, done := q.front()
		switch {
		case done:
			return
		case ending:
			s.endWindow(h, q, slots, logger)
			// The close may have been signalled before and its wake-up
			// taken by an earlier select: look again before waiting.
			if _, _, done := q.front(); done {
				return
			}
			<-q.wake
			continue
		case n == 0:
			select {
			case <-q.wake:
			case <-ctxDone:
				ending = true
			case <-closing:
				ending = true
			}
			continue
		}
		if acked, settled := outcome(head.msg); settled {
			q.popFront()
			release(head, acked)
			continue
		}
		if n > 1 {
			sweep.Reset(interval)
		}
		select {
		case <-head.msg.Acked():
			q.popFront()
			release(head, true)
		case <-head.msg.Nacked():
			q.popFront()
			release(head, false)
		case <-sweep.C:
			settled := q.removeSettled()
			for _, e := range settled {
				release(e.handedOut, e.acked)
			}
			if len(settled) > 0 {
				interval = windowSweepInterval
			} else {
				interval = min(2*interval, windowSweepMaxInterval)
			}
		case <-q.wake:
			// An append behind the oldest message, which is to be swept
			// for, or close.
		case <-ctxDone:
			ending = true
		case <-closing:
			ending = true
		}
		sweep.Stop()
	}
}

// endWindow settles every message q holds when the subscription ends: an
// ack given by then is kept, the others are nacked with no delay on a
// non-persistent topic.
func (s *Subscriber) endWindow(h *consumerHandle, q *windowQueue, slots <-chan struct{}, logger watermill.LoggerAdapter) {
	for _, e := range q.takeAll() {
		s.settleAtEnd(h, e.r, e.msg, logger)
		e.ctx.end()
		<-slots
	}
}
