package rrclient

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// Defaults for Config fields left empty.
const (
	// DefaultTimeout is the wait for each response, TrustGraph's
	// RequestResponseClient default.
	DefaultTimeout = 60 * time.Second
	// DefaultSubscriptionPrefix starts the name of each client's response
	// subscription, as TrustGraph's "rr-…".
	DefaultSubscriptionPrefix = "rr"
	// DefaultStreamBuffer is how many responses of one stream wait for its
	// caller before the stream fails with ErrOverflow.
	DefaultStreamBuffer = 1024
)

var (
	// ErrClosed is the error of calls made after Close, and of calls that
	// were waiting when the client was closed or its response subscription
	// ended.
	ErrClosed = errors.New("rrclient: client is closed")
	// ErrOverflow ends a stream whose caller fell behind by more than
	// Config.StreamBuffer responses; the rest of the stream was dropped.
	ErrOverflow = errors.New("rrclient: stream buffer full: the caller fell behind and the rest of the stream was dropped")
	// ErrTimeout is matched (errors.Is) by the error of a call that waited
	// Config.Timeout for a response in vain. Such an error matches
	// context.DeadlineExceeded too.
	ErrTimeout error = timeoutError{}
)

// timeoutError is ErrTimeout: it also matches context.DeadlineExceeded, and
// says Timeout() like net errors.
type timeoutError struct{}

func (timeoutError) Error() string { return "rrclient: timed out waiting for a response" }

// Is lets errors.Is(err, context.DeadlineExceeded) match a timeout.
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Timeout reports true, as net.Error timeouts do.
func (timeoutError) Timeout() bool { return true }

// ResponseError is a response whose `error` field was set: the service
// failed the request and said why. The errors Request and Stream return
// wrap it; find it with errors.As.
type ResponseError struct {
	// Type is the service's kind of failure, e.g. "llm-error".
	Type string
	// Message describes the failure.
	Message string
}

// Error implements error.
func (e *ResponseError) Error() string {
	return fmt.Sprintf("error response %q: %s", e.Type, e.Message)
}

// Config says which queues a Client uses and how long it waits.
type Config struct {
	// Request is the queue requests are sent to, e.g. request:tg:text-completion.
	Request schema.Topic
	// Response is the queue the service answers on, e.g.
	// response:tg:text-completion. The client reads it through a
	// subscription of its own and keeps the responses to its requests.
	Response schema.Topic
	// Timeout bounds the wait for each response (each message of a stream,
	// not the whole stream). Default DefaultTimeout.
	Timeout time.Duration
	// SubscriptionPrefix starts the name of the response subscription,
	// "{prefix}-{12 hex digits}". Letters, digits, '-', '_' and '.'.
	// Default DefaultSubscriptionPrefix.
	SubscriptionPrefix string
	// StreamBuffer is how many responses of one stream may wait for its
	// caller; one more fails the stream with ErrOverflow. Default
	// DefaultStreamBuffer.
	StreamBuffer int
	// Logger receives the client's log lines. Default: none.
	Logger watermill.LoggerAdapter
}

// SetDefaults fills every empty field with its default.
func (c *Config) SetDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.SubscriptionPrefix == "" {
		c.SubscriptionPrefix = DefaultSubscriptionPrefix
	}
	if c.StreamBuffer == 0 {
		c.StreamBuffer = DefaultStreamBuffer
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports the first invalid setting. Zero values stand for their
// defaults.
func (c Config) Validate() error {
	if err := c.Request.Validate(); err != nil {
		return fmt.Errorf("request queue: %w", err)
	}
	if err := c.Response.Validate(); err != nil {
		return fmt.Errorf("response queue: %w", err)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout must not be negative, got %s", c.Timeout)
	}
	if c.StreamBuffer < 0 {
		return fmt.Errorf("stream buffer must be at least 1, got %d", c.StreamBuffer)
	}
	for i, r := range c.SubscriptionPrefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("subscription prefix %q: character %q at %d is not a letter, digit, '-', '_' or '.'", c.SubscriptionPrefix, r, i)
		}
	}
	return nil
}

// Stats counts what a Client did. Every counter only grows.
type Stats struct {
	// Requests is the number of requests sent.
	Requests int64
	// Received is the number of messages read from the response queue,
	// orphans included. Each was acked.
	Received int64
	// Orphans is the number of received messages nobody waited for: an
	// unknown or missing id, a duplicate, or a response to a call that
	// had ended (timed out, stopped by its caller, overflowed, closed).
	// They were acked and dropped.
	Orphans int64
	// ErrorResponses is the number of responses with their `error` field set.
	ErrorResponses int64
	// DecodeErrors is the number of responses that could not be decoded
	// into the response type; their calls failed.
	DecodeErrors int64
	// Timeouts is the number of calls that failed because a response did
	// not come within Config.Timeout.
	Timeouts int64
	// Overflows is the number of streams that failed with ErrOverflow.
	Overflows int64
}

// Client sends requests of type Req and waits for responses of type Resp
// correlated by the `id` property. It is safe for concurrent use; one
// Client serves any number of concurrent calls. Close it when done.
type Client[Req, Resp any] struct {
	cfg          Config
	pub          message.Publisher
	sub          message.Subscriber
	subscription string
	reqTopic     string
	respTopic    string
	errIdx       []int // index of Resp's error field, nil if it has none
	logger       watermill.LoggerAdapter

	cancel   context.CancelFunc
	loopDone chan struct{}

	mu        sync.Mutex
	pending   map[string]*call[Resp]
	closedErr error // non-nil once closed: what waiting calls fail with

	closeOnce sync.Once
	closeErr  error

	requests, received, orphans, errorResponses, decodeErrors, timeouts, overflows atomic.Int64
}

// delivery is one response handed to a waiting call.
type delivery[Resp any] struct {
	resp *Resp
	err  error
	last bool // nothing follows for this call
}

// call is a request waiting for its responses.
type call[Resp any] struct {
	id     string
	stream bool
	ch     chan delivery[Resp]
	done   chan struct{} // closed by fail
	err    error         // why it failed; set before done is closed
}

// New subscribes to cfg.Response through an exclusive subscription of the
// new client's own and starts receiving, before any request can be sent, so
// that no response to one is missed (see the package documentation for
// how each backend's subscription is known to be in place). ctx bounds the
// setup only; the client runs until Close. The caller keeps ownership of
// b: Close does not close it.
func New[Req, Resp any](ctx context.Context, b router.Backend, cfg Config) (*Client[Req, Resp], error) {
	if b == nil {
		return nil, errors.New("rrclient: a backend is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rrclient: %w", err)
	}
	cfg.SetDefaults()
	if err := schema.CheckType(reflect.TypeFor[Req]()); err != nil {
		return nil, fmt.Errorf("rrclient: request type: %w", err)
	}
	if err := schema.CheckType(reflect.TypeFor[Resp]()); err != nil {
		return nil, fmt.Errorf("rrclient: response type: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rrclient: %w", err)
	}
	c := &Client[Req, Resp]{
		cfg:          cfg,
		pub:          b.Publisher(),
		subscription: cfg.SubscriptionPrefix + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12],
		reqTopic:     cfg.Request.String(),
		respTopic:    cfg.Response.String(),
		errIdx:       errorIndex(reflect.TypeFor[Resp]()),
		loopDone:     make(chan struct{}),
		pending:      map[string]*call[Resp]{},
	}
	c.logger = cfg.Logger.With(watermill.LogFields{"response_queue": c.respTopic, "subscription": c.subscription})
	sub, err := b.NewSubscriber(router.SubscribeOptions{
		Subscription:    c.subscription,
		Exclusive:       true,
		InitialPosition: router.PositionLatest,
	})
	if err != nil {
		return nil, fmt.Errorf("rrclient: subscribing to %s: %w", c.respTopic, err)
	}
	c.sub = sub
	fail := func(err error) (*Client[Req, Resp], error) {
		if cerr := sub.Close(); cerr != nil {
			c.logger.Error("Closing the response subscription failed", cerr, nil)
		}
		return nil, err
	}
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(c.respTopic); err != nil {
			return fail(fmt.Errorf("rrclient: subscribing to %s: %w", c.respTopic, err))
		}
	}
	// The subscription lives until Close, not as long as ctx.
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	msgs, err := sub.Subscribe(loopCtx, c.respTopic)
	if err != nil {
		cancel()
		return fail(fmt.Errorf("rrclient: subscribing to %s: %w", c.respTopic, err))
	}
	c.cancel = cancel
	go c.receive(msgs)
	if err := c.waitReady(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// healthReporter is implemented by subscribers that can tell whether their
// subscriptions are in place on the broker.
type healthReporter interface {
	Health() error
}

// readyPoll is how often waitReady asks the subscriber.
const readyPoll = 5 * time.Millisecond

// waitReady waits, for subscribers that report their health, until the
// response subscription is in place: some set it up after Subscribe
// returned. It gives up after Config.Timeout or when ctx ends.
func (c *Client[Req, Resp]) waitReady(ctx context.Context) error {
	h, ok := c.sub.(healthReporter)
	if !ok {
		return nil
	}
	deadline := time.NewTimer(c.cfg.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		err := h.Health()
		if err == nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("rrclient: the subscription to %s is not in place after %s: %w", c.respTopic, c.cfg.Timeout, err)
		case <-ctx.Done():
			return fmt.Errorf("rrclient: waiting for the subscription to %s: %w (last: %v)", c.respTopic, context.Cause(ctx), err)
		}
	}
}

// Subscription returns the name the client asked the backend for its
// response subscription ("{prefix}-{12 hex digits}").
func (c *Client[Req, Resp]) Subscription() string { return c.subscription }

// Stats returns the client's counters.
func (c *Client[Req, Resp]) Stats() Stats {
	return Stats{
		Requests:       c.requests.Load(),
		Received:       c.received.Load(),
		Orphans:        c.orphans.Load(),
		ErrorResponses: c.errorResponses.Load(),
		DecodeErrors:   c.decodeErrors.Load(),
		Timeouts:       c.timeouts.Load(),
		Overflows:      c.overflows.Load(),
	}
}

// Request sends req and returns the first response to it. It is meant for
// single-shot services: the response is returned whatever its final flag
// says, and later responses to the same request are dropped (orphans). A
// response with its `error` field set is returned as an error wrapping a
// *ResponseError. The wait is bounded by Config.Timeout (the error then
// matches ErrTimeout) and by ctx.
func (c *Client[Req, Resp]) Request(ctx context.Context, req *Req) (*Resp, error) {
	cl, err := c.send(ctx, req, false)
	if err != nil {
		return nil, err
	}
	defer c.remove(cl)
	timer := time.NewTimer(c.cfg.Timeout)
	defer timer.Stop()
	d := c.next(ctx, cl, timer)
	if d.err != nil {
		return nil, d.err
	}
	return d.resp, nil
}

// Stream sends req when the loop over the returned sequence starts, and
// yields each response to it in order, with a nil error. It ends after the
// response whose final flag is set (see schema.IsFinal), or yields one
// error and ends: an error response (wrapping a *ResponseError), no
// response within Config.Timeout of the previous one (ErrTimeout), ctx
// done, the caller falling behind (ErrOverflow), the client closed
// (ErrClosed), or the request not sent. Breaking out of the loop abandons
// the request: what the service still sends for it is dropped. Each loop
// over the sequence sends the request again.
func (c *Client[Req, Resp]) Stream(ctx context.Context, req *Req) iter.Seq2[*Resp, error] {
	return func(yield func(*Resp, error) bool) {
		cl, err := c.send(ctx, req, true)
		if err != nil {
			yield(nil, err)
			return
		}
		defer c.remove(cl)
		timer := time.NewTimer(c.cfg.Timeout)
		defer timer.Stop()
		for {
			d := c.next(ctx, cl, timer)
			if d.err != nil {
				yield(nil, d.err)
				return
			}
			if !yield(d.resp, nil) || d.last {
				return
			}
			timer.Reset(c.cfg.Timeout)
		}
	}
}

// send registers a call for a new id and publishes req with it.
func (c *Client[Req, Resp]) send(ctx context.Context, req *Req, stream bool) (*call[Resp], error) {
	if req == nil {
		return nil, errors.New("rrclient: the request is nil")
	}
	payload, err := schema.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("rrclient: encoding the request for %s: %w", c.reqTopic, err)
	}
	buf := 1
	if stream {
		buf = c.cfg.StreamBuffer
	}
	cl := &call[Resp]{id: uuid.NewString(), stream: stream, ch: make(chan delivery[Resp], buf), done: make(chan struct{})}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rrclient: request to %s not sent: %w", c.reqTopic, err)
	}
	// Registered before it is sent: the response may come back before
	// Publish returns.
	c.mu.Lock()
	if c.closedErr != nil {
		err := c.closedErr
		c.mu.Unlock()
		return nil, err
	}
	c.pending[cl.id] = cl
	c.mu.Unlock()
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(schema.IDProperty, cl.id)
	msg.SetContext(ctx)
	if err := c.pub.Publish(c.reqTopic, msg); err != nil {
		c.remove(cl)
		return nil, fmt.Errorf("rrclient: sending request %s to %s: %w", cl.id, c.reqTopic, err)
	}
	c.requests.Add(1)
	return cl, nil
}

// next waits for the next delivery of cl: a response, or the reason there
// is none. The responses already buffered come before a failure.
func (c *Client[Req, Resp]) next(ctx context.Context, cl *call[Resp], timer *time.Timer) delivery[Resp] {
	select {
	case d := <-cl.ch:
		return d
	default:
	}
	select {
	case d := <-cl.ch:
		return d
	case <-cl.done:
		// Nothing is sent to ch once done is closed.
		select {
		case d := <-cl.ch:
			return d
		default:
			return delivery[Resp]{err: cl.err, last: true}
		}
	case <-timer.C:
		c.timeouts.Add(1)
		return delivery[Resp]{err: fmt.Errorf("rrclient: request %s to %s: no response on %s within %s: %w",
			cl.id, c.reqTopic, c.respTopic, c.cfg.Timeout, ErrTimeout), last: true}
	case <-ctx.Done():
		return delivery[Resp]{err: fmt.Errorf("rrclient: request %s to %s: %w", cl.id, c.reqTopic, context.Cause(ctx)), last: true}
	}
}

// remove forgets cl, so that what still comes for it is an orphan.
func (c *Client[Req, Resp]) remove(cl *call[Resp]) {
	c.mu.Lock()
	if c.pending[cl.id] == cl {
		delete(c.pending, cl.id)
	}
	c.mu.Unlock()
}

// fail ends cl with err. It is called with c.mu held, when cl is taken out
// of pending, so once per call.
func (cl *call[Resp]) fail(err error) {
	cl.err = err
	close(cl.done)
}

// receive hands each response to the call waiting for its id and acks it,
// until the subscription ends.
func (c *Client[Req, Resp]) receive(msgs <-chan *message.Message) {
	defer close(c.loopDone)
	for msg := range msgs {
		c.received.Add(1)
		c.dispatch(msg)
		msg.Ack()
	}
	c.shutdown(fmt.Errorf("%w: the response subscription on %s ended", ErrClosed, c.respTopic))
}

// dispatch gives msg to the call waiting for its id, if any. It never
// blocks on a caller.
func (c *Client[Req, Resp]) dispatch(msg *message.Message) {
	id := msg.Metadata.Get(schema.IDProperty)
	c.mu.Lock()
	cl := c.pending[id]
	c.mu.Unlock()
	if cl == nil {
		c.orphan(id)
		return
	}
	d := c.decode(msg.Payload, cl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[id] != cl {
		// The call ended while the response was decoded.
		c.orphan(id)
		return
	}
	select {
	case cl.ch <- d:
		if d.last {
			delete(c.pending, id)
		}
	default:
		delete(c.pending, id)
		c.overflows.Add(1)
		c.orphans.Add(1)
		cl.fail(fmt.Errorf("rrclient: request %s to %s: more than %d responses waiting: %w", id, c.reqTopic, c.cfg.StreamBuffer, ErrOverflow))
		c.logger.Error("A stream's caller fell behind; the rest of the stream is dropped", ErrOverflow,
			watermill.LogFields{"id": id, "stream_buffer": c.cfg.StreamBuffer})
	}
}

// decode turns a response payload for cl into its delivery.
func (c *Client[Req, Resp]) decode(payload []byte, cl *call[Resp]) delivery[Resp] {
	resp := new(Resp)
	if err := schema.Unmarshal(payload, resp); err != nil {
		c.decodeErrors.Add(1)
		return delivery[Resp]{err: fmt.Errorf("rrclient: request %s to %s: the response cannot be decoded as %s: %w",
			cl.id, c.reqTopic, reflect.TypeFor[Resp](), err), last: true}
	}
	if c.errIdx != nil {
		if e := errorAt(reflect.ValueOf(resp).Elem(), c.errIdx); e != nil {
			c.errorResponses.Add(1)
			return delivery[Resp]{err: fmt.Errorf("rrclient: request %s to %s failed: %w",
				cl.id, c.reqTopic, &ResponseError{Type: e.Type, Message: e.Message}), last: true}
		}
	}
	last := true
	if cl.stream {
		last, _ = schema.IsFinal(resp)
	}
	return delivery[Resp]{resp: resp, last: last}
}

func (c *Client[Req, Resp]) orphan(id string) {
	c.orphans.Add(1)
	c.logger.Trace("Dropped a response nobody waits for", watermill.LogFields{"id": id})
}

// shutdown makes every waiting call and every later one fail with err. The
// first reason sticks.
func (c *Client[Req, Resp]) shutdown(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closedErr != nil {
		return
	}
	c.closedErr = err
	if err != ErrClosed {
		c.logger.Error("Response subscription ended; the client fails every call", err, watermill.LogFields{"pending": len(c.pending)})
	}
	for id, cl := range c.pending {
		delete(c.pending, id)
		cl.fail(err)
	}
}

// Close stops receiving, fails the calls still waiting with ErrClosed and
// closes the response subscription (without unsubscribing: on brokers
// where it is durable its messages are kept). Calls made afterwards fail
// with ErrClosed. It does not close the backend. It is safe to call more
// than once.
func (c *Client[Req, Resp]) Close() error {
	c.closeOnce.Do(func() {
		c.shutdown(ErrClosed)
		c.cancel()
		if err := c.sub.Close(); err != nil {
			c.closeErr = fmt.Errorf("rrclient: closing the subscription to %s: %w", c.respTopic, err)
		}
		<-c.loopDone
	})
	return c.closeErr
}
