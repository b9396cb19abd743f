package router

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/schema"
)

// Router runs typed handlers between queues on one backend. Register handlers
// with Handle, HandleStream, Consume or AddHandler, then call Run.
type Router struct {
	cfg     Config
	backend Backend
	logger  watermill.LoggerAdapter

	mu       sync.Mutex
	handlers []*registration
	names    map[string]bool
	running  chan struct{}
	started  bool
	// onReady, if set, runs once every handler is subscribed, before Run
	// waits for the stop; the processor logs its ready line there.
	onReady  func()
	observer Observer
	done     chan struct{} // closed when Run returns
}

// HandlerInfo describes one registered handler, for ready lines and metrics.
type HandlerInfo struct {
	// Name is the handler's name.
	Name string
	// Input is the queue it consumes.
	Input schema.Topic
	// Output is the queue it publishes to; nil for a sink.
	Output *schema.Topic
	// Subscription is the subscription (consumer group) name it consumes
	// through; for response and notify queues each client gets its own
	// subscription with this name as prefix.
	Subscription string
	// Concurrency is how many messages it handles at once.
	Concurrency int
	// MaxInFlight is how many of its inputs may be taken and not yet acked.
	MaxInFlight int
	// Pipelined says whether its outputs are sent without waiting for the
	// broker, each input acked once its outputs are confirmed.
	Pipelined bool
	// PoisonTopic is where its permanently failing inputs go.
	PoisonTopic schema.Topic
}

type registration struct {
	name      string
	in        schema.Topic
	out       *schema.Topic
	typed     middleware.Typed
	publisher message.Publisher // observed; an AsyncPublisher when the backend's is
	opts      handlerOptions
	counters  *middleware.Counters
	observer  Observer // set by Run before any message
}

// New returns a Router on backend. cfg supplies the processor id (the default
// subscription name), the concurrency and the drain timeout.
func New(cfg Config, backend Backend, logger watermill.LoggerAdapter) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if backend == nil {
		return nil, errors.New("router: backend is required")
	}
	if d, ok := backend.(InFlightDefaulter); ok && cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = max(d.DefaultMaxInFlight(), cfg.Concurrency, 1)
	}
	cfg.SetDefaults()
	if cfg.ID == "" {
		return nil, errors.New("router: an id is required (it names the subscription)")
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Router{cfg: cfg, backend: backend, logger: logger, names: map[string]bool{}, running: make(chan struct{}), done: make(chan struct{})}, nil
}

// Backend returns the backend the router runs on.
func (r *Router) Backend() Backend { return r.backend }

// HandlerOption changes how one handler consumes and fails.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	maxDeliveries int
	errorType     string
	subscription  string
	concurrency   int
	maxInFlight   int
	poisonTopic   *schema.Topic
	retry         *middleware.RetryConfig
	backoff       middleware.BackoffConfig
	rateLimit     float64
	rateBurst     int
}

// WithSubscription overrides the subscription name (default: the processor id).
func WithSubscription(name string) HandlerOption {
	return func(o *handlerOptions) { o.subscription = name }
}

// WithConcurrency overrides --concurrency for this handler.
func WithConcurrency(n int) HandlerOption { return func(o *handlerOptions) { o.concurrency = n } }

// WithMaxInFlight overrides Config.MaxInFlight for this handler.
func WithMaxInFlight(n int) HandlerOption { return func(o *handlerOptions) { o.maxInFlight = n } }

// WithPoisonTopic overrides the poison queue (default: PoisonTopic(in)).
func WithPoisonTopic(t schema.Topic) HandlerOption {
	return func(o *handlerOptions) { o.poisonTopic = &t }
}

// WithMaxDeliveries bounds how many times one message is delivered to the
// handler before it is given up (default middleware.DefaultMaxDeliveries).
func WithMaxDeliveries(n int) HandlerOption {
	return func(o *handlerOptions) { o.maxDeliveries = n }
}

// WithErrorType sets the `type` of the error responses the handler sends
// when it fails (default middleware.DefaultErrorType); TrustGraph's LLM
// services use "llm-error", its embeddings services "embeddings-error".
func WithErrorType(t string) HandlerOption {
	return func(o *handlerOptions) { o.errorType = t }
}

// WithRetry sets an in-process retry policy (default none: a failed message
// is nacked and delivered again by the broker).
func WithRetry(c middleware.RetryConfig) HandlerOption {
	return func(o *handlerOptions) { o.retry = &c }
}

// WithBackoff overrides the pause after a too-many-requests error.
func WithBackoff(c middleware.BackoffConfig) HandlerOption {
	return func(o *handlerOptions) { o.backoff = c }
}

// WithRateLimit caps handler calls per second with a token bucket of the given burst.
func WithRateLimit(perSecond float64, burst int) HandlerOption {
	return func(o *handlerOptions) { o.rateLimit, o.rateBurst = perSecond, burst }
}

// PoisonTopic returns the default poison queue of in: the same tenant and
// namespace, the queue name with "-poison" appended, and at-least-once
// delivery whatever the input's class.
func PoisonTopic(in schema.Topic) schema.Topic {
	return schema.Topic{QoS: schema.QoS1, Tenant: in.Tenant, Namespace: in.Namespace, Queue: in.Queue + "-poison"}
}

// Handle registers fn between in and out: each input is answered with at
// most one output, whose final flag is set.
func Handle[Req, Resp any](r *Router, name string, in, out schema.Topic, fn middleware.Func[Req, Resp], opts ...HandlerOption) error {
	return r.register(name, in, &out, func(o middleware.Output) (middleware.Typed, error) {
		return middleware.Handle(fn, o)
	}, opts)
}

// HandleStream registers a handler that answers each input on in with any
// number of outputs on out, each published as it is emitted.
func HandleStream[Req, Resp any](r *Router, name string, in, out schema.Topic, fn middleware.StreamFunc[Req, Resp], opts ...HandlerOption) error {
	return r.register(name, in, &out, func(o middleware.Output) (middleware.Typed, error) {
		return middleware.HandleStream(fn, o)
	}, opts)
}

// Consume registers a sink on in.
func Consume[Req any](r *Router, name string, in schema.Topic, fn middleware.SinkFunc[Req], opts ...HandlerOption) error {
	return r.register(name, in, nil, func(middleware.Output) (middleware.Typed, error) {
		return middleware.Consume(fn)
	}, opts)
}

// AddHandler registers an untyped watermill handler; out is nil for a sink.
// The messages fn returns are published to out before the input is acked.
// It must be called before Run.
func (r *Router) AddHandler(name string, in schema.Topic, out *schema.Topic, fn message.HandlerFunc, opts ...HandlerOption) error {
	return r.register(name, in, out, func(o middleware.Output) (middleware.Typed, error) {
		return middleware.Typed{Call: func(msg *message.Message) ([]*message.Message, error) {
			outs, err := fn(msg)
			if err != nil || len(outs) == 0 {
				return nil, err
			}
			if o.Publisher == nil {
				return nil, middleware.Permanent(fmt.Errorf("handler %q returned outputs but has no output queue", name))
			}
			return nil, o.Publisher.Publish(o.Topic, outs...)
		}}, nil
	}, opts)
}

func (r *Router) register(name string, in schema.Topic, out *schema.Topic, build func(middleware.Output) (middleware.Typed, error), opts []HandlerOption) error {
	if err := in.Validate(); err != nil {
		return fmt.Errorf("handler %q input: %w", name, err)
	}
	if out != nil {
		if err := out.Validate(); err != nil {
			return fmt.Errorf("handler %q output: %w", name, err)
		}
	}
	o := handlerOptions{subscription: r.cfg.ID, concurrency: r.cfg.Concurrency}
	for _, opt := range opts {
		opt(&o)
	}
	if o.concurrency < 1 {
		return fmt.Errorf("handler %q: concurrency must be at least 1, got %d", name, o.concurrency)
	}
	if o.maxInFlight == 0 {
		o.maxInFlight = max(r.cfg.MaxInFlight, o.concurrency)
	}
	if o.maxInFlight < o.concurrency {
		return fmt.Errorf("handler %q: max in flight (%d) must be at least its concurrency (%d)", name, o.maxInFlight, o.concurrency)
	}
	if o.maxDeliveries < 0 {
		return fmt.Errorf("handler %q: max deliveries must be at least 1, got %d", name, o.maxDeliveries)
	}
	reg := &registration{name: name, in: in, out: out, opts: o, counters: &middleware.Counters{}}
	reg.publisher = newObservedPublisher(r.backend.Publisher(), reg)
	var output middleware.Output
	if out != nil {
		output = middleware.Output{Publisher: reg.publisher, Topic: out.String()}
	}
	typed, err := build(output)
	if err != nil {
		return fmt.Errorf("handler %q: %w", name, err)
	}
	reg.typed = typed
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return fmt.Errorf("handler %q: router is already running", name)
	}
	if name == "" || r.names[name] {
		return fmt.Errorf("handler name %q is empty or already registered", name)
	}
	r.names[name] = true
	r.handlers = append(r.handlers, reg)
	return nil
}

// OnReady sets a function that Run calls once every handler is subscribed
// and taking messages, before it waits for the stop. Call it before Run.
func (r *Router) OnReady(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onReady = fn
}

// Handlers describes the registered handlers in registration order.
func (r *Router) Handlers() []HandlerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]HandlerInfo, 0, len(r.handlers))
	for _, h := range r.handlers {
		out = append(out, HandlerInfo{
			Name: h.name, Input: h.in, Output: h.out, Subscription: h.opts.subscription,
			Concurrency: h.opts.concurrency, PoisonTopic: r.poisonTopic(h),
			MaxInFlight: h.opts.maxInFlight, Pipelined: h.pipelined(),
		})
	}
	return out
}

// Config returns the configuration the router runs with, defaults applied.
func (r *Router) Config() Config { return r.cfg }

// Running is closed once every handler is subscribed and taking messages.
func (r *Router) Running() <-chan struct{} { return r.running }

// Stopped reports whether Run has returned.
func (r *Router) Stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Stats returns the outcome counters of each handler by name.
func (r *Router) Stats() map[string]middleware.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]middleware.Snapshot, len(r.handlers))
	for _, h := range r.handlers {
		out[h.name] = h.counters.Snapshot()
	}
	return out
}

// Run subscribes every handler and processes messages until ctx is
// cancelled. It then stops taking new messages and tells the handlers
// (middleware.Draining); failed messages are nacked for another consumer and
// pauses end at once, while messages in flight may finish within the drain
// timeout. When it passes, the contexts of the messages still in flight are
// cancelled: each of them is nacked, or answered with an error response if
// it already published outputs, so nothing is lost and nothing is repeated.
// Run returns nil when every message ended that way, an error if some were
// still running after a further grace period. It closes the subscribers,
// not the backend.
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("router is already running")
	}
	r.started = true
	defer close(r.done)
	handlers := append([]*registration(nil), r.handlers...)
	onReady := r.onReady
	observer := r.observer
	r.mu.Unlock()
	if len(handlers) == 0 {
		return errors.New("router has no handlers")
	}

	// watermill's own close waits only briefly: Run waits for the drain
	// itself, below.
	wm, err := message.NewRouter(message.RouterConfig{CloseTimeout: stopGrace}, r.logger)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	shared := r.backend.Publisher()
	drain := make(chan struct{})
	stopCtx, stopInFlight := context.WithCancel(context.Background())
	defer stopInFlight()
	var gates []*gateSubscriber
	var pipelines []*pipeline
	ended := make(chan string, len(handlers))
	closeGrace := stopGrace
	defer func() {
		for _, g := range gates {
			if err := g.closeUpstream(); err != nil {
				r.logger.Error("Closing subscriber failed", err, nil)
			}
		}
		for _, p := range pipelines {
			if err := p.close(closeGrace); err != nil {
				r.logger.Error("Closing subscriber failed", err, nil)
			}
		}
	}()

	for _, h := range handlers {
		if err := r.keepPoison(h); err != nil {
			return err
		}
	}
	for _, h := range handlers {
		h.observer = observer
		policy := middleware.Policy{
			Delivery: middleware.DeliveryConfig{
				MaxDeliveries: h.opts.maxDeliveries,
				Poison: middleware.PoisonConfig{
					Publisher: shared,
					Topic:     r.poisonTopic(h).String(),
					Source:    h.in.String(),
					Handler:   h.name,
				},
				RespondError: h.typed.RespondError,
				ErrorType:    h.opts.errorType,
				Drain:        drain,
				Stop:         stopCtx,
			},
			Retry:     h.opts.retry,
			Backoff:   h.opts.backoff,
			RateLimit: h.opts.rateLimit,
			RateBurst: h.opts.rateBurst,
			Counters:  h.counters,
			Logger:    r.logger.With(watermill.LogFields{"handler": h.name}),
		}
		fn, err := middleware.Chain(h.typed.Call, policy)
		if err != nil {
			return fmt.Errorf("handler %q: %w", h.name, err)
		}
		if observer != nil {
			fn = timedHandler(h.name, h.in.String(), observer, fn)
		}
		window := 1
		if h.pipelined() {
			window = h.opts.maxInFlight
		}
		sub, err := r.backend.NewSubscriber(SubscribeOptions{Subscription: h.opts.subscription, Exclusive: h.in.Class().Exclusive(), AckWindow: window})
		if err != nil {
			return fmt.Errorf("handler %q: subscribing to %s: %w", h.name, h.in, err)
		}
		call := func(msg *message.Message) error {
			_, err := fn(msg)
			return err
		}
		if window > 1 {
			flusher, _ := shared.(middleware.BatchFlusher)
			p := newPipeline(pipelineConfig{
				name: h.name, topic: h.in.String(), upstream: sub, fn: call,
				concurrency: h.opts.concurrency, window: window, flusher: flusher,
				logger: r.logger, ended: ended,
			})
			pipelines = append(pipelines, p)
			if err := initialize(sub, h); err != nil {
				return err
			}
			if err := p.start(); err != nil {
				return fmt.Errorf("handler %q: subscribing to %s: %w", h.name, h.in, err)
			}
			continue
		}
		gate := newGateSubscriber(sub)
		gates = append(gates, gate)
		if err := initialize(sub, h); err != nil {
			return err
		}
		for i := 0; i < h.opts.concurrency; i++ {
			wm.AddConsumerHandler(fmt.Sprintf("%s#%d", h.name, i), h.in.String(), gate, call)
		}
	}

	// The watermill router gets a context of its own: cancelling the one
	// it runs with makes it close itself, racing the Close below, and the
	// loser of that race would not see the end of the drain. Stopping is
	// done here, by the gates and Close.
	wmCtx, wmCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wmCancel()
	runErr := make(chan error, 1)
	go func() { runErr <- wm.Run(wmCtx) }()
	select {
	case <-wm.Running():
		close(r.running)
		r.logger.Info("Router ready", watermill.LogFields{"handlers": len(handlers)})
		if onReady != nil {
			onReady()
		}
	case err := <-runErr:
		if err == nil {
			err = errors.New("router stopped before it was running")
		}
		return fmt.Errorf("router: %w", err)
	}

	select {
	case <-ctx.Done():
	case err := <-runErr:
		// The router stops on its own only when every handler's subscription
		// ended, for example when the backend closed underneath it.
		if err != nil {
			return fmt.Errorf("router: %w", err)
		}
		return errors.New("router: every subscription ended unexpectedly")
	case name := <-ended:
		return fmt.Errorf("router: the subscription of handler %q ended unexpectedly", name)
	}
	start := time.Now()
	close(drain)
	for _, g := range gates {
		g.stopTaking()
	}
	for _, p := range pipelines {
		p.stopTaking()
	}
	var drainErr error
	if !waitIdle(handlers, r.cfg.DrainTimeout) {
		n := inFlight(handlers)
		r.logger.Error("Drain timeout passed; cancelling the messages in flight", errDrainTimeout, watermill.LogFields{
			"in_flight": n, "drain_timeout": r.cfg.DrainTimeout.String(),
		})
		stopInFlight()
		for _, p := range pipelines {
			p.abandonPending()
		}
		if !waitIdle(handlers, stopGrace) {
			closeGrace = 0
			drainErr = fmt.Errorf("router: %d messages still in flight %s after the drain timeout of %s; their handlers ignore cancellation", inFlight(handlers), stopGrace, r.cfg.DrainTimeout)
		}
	}
	// Every handler call has returned: Close waits for the acks and nacks.
	closeErr := wm.Close()
	<-runErr
	if drainErr != nil {
		return drainErr
	}
	if closeErr != nil {
		return fmt.Errorf("router: closing: %w", closeErr)
	}
	r.logger.Info("Router drained", watermill.LogFields{"took": time.Since(start).String()})
	return nil
}

// PoisonSubscription is the durable subscription the router creates on every
// poison queue it may write to, so that poisoned messages are kept until an
// operator reads them (switchyard tail --subscription poison) even on
// brokers that keep nothing for a topic without subscribers.
const PoisonSubscription = "poison"

// keepPoison makes sure the poison queue of h keeps what is written to it.
func (r *Router) keepPoison(h *registration) error {
	topic := r.poisonTopic(h).String()
	sub, err := r.backend.NewSubscriber(SubscribeOptions{Subscription: PoisonSubscription})
	if err != nil {
		return fmt.Errorf("handler %q: creating the subscription %q on poison queue %s: %w", h.name, PoisonSubscription, topic, err)
	}
	defer func() {
		if err := sub.Close(); err != nil {
			r.logger.Error("Closing the poison queue subscriber failed", err, nil)
		}
	}()
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(topic); err != nil {
			return fmt.Errorf("handler %q: creating the subscription %q on poison queue %s: %w", h.name, PoisonSubscription, topic, err)
		}
	}
	return nil
}

// errDrainTimeout is what the drain-timeout log line reports.
var errDrainTimeout = errors.New("drain timeout passed")

// stopGrace is how long cancelled handlers get to return after the drain
// timeout, and how long watermill may take to send the last acks.
const stopGrace = 5 * time.Second

// inFlight returns how many messages the handlers are handling now.
func inFlight(hs []*registration) int64 {
	var n int64
	for _, h := range hs {
		n += h.counters.Snapshot().InFlight
	}
	return n
}

// waitIdle waits until no message is in flight or d passed, and reports
// whether none is.
func waitIdle(hs []*registration, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for inFlight(hs) > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// initialize creates the subscription of h on the broker when sub can.
func initialize(sub message.Subscriber, h *registration) error {
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(h.in.String()); err != nil {
			return fmt.Errorf("handler %q: initializing subscription on %s: %w", h.name, h.in, err)
		}
	}
	return nil
}

// pipelined reports whether h's outputs are sent without waiting for the
// broker: it has an output, a window above its concurrency, and a
// publisher that can.
func (h *registration) pipelined() bool {
	_, async := h.publisher.(middleware.AsyncPublisher)
	return h.out != nil && async && h.opts.maxInFlight > h.opts.concurrency
}

func (r *Router) poisonTopic(h *registration) schema.Topic {
	if h.opts.poisonTopic != nil {
		return *h.opts.poisonTopic
	}
	return PoisonTopic(h.in)
}

// SummaryLine formats stats as one line, handlers in name order.
func SummaryLine(stats map[string]middleware.Snapshot) string {
	names := make([]string, 0, len(stats))
	for n := range stats {
		names = append(names, n)
	}
	sort.Strings(names)
	s := ""
	for i, n := range names {
		st := stats[n]
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%s: received=%d ok=%d error=%d error_responses=%d poison=%d redelivered=%d rate_limited=%d panics=%d retries=%d published=%d",
			n, st.Received, st.OK, st.Errors, st.ErrorResponses, st.Poisoned, st.Redelivered, st.RateLimited, st.Panics, st.Retries, st.Published)
	}
	return s
}
