package router

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/middleware"
)

// pipeline runs a pipelined handler: its outputs are sent without waiting
// for the broker, and the handler takes its next input while they are
// being confirmed. It reads one backend subscription that hands out up to
// the handler's window of messages without acks, on concurrency workers of
// its own, each calling the handler chain for one message at a time: at
// concurrency 1 the calls are in order and never overlap. Each message is
// passed to the chain as a message of its own carrying a Settlement, and
// the backend's message is acked only when the chain's outcome is settled,
// in the order the calls finished.
//
// The workers call the chain themselves instead of going through the
// watermill router, which would hand each message through two more
// goroutines and start a goroutine for it: that costs as much CPU per
// message as the handler's own work, for no gain, since the window and
// the settling are the pipeline's.
type pipeline struct {
	name        string
	topic       string
	upstream    message.Subscriber
	fn          func(*message.Message) error
	concurrency int
	flusher     middleware.BatchFlusher // nil: nothing to flush when idle
	ready       ReadyReporter           // nil: the upstream cannot tell
	readyWait   time.Duration           // see readyWait
	logger      watermill.LoggerAdapter

	cancel  context.CancelFunc // ends the upstream subscription
	stop    chan struct{}      // closed when the workers are to stop taking messages
	stopped sync.Once
	done    chan struct{} // closed when every worker returned
	ended   chan<- string // gets the name when the subscription ended by itself

	mu      sync.Mutex
	closed  bool
	current []*message.Message // the backend message each worker handles

	settleQ chan settling // inputs waiting for their outputs' confirmation
	abandon chan struct{} // closed when inputs waiting for confirmations are to be nacked
	once    sync.Once     // closes abandon
	settled chan struct{} // closed when the settler returned
}

// settling is an input whose handler returned while its outputs were being
// confirmed.
type settling struct {
	up *message.Message
	st *middleware.Settlement
}

// pipelineConfig says what a pipeline runs.
type pipelineConfig struct {
	name, topic string
	upstream    message.Subscriber
	fn          func(*message.Message) error
	concurrency int
	window      int
	flusher     middleware.BatchFlusher
	// readyWait replaces the default readyWait when positive.
	readyWait time.Duration
	logger    watermill.LoggerAdapter
	// ended gets the handler's name when its subscription ends without
	// being asked to; it needs room for one name.
	ended chan<- string
}

func newPipeline(c pipelineConfig) *pipeline {
	ready, _ := c.upstream.(ReadyReporter)
	wait := c.readyWait
	if wait <= 0 {
		wait = readyWait
	}
	return &pipeline{
		name: c.name, topic: c.topic, upstream: c.upstream, fn: c.fn,
		concurrency: c.concurrency, flusher: c.flusher, ready: ready, readyWait: wait,
		logger: c.logger, ended: c.ended,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		current: make([]*message.Message, c.concurrency),
		settleQ: make(chan settling, c.window),
		abandon: make(chan struct{}),
		settled: make(chan struct{}),
	}
}

// start subscribes upstream and starts the workers and the settler.
func (p *pipeline) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	in, err := p.upstream.Subscribe(ctx, p.topic)
	if err != nil {
		cancel()
		return err
	}
	p.cancel = cancel
	go p.settle()
	var workers sync.WaitGroup
	for i := range p.concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			p.work(i, in)
		}()
	}
	go func() {
		workers.Wait()
		close(p.done)
		if !p.stopping() {
			p.ended <- p.name
		}
	}()
	return nil
}

// work is worker i: it takes messages from in and handles them until the
// pipeline stops or in is closed.
func (p *pipeline) work(i int, in <-chan *message.Message) {
	wait := time.NewTimer(p.readyWait)
	wait.Stop()
	defer wait.Stop()
	for {
		var up *message.Message
		var ok bool
		select {
		case up, ok = <-in:
		default:
			var stop bool
			up, ok, stop = p.await(in, wait)
			if stop {
				return
			}
		}
		if !ok {
			return
		}
		if !p.take(i, up) {
			up.Nack()
			return
		}
		st := middleware.NewSettlement()
		// Nobody waits for the ack of msg: its outcome is the chain's.
		msg := &message.Message{UUID: up.UUID, Metadata: up.Metadata, Payload: up.Payload}
		msg.SetContext(middleware.WithSettlement(up.Context(), st))
		err := p.call(msg)
		p.finish(i, up, st, err)
	}
}

// readyWait bounds how long a worker whose channel ran empty waits for
// the messages its subscription says are ready before it sends the
// publisher's held-back batches anyway.
const readyWait = 2 * time.Millisecond

// await waits for the next message of in once in ran empty; stop is true
// when the pipeline stopped first. Nothing being ready, it first sends
// what the publisher holds back for batching rather than let it wait for
// more. When the subscription says more messages are ready
// (ReadyReporter), it waits up to p.readyWait for them before that flush, so
// that their outputs join the batch it would send. wait is the worker's
// stopped timer.
func (p *pipeline) await(in <-chan *message.Message, wait *time.Timer) (up *message.Message, ok, stop bool) {
	if p.flusher != nil && p.ready != nil && p.ready.Ready(in) {
		wait.Reset(p.readyWait)
		select {
		case up, ok = <-in:
			wait.Stop()
			return up, ok, false
		case <-wait.C:
		case <-p.stop:
			wait.Stop()
			return nil, false, true
		}
	}
	if p.flusher != nil {
		p.flusher.FlushBatches()
	}
	select {
	case up, ok = <-in:
		return up, ok, false
	case <-p.stop:
		return nil, false, true
	}
}

// call runs the chain on msg; a panic that the chain did not recover is
// its error.
func (p *pipeline) call(msg *message.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
			p.logger.Error("Panic recovered in handler", err, watermill.LogFields{
				"handler": p.name, "message_uuid": msg.UUID, "stack": string(debug.Stack()),
			})
		}
	}()
	return p.fn(msg)
}

// take records up as worker i's message. It reports false when the
// pipeline stopped taking messages: up is to be nacked then.
func (p *pipeline) take(i int, up *message.Message) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.stopping() {
		return false
	}
	p.current[i] = up
	return true
}

// finish settles worker i's message up by the chain's outcome: a nack when
// it failed, an ack when it is decided, else a place in the settler's
// queue. It does nothing when close abandoned the message already.
func (p *pipeline) finish(i int, up *message.Message, st *middleware.Settlement, err error) {
	p.mu.Lock()
	if p.current[i] != up {
		p.mu.Unlock()
		return
	}
	p.current[i] = nil
	if err == nil && st.Deferred() {
		// Under the lock, so that close does not close the queue
		// meanwhile. It has room: each entry is a backend message not yet
		// acked, and the backend hands out at most window of them.
		p.settleQ <- settling{up: up, st: st}
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	if err != nil {
		up.Nack()
	} else {
		up.Ack()
	}
}

// settle acks each deferred input once its outputs are confirmed, or nacks
// it, in the order the calls finished. After abandonPending it nacks the
// inputs still waiting, so that the broker delivers them again.
func (p *pipeline) settle() {
	defer close(p.settled)
	for s := range p.settleQ {
		confirmed := s.st.Confirmed()
		select {
		case <-confirmed:
		default:
			select {
			case <-confirmed:
			case <-p.abandon:
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

func (p *pipeline) stopping() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// stopTaking makes the workers take no more messages. Safe to call more
// than once.
func (p *pipeline) stopTaking() {
	p.stopped.Do(func() { close(p.stop) })
}

// abandonPending stops waiting for the confirmation of outputs: the
// inputs waiting for them, now and later, are nacked. The router calls it
// when the drain timeout passed. Safe to call more than once.
func (p *pipeline) abandonPending() {
	p.once.Do(func() { close(p.abandon) })
}

// errHandlerHung is logged for messages whose handler never returned.
var errHandlerHung = errors.New("the handler did not return; its message is nacked")

// close stops the pipeline and ends its subscription, waiting up to grace
// for workers still in a handler call. Their messages, and those waiting
// for their outputs' confirmation, are nacked. Call it after the messages
// in flight were settled or the drain timed out.
func (p *pipeline) close(grace time.Duration) error {
	p.stopTaking()
	p.abandonPending()
	if p.cancel == nil {
		// Never started.
		close(p.settleQ)
		return p.upstream.Close()
	}
	t := time.NewTimer(grace)
	select {
	case <-p.done:
	case <-t.C:
	}
	t.Stop()
	p.mu.Lock()
	p.closed = true
	var hung []*message.Message
	for i, up := range p.current {
		if up != nil {
			hung = append(hung, up)
			p.current[i] = nil
		}
	}
	p.mu.Unlock()
	for _, up := range hung {
		p.logger.Error("Closing the subscription", errHandlerHung, watermill.LogFields{"handler": p.name, "message_uuid": up.UUID})
		up.Nack()
	}
	close(p.settleQ)
	<-p.settled
	p.cancel()
	return p.upstream.Close()
}
