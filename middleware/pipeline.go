package middleware

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// AsyncPublisher is a publisher that can hand a message to the broker
// client without waiting for the broker's confirmation. Handlers whose
// deliverer supports it (see Settlement) publish their outputs this way, and
// the input is acked when the outputs are confirmed.
type AsyncPublisher interface {
	message.Publisher
	// PublishAsync hands msg to the client for topic and returns without
	// waiting for the broker. It may block while the client's own send
	// buffer is full. done is called exactly once, from any goroutine and
	// possibly before PublishAsync returns, with nil once the broker
	// confirmed msg or with the error Publish would have returned. Messages
	// given to PublishAsync for one topic are stored in call order.
	PublishAsync(topic string, msg *message.Message, done func(error))
}

// BatchFlusher is an AsyncPublisher whose client holds messages back to
// batch them. The router calls FlushBatches whenever it has no input ready,
// so that outputs never wait for the batching delay when there is nothing
// more to batch them with.
type BatchFlusher interface {
	// FlushBatches starts sending the held-back messages at once, without
	// waiting for their confirmations.
	FlushBatches()
}

// Settlement lets whoever delivers a message to a handler chain (the
// router) take the next message while the outputs of this one are still
// being confirmed by the broker. Put one in the message's context with
// WithSettlement before calling the chain. When the chain returns nil and
// Deferred reports true, the input's fate is not decided yet: wait for
// Confirmed, then call Settle, and ack the input if it returns nil, nack it
// otherwise. When Deferred is false the chain's own result stands.
//
// Without a Settlement in the context, handlers publish synchronously and
// the chain's result always stands.
type Settlement struct {
	mu        sync.Mutex
	pending   int           // outputs handed to the client, not yet confirmed
	err       error         // the first output that failed
	confirmed chan struct{} // set by seal: closed when the outputs are confirmed
	waiter    chan struct{} // closed, and cleared, when pending drops to 0
	finish    func(error) error
	wrap      func(error) error // turns an output failure into the handler's error
}

// NewSettlement returns a Settlement for one message.
func NewSettlement() *Settlement { return &Settlement{} }

type settlementKey struct{}

// WithSettlement returns ctx carrying s, for the message it will be the
// context of.
func WithSettlement(ctx context.Context, s *Settlement) context.Context {
	return context.WithValue(ctx, settlementKey{}, s)
}

func settlementOf(ctx context.Context) *Settlement {
	s, _ := ctx.Value(settlementKey{}).(*Settlement)
	return s
}

// Deferred reports whether the chain returned while outputs were still
// being confirmed, leaving the outcome to Settle.
func (s *Settlement) Deferred() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finish != nil
}

// Confirmed is closed once every output of a deferred message was
// confirmed or failed. It is nil when the outcome is not deferred.
func (s *Settlement) Confirmed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.confirmed
}

// Settle decides a deferred message once Confirmed is closed: it counts the
// outcome as the delivery policy does (a failed output is a failed
// delivery: redelivered, or given up on the last delivery) and returns nil
// when the input may be acked, an error when it must be nacked. Call it
// once.
func (s *Settlement) Settle() error {
	s.mu.Lock()
	finish, err := s.finish, s.err
	s.mu.Unlock()
	if finish == nil {
		return fmt.Errorf("settlement: the outcome was not deferred")
	}
	return finish(err)
}

// ErrOutputsUnconfirmed is how a deferred message ends when the processor
// stops before its outputs were confirmed (Abandon).
var ErrOutputsUnconfirmed = errors.New("the processor stopped before the outputs were confirmed")

// Abandon decides a deferred message without waiting for Confirmed, when
// the processor stops: it is counted as failed, and the result says what
// to do with the input as Settle's does: nil to ack (a stream that had
// started was answered with an error, since delivering it again would
// repeat its outputs), an error to nack so that the broker delivers it
// again. Call it instead of Settle.
func (s *Settlement) Abandon() error {
	s.mu.Lock()
	finish := s.finish
	s.mu.Unlock()
	if finish == nil {
		return ErrOutputsUnconfirmed
	}
	return finish(ErrOutputsUnconfirmed)
}

// failed returns the first output failure so far.
func (s *Settlement) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// setWrap sets how an output failure reported after the handler returned
// is presented to the delivery policy.
func (s *Settlement) setWrap(wrap func(error) error) {
	s.mu.Lock()
	s.wrap = wrap
	s.mu.Unlock()
}

// wrapped returns err as the handler's error.
func (s *Settlement) wrapped(err error) error {
	s.mu.Lock()
	wrap := s.wrap
	s.mu.Unlock()
	if err == nil || wrap == nil {
		return err
	}
	return wrap(err)
}

// add records an output handed to the client.
func (s *Settlement) add() {
	s.mu.Lock()
	s.pending++
	s.mu.Unlock()
}

// complete records the broker's answer to one output.
func (s *Settlement) complete(err error) {
	s.mu.Lock()
	if err != nil && s.err == nil {
		s.err = err
	}
	s.pending--
	if s.pending == 0 && s.waiter != nil {
		close(s.waiter)
		s.waiter = nil
	}
	s.mu.Unlock()
}

// seal is called when the handler returned nil. With outputs still
// pending it defers the outcome to finish and reports true; otherwise it
// returns the first output failure, if any.
func (s *Settlement) seal(finish func(error) error) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == 0 {
		return false, s.err
	}
	s.finish = finish
	if s.waiter == nil {
		s.waiter = make(chan struct{})
	}
	s.confirmed = s.waiter
	return true, nil
}

// wait waits until every output handed over so far was confirmed or
// failed, and returns the first failure.
func (s *Settlement) wait() error {
	s.mu.Lock()
	if s.pending == 0 {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if s.waiter == nil {
		s.waiter = make(chan struct{})
	}
	ch := s.waiter
	s.mu.Unlock()
	<-ch
	return s.failed()
}
