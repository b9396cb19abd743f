package router

import (
	"context"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/middleware"
)

// gateSubscriber sits between the watermill router and a backend subscriber
// so that stopping is graceful. The watermill router closes its subscribers
// and cancels their contexts as soon as it is asked to close, which would cut
// the acks of messages still being handled. The gate instead keeps the
// backend subscriptions open: on stop it only stops passing new messages on
// (a message it holds but has not passed on is nacked, so it is redelivered),
// and the backend subscriptions are closed after the in-flight messages were
// acked.
//
// A pipelined gate (window above 1) also lets a handler take its next
// message while the outputs of the previous ones are being confirmed: it
// reads one backend subscription that hands out up to window messages
// without acks, passes each to the watermill router as a message of its own,
// and acks the backend's message only when the handler chain's outcome is
// settled (see middleware.Settlement), in the order the handlers finished.
type gateSubscriber struct {
	upstream message.Subscriber
	window   int                     // pipelined when above 1
	flusher  middleware.BatchFlusher // nil: nothing to flush when idle

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	cancels []context.CancelFunc
	wg      sync.WaitGroup

	// Pipelined gates only.
	shared  map[string]<-chan *message.Message // the backend subscription of each topic
	settleQ chan settling                      // inputs waiting for their outputs' confirmation
	abandon chan struct{}                      // closed when inputs waiting for confirmations are to be nacked
	abort   chan struct{}                      // closed when slots stop waiting for handlers
	settled chan struct{}                      // closed when the settler ended
	once    sync.Once                          // closes abandon
}

// settling is an input whose handler returned while its outputs were being
// confirmed.
type settling struct {
	up *message.Message
	st *middleware.Settlement
}

func newGateSubscriber(upstream message.Subscriber, window int, flusher middleware.BatchFlusher) *gateSubscriber {
	g := &gateSubscriber{upstream: upstream, window: window, flusher: flusher, stop: make(chan struct{})}
	if window > 1 {
		g.shared = map[string]<-chan *message.Message{}
		g.settleQ = make(chan settling, window)
		g.abort = make(chan struct{})
		g.abandon = make(chan struct{})
		g.settled = make(chan struct{})
		go g.settle()
	}
	return g
}

// Subscribe subscribes upstream with a context that outlives the router's and
// relays messages until the gate stops or the router's ctx ends. A
// pipelined gate subscribes upstream once per topic; each Subscribe call is
// one handler slot reading from it.
func (g *gateSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := g.subscribeUpstream(topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(out)
		if g.window > 1 {
			g.relayPipelined(ctx, in, out)
		} else {
			g.relay(ctx, in, out)
		}
	}()
	return out, nil
}

// subscribeUpstream returns the backend subscription of topic for one slot.
func (g *gateSubscriber) subscribeUpstream(topic string) (<-chan *message.Message, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if in, ok := g.shared[topic]; ok {
		return in, nil
	}
	upCtx, cancel := context.WithCancel(context.Background())
	in, err := g.upstream.Subscribe(upCtx, topic)
	if err != nil {
		cancel()
		return nil, err
	}
	g.cancels = append(g.cancels, cancel)
	if g.shared != nil {
		g.shared[topic] = in
	}
	return in, nil
}

// relay passes messages on as they are; the backend waits for each one's
// ack before it sends the next.
func (g *gateSubscriber) relay(ctx context.Context, in <-chan *message.Message, out chan<- *message.Message) {
	for {
		select {
		case <-g.stop:
			return
		case <-ctx.Done():
			return
		case msg, ok := <-in:
			if !ok {
				return
			}
			select {
			case out <- msg:
			case <-g.stop:
				msg.Nack()
				return
			case <-ctx.Done():
				msg.Nack()
				return
			}
		}
	}
}

// relayPipelined passes each backend message on as a new message carrying
// a Settlement, waits until the handler chain returned, and then acks or
// nacks the backend's message, or leaves it to the settler when its
// outputs are still being confirmed.
func (g *gateSubscriber) relayPipelined(ctx context.Context, in <-chan *message.Message, out chan<- *message.Message) {
	for {
		var up *message.Message
		var ok bool
		select {
		case up, ok = <-in:
		default:
			// Nothing ready: send what the publisher holds back for
			// batching rather than let it wait for more.
			if g.flusher != nil {
				g.flusher.FlushBatches()
			}
			select {
			case up, ok = <-in:
			case <-g.stop:
				return
			case <-ctx.Done():
				return
			}
		}
		if !ok {
			return
		}
		select {
		case <-g.stop:
			up.Nack()
			return
		default:
		}
		st := middleware.NewSettlement()
		down := message.NewMessage(up.UUID, up.Payload)
		down.Metadata = up.Metadata
		down.SetContext(middleware.WithSettlement(up.Context(), st))
		select {
		case out <- down:
		case <-g.stop:
			up.Nack()
			return
		case <-ctx.Done():
			up.Nack()
			return
		}
		select {
		case <-down.Acked():
			if st.Deferred() {
				g.settleQ <- settling{up: up, st: st}
			} else {
				up.Ack()
			}
		case <-down.Nacked():
			up.Nack()
		case <-g.abort:
			// The handler ignored the drain timeout; the message goes back
			// to the broker.
			up.Nack()
			return
		}
	}
}

// settle acks each deferred input once its outputs are confirmed, or nacks
// it, in the order the handlers finished. After abandonPending it nacks the
// inputs still waiting, so that the broker delivers them again.
func (g *gateSubscriber) settle() {
	defer close(g.settled)
	for s := range g.settleQ {
		confirmed := s.st.Confirmed()
		select {
		case <-confirmed:
		default:
			select {
			case <-confirmed:
			case <-g.abandon:
				if err := s.st.Abandon(); err != nil {
					s.up.Nack()
				} else {
					s.up.Ack()
				}
				continue
			}
		}
		if err := s.st.Settle(); err != nil {
			s.up.Nack()
		} else {
			s.up.Ack()
		}
	}
}

// abandonPending stops waiting for the confirmation of outputs: the
// inputs waiting for them, now and later, are nacked. The router calls it
// when the drain timeout passed. Safe to call more than once.
func (g *gateSubscriber) abandonPending() {
	if g.abandon != nil {
		g.once.Do(func() { close(g.abandon) })
	}
}

// stopTaking stops passing on new messages. Safe to call more than once.
func (g *gateSubscriber) stopTaking() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.stopped {
		g.stopped = true
		close(g.stop)
	}
}

// Close is what the watermill router calls when it closes: stop taking.
func (g *gateSubscriber) Close() error {
	g.stopTaking()
	return nil
}

// closeUpstream ends the backend subscriptions. Call it after the in-flight
// messages were settled or the drain timed out: inputs still waiting for
// their outputs' confirmation are nacked.
func (g *gateSubscriber) closeUpstream() error {
	g.stopTaking()
	g.abandonPending()
	if g.abort != nil {
		close(g.abort)
	}
	g.wg.Wait()
	if g.settleQ != nil {
		close(g.settleQ)
		<-g.settled
	}
	g.mu.Lock()
	cancels := g.cancels
	g.cancels = nil
	g.mu.Unlock()
	for _, c := range cancels {
		c()
	}
	return g.upstream.Close()
}
