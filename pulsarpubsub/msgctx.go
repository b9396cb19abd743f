package pulsarpubsub

import (
	"context"
	"sync"
)

// messageContext is the context of a message handed out: it ends when the
// subscription's context ends or when the message was settled (end).
//
// It costs one small allocation and no locking of the parent until someone
// asks for Done, which a handler seldom does. context.WithCancel would
// register every message with the subscription's context at once and
// deregister it at the settlement, under that context's lock, from two
// goroutines: about half a microsecond a message on the consuming path.
type messageContext struct {
	context.Context // the subscription's context

	mu    sync.Mutex
	err   error         // set by end or when the parent ends; then done is closed
	done  chan struct{} // made by Done
	unreg func() bool   // stops the watch on the parent that Done started
}

func newMessageContext(parent context.Context) *messageContext {
	return &messageContext{Context: parent}
}

// Done implements context.Context.
func (c *messageContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		} else {
			c.unreg = context.AfterFunc(c.Context, func() { c.cancel(c.Context.Err()) })
		}
	}
	return c.done
}

// Err implements context.Context.
func (c *messageContext) Err() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.Context.Err(); err != nil {
		c.cancel(err)
		return err
	}
	return nil
}

// end ends the context once the message was settled.
func (c *messageContext) end() { c.cancel(context.Canceled) }

// cancel ends the context with err unless it ended already.
func (c *messageContext) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	unreg := c.unreg
	c.unreg = nil
	c.mu.Unlock()
	if unreg != nil {
		unreg()
	}
}
