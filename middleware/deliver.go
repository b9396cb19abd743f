package middleware

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/schema"
)

// Metadata keys set on a message moved to the poison queue.
const (
	// PoisonReasonKey holds the error that made the message poison.
	PoisonReasonKey = "poison_reason"
	// PoisonSourceKey holds the queue the message was consumed from.
	PoisonSourceKey = "poison_source"
	// PoisonHandlerKey holds the name of the handler that rejected it.
	PoisonHandlerKey = "poison_handler"
	// PoisonAttemptsKey holds how many deliveries the message had.
	PoisonAttemptsKey = "poison_attempts"
)

// InputErrorKey is a metadata key an adapter sets on a message it received
// but could not unwrap (for example a malformed envelope). Such a message is
// poison before any handler sees it.
const InputErrorKey = "switchyard_input_error"

// Error types of the error responses switchyard sends itself. A handler sets
// its own type with ErrorType; TrustGraph's services use llm-error,
// embeddings-error and not-implemented.
const (
	// ErrorTypeBadRequest answers an input that cannot be decoded.
	ErrorTypeBadRequest = "bad-request"
	// DefaultErrorType answers any other failure unless the handler or the
	// error names a type.
	DefaultErrorType = "processing-error"
)

// DefaultMaxDeliveries is how many times a message is delivered to a
// handler, redeliveries included, before it is given up.
const DefaultMaxDeliveries = 5

// DeliveryConfig says how the failures of one handler end.
type DeliveryConfig struct {
	// MaxDeliveries bounds the deliveries of one message, counted by the
	// broker's delivery attempt (schema.DeliveryAttemptKey). A message that
	// fails on its last delivery is given up: answered with an error
	// response and moved to the poison queue. Default DefaultMaxDeliveries.
	MaxDeliveries int
	// Poison says where given-up messages go. Required.
	Poison PoisonConfig
	// RespondError, if set, answers a given-up request with an error
	// response (see Typed.RespondError).
	RespondError func(in *message.Message, errType, text string) error
	// ErrorType is the `type` of error responses to handler failures.
	// Default DefaultErrorType.
	ErrorType string
	// Counters receives the tallies. Required.
	Counters *Counters
	// Drain is closed when the processor starts to stop: handlers see it
	// through Draining, pauses end, and failed messages are nacked for
	// another consumer instead of being given up.
	Drain <-chan struct{}
	// Stop, when done, cancels the contexts of the messages in flight
	// (the drain timeout passed).
	Stop context.Context
	// Logger reports given-up messages; nil logs nothing.
	Logger watermill.LoggerAdapter
}

// PoisonConfig says where poison messages go.
type PoisonConfig struct {
	// Publisher writes to the poison queue.
	Publisher message.Publisher
	// Topic is the poison queue.
	Topic string
	// Source is the queue the handler consumes, recorded on each poison message.
	Source string
	// Handler is the handler's name, recorded on each poison message.
	Handler string
}

// Validate reports a missing publisher or topic.
func (c PoisonConfig) Validate() error {
	if c.Publisher == nil {
		return errors.New("poison: publisher is required")
	}
	if c.Topic == "" {
		return errors.New("poison: topic is required")
	}
	return nil
}

func (c *DeliveryConfig) setDefaults() {
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.ErrorType == "" {
		c.ErrorType = DefaultErrorType
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports settings that make no sense.
func (c DeliveryConfig) Validate() error {
	if c.MaxDeliveries < 0 {
		return fmt.Errorf("max deliveries must be at least 1, got %d", c.MaxDeliveries)
	}
	if c.Counters == nil {
		return errors.New("delivery: counters are required")
	}
	return c.Poison.Validate()
}

// Attempt returns the delivery attempt of msg, 1 when the adapter did not
// say.
func Attempt(msg *message.Message) int {
	if a, err := strconv.Atoi(msg.Metadata.Get(schema.DeliveryAttemptKey)); err == nil && a > 0 {
		return a
	}
	return 1
}

// Deliver is the outermost layer of a handler: it counts every message, gives
// each a context that tells of draining (Draining) and ends when the drain
// timeout passes, and decides how a failure ends:
//
//   - success: the input is acked (Counters.OK);
//   - a transient failure (an error, a panic, too many requests) before the
//     last delivery: nacked, the broker delivers it again later;
//   - a permanent failure (Permanent, a DecodeError, a publish error the
//     broker says is permanent, an adapter's InputErrorKey), a failure on
//     the last delivery, or a stream that failed after publishing outputs:
//     given up. The input is answered with an error response when the
//     handler has one and the input has an `id`, moved to the poison queue
//     unless the error response was the handler's own answer, and acked.
//     If neither can be published the input is nacked: nothing is lost.
func Deliver(cfg DeliveryConfig) (message.HandlerMiddleware, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.Counters
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			attempt := Attempt(msg)
			c.received.Add(1)
			if attempt > 1 {
				c.redelivered.Add(1)
			}
			c.inFlight.Add(1)

			settle := settlementOf(msg.Context())
			d := &delivery{parent: msg.Context(), stop: cfg.Stop, msg: msg, drain: cfg.Drain, attempt: attempt, settle: settle}
			msg.SetContext(d)

			var err error
			if inputErr := msg.Metadata.Get(InputErrorKey); inputErr != "" {
				err = &InputError{Reason: inputErr}
			} else {
				_, err = h(msg)
			}
			d.release()
			if settle != nil {
				if err != nil {
					settle.wait()
				} else {
					deferred, outErr := settle.seal(func(outErr error) error {
						defer c.inFlight.Add(-1)
						return cfg.outcome(msg, attempt, settle.wrapped(outErr))
					})
					if deferred {
						return nil, nil
					}
					err = settle.wrapped(outErr)
				}
			}
			defer c.inFlight.Add(-1)
			return nil, cfg.outcome(msg, attempt, err)
		}
	}, nil
}

// outcome counts how the delivery of msg ended and decides it: nil to ack,
// an error to nack.
func (cfg DeliveryConfig) outcome(msg *message.Message, attempt int, err error) error {
	c := cfg.Counters
	if err == nil {
		c.ok.Add(1)
		return nil
	}
	c.errs.Add(1)
	var p *PanicError
	if errors.As(err, &p) {
		c.panics.Add(1)
	}
	if IsTooManyRequests(err) {
		c.rateLimited.Add(1)
	}
	_, started := OutputsPublished(err)
	last := attempt >= cfg.MaxDeliveries
	if !IsPermanent(err) && !started && (!last || draining(cfg.Drain)) {
		return err
	}
	return cfg.giveUp(msg, attempt, last, err)
}

// giveUp answers and poisons msg as Deliver says. It returns nil when the
// input may be acked.
func (cfg DeliveryConfig) giveUp(msg *message.Message, attempt int, last bool, cause error) error {
	errType, text := cfg.ErrorType, cause.Error()
	// The client is told what failed; the log and the poison reason also
	// say how many outputs went before.
	answer := text
	var typed *typedError
	var decode *DecodeError
	var input *InputError
	var stream *streamStarted
	suspect := last && !IsPermanent(cause) // exhausted deliveries
	respond := cfg.RespondError != nil && msg.Metadata.Get(IDProperty) != ""
	if errors.As(cause, &stream) {
		answer = stream.err.Error()
		if cfg.Stop != nil && cfg.Stop.Err() != nil && errors.Is(stream.err, context.Canceled) {
			// Cut short by the drain timeout: say so rather than
			// "context canceled".
			answer = "the processor stopped before the stream ended (drain timeout)"
		}
		if stream.final {
			// The client already has its last message: nothing may follow
			// it, so the failure goes to the poison queue only.
			respond, suspect = false, true
		}
	}
	switch {
	case errors.As(cause, &typed):
		errType = typed.errType
	case errors.As(cause, &decode), errors.As(cause, &input):
		errType, suspect = ErrorTypeBadRequest, true
	}
	if suspect && last {
		text = fmt.Sprintf("gave up after %d deliveries: %s", attempt, text)
		answer = fmt.Sprintf("gave up after %d deliveries: %s", attempt, answer)
	}
	answered := false
	if respond {
		if err := cfg.RespondError(msg, errType, answer); err != nil {
			if !IsPermanent(err) {
				return fmt.Errorf("cannot send the error response (input kept for redelivery): %w", err)
			}
			cfg.Logger.Error("Cannot send an error response", err, watermill.LogFields{"message_uuid": msg.UUID})
		} else {
			answered = true
			cfg.Counters.errorResponses.Add(1)
		}
	}
	if answered && !suspect {
		cfg.Logger.Info("Answered with an error response", watermill.LogFields{
			"message_uuid": msg.UUID, "error_type": errType, "error": text, "attempt": attempt,
		})
		return nil
	}
	poisoned := msg.Copy()
	poisoned.Metadata.Set(PoisonReasonKey, text)
	poisoned.Metadata.Set(PoisonSourceKey, cfg.Poison.Source)
	poisoned.Metadata.Set(PoisonHandlerKey, cfg.Poison.Handler)
	poisoned.Metadata.Set(PoisonAttemptsKey, strconv.Itoa(attempt))
	delete(poisoned.Metadata, schema.DeliveryAttemptKey)
	if err := cfg.Poison.Publisher.Publish(cfg.Poison.Topic, poisoned); err != nil {
		if answered {
			// The client has its answer; losing the operator's copy is
			// better than answering twice.
			cfg.Logger.Error("Cannot write to the poison queue", err, watermill.LogFields{"message_uuid": msg.UUID, "poison_queue": cfg.Poison.Topic})
			return nil
		}
		return fmt.Errorf("cannot publish to poison queue %s (input kept for redelivery): %w", cfg.Poison.Topic, err)
	}
	cfg.Counters.poisoned.Add(1)
	cfg.Logger.Error("Message moved to poison queue", cause, watermill.LogFields{
		"message_uuid": msg.UUID, "poison_queue": cfg.Poison.Topic, "source": cfg.Poison.Source, "attempt": attempt,
	})
	return nil
}

// InputError is the failure of a message that an adapter received but could
// not unwrap (InputErrorKey). It is permanent.
type InputError struct {
	// Reason is what the adapter said.
	Reason string
}

// Error implements error.
func (e *InputError) Error() string { return "malformed message: " + e.Reason }

type deliveryKey struct{}

// delivery is the context of a message being handled: it carries what the
// handler may know of the message, and it ends when the message's own
// context ends or when the drain timeout passes (stop). Joining the two is
// deferred until something waits on the context, since most messages are
// handled without anyone doing so and joining costs allocations and locks
// on the message path.
type delivery struct {
	parent  context.Context
	stop    context.Context // nil: only the parent ends it
	msg     *message.Message
	drain   <-chan struct{}
	attempt int
	// settle, when set, lets the handler's outputs be confirmed after it
	// returned (see Settlement).
	settle *Settlement

	once    sync.Once
	joined  context.Context
	cleanup func()
}

// join returns the context that ends with either parent or stop.
func (d *delivery) join() context.Context {
	d.once.Do(func() {
		if d.stop == nil {
			d.joined = d.parent
			return
		}
		ctx, cancel := context.WithCancel(d.parent)
		stop := context.AfterFunc(d.stop, cancel)
		d.joined = ctx
		d.cleanup = func() { stop(); cancel() }
	})
	return d.joined
}

// release frees what join set up, and keeps it from being set up later.
func (d *delivery) release() {
	d.once.Do(func() { d.joined = d.parent })
	if d.cleanup != nil {
		d.cleanup()
	}
}

// Deadline implements context.Context.
func (d *delivery) Deadline() (time.Time, bool) { return d.join().Deadline() }

// Done implements context.Context.
func (d *delivery) Done() <-chan struct{} { return d.join().Done() }

// Err implements context.Context.
func (d *delivery) Err() error { return d.join().Err() }

// Value implements context.Context.
func (d *delivery) Value(key any) any {
	if key == (deliveryKey{}) {
		return d
	}
	return d.parent.Value(key)
}

// Draining returns a channel that is closed when the processor handling the
// message of ctx starts to stop. A long handler may watch it to finish early;
// its context is cancelled only when the drain timeout passes. The channel
// is nil (never closed) outside a router.
func Draining(ctx context.Context) <-chan struct{} {
	if d, ok := ctx.Value(deliveryKey{}).(*delivery); ok {
		return d.drain
	}
	return nil
}

// MessageInfo describes the message a handler is handling.
type MessageInfo struct {
	// UUID is the message's unique id as the adapter gave it.
	UUID string
	// ID is its `id` property, the request/response correlation id.
	ID string
	// Attempt is its delivery attempt, 1 on the first delivery.
	Attempt int
	// Properties are its properties (message metadata). Read them only.
	Properties map[string]string
}

// Message returns what is known of the message a handler's ctx belongs to;
// ok is false outside a router.
func Message(ctx context.Context) (info MessageInfo, ok bool) {
	d, ok := ctx.Value(deliveryKey{}).(*delivery)
	if !ok {
		return MessageInfo{}, false
	}
	return MessageInfo{UUID: d.msg.UUID, ID: d.msg.Metadata.Get(IDProperty), Attempt: d.attempt, Properties: d.msg.Metadata}, true
}

func draining(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
