package router

import (
	"context"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// gateSubscriber sits between the watermill router and a backend subscriber
// so that stopping is graceful. The watermill router closes its subscribers
// and cancels their contexts as soon as it is asked to close, which would cut
// the acks of messages still being handled. The gate instead keeps the
// backend subscriptions open: on stop it only stops passing new messages on
// (a message it holds but has not passed on is nacked, so it is redelivered),
// and the backend subscriptions are closed after the in-flight messages were
// acked. Pipelined handlers do not go through it: see pipeline.
type gateSubscriber struct {
	upstream message.Subscriber

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

func newGateSubscriber(upstream message.Subscriber) *gateSubscriber {
	return &gateSubscriber{upstream: upstream, stop: make(chan struct{})}
}

// Subscribe subscribes upstream with a context that outlives the router's and
// relays messages until the gate stops or the router's ctx ends.
func (g *gateSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	upCtx, cancel := context.WithCancel(context.Background())
	in, err := g.upstream.Subscribe(upCtx, topic)
	if err != nil {
		cancel()
		return nil, err
	}
	g.mu.Lock()
	g.cancels = append(g.cancels, cancel)
	g.mu.Unlock()
	out := make(chan *message.Message)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(out)
		g.relay(ctx, in, out)
	}()
	return out, nil
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
// messages were acked or the drain timed out.
func (g *gateSubscriber) closeUpstream() error {
	g.stopTaking()
	g.wg.Wait()
	g.mu.Lock()
	cancels := g.cancels
	g.cancels = nil
	g.mu.Unlock()
	for _, c := range cancels {
		c()
	}
	return g.upstream.Close()
}
