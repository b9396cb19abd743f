package middleware

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/schema"
)

// IDProperty is the message property that correlates a request with its
// responses. Every output carries the `id` of the input it answers.
const IDProperty = schema.IDProperty

// Func is a message-in/message-out handler. Returning a nil response and a nil
// error publishes nothing and acks the input.
type Func[Req, Resp any] func(ctx context.Context, req *Req) (*Resp, error)

// StreamFunc is a handler that answers one input with any number of outputs,
// for example a streaming completion. It calls emit for each output in order;
// emit returns once the broker confirmed the output, so outputs reach the
// client as they are produced and memory stays bounded. Only the final output
// of a pipelined router is handed over without waiting: the handler goes on
// with its next input while the broker confirms it. An error from emit (the
// output could not be published) should be returned.
type StreamFunc[Req, Resp any] func(ctx context.Context, req *Req, emit func(*Resp) error) error

// SinkFunc is a handler that consumes messages and produces none.
type SinkFunc[Req any] func(ctx context.Context, req *Req) error

// Output is where a handler's outputs go: one queue on a publisher that
// returns once the broker confirmed the messages.
type Output struct {
	// Publisher publishes the outputs.
	Publisher message.Publisher
	// Topic is the output queue.
	Topic string
}

// Typed is a typed handler adapted to messages: it decodes the input, calls
// the function and publishes the outputs itself, so that a returned nil
// means every output was confirmed.
type Typed struct {
	// Call handles one input message. It never returns messages: outputs
	// are already published when it returns.
	Call message.HandlerFunc
	// RespondError publishes an error response to in, correlated by its
	// `id`, with the response type's final flag set. It is nil when the
	// handler has no output or its response type has no `error` field.
	RespondError func(in *message.Message, errType, text string) error
}

// streamStarted is the error of a stream handler that failed after some of
// its outputs were published: delivering the input again would repeat them,
// so it is never retried.
type streamStarted struct {
	err     error
	emitted int
	final   bool // the final output was among them
}

func (e *streamStarted) Error() string {
	return fmt.Sprintf("stream failed after %d outputs: %v", e.emitted, e.err)
}

func (e *streamStarted) Unwrap() error { return e.err }

// OutputsPublished reports how many outputs a failed handler had already
// published, so that its input must not be handled again.
func OutputsPublished(err error) (int, bool) {
	var s *streamStarted
	if errors.As(err, &s) {
		return s.emitted, true
	}
	return 0, false
}

// Handle adapts fn: it decodes the payload into a new *Req with the schema
// codec (declared defaults applied), calls fn with the message context,
// sets the response's final flag (it is the only response), and publishes
// it to out with the input's `id` property. An undecodable payload yields a
// *DecodeError. It reports an error if Req or Resp cannot be encoded.
func Handle[Req, Resp any](fn Func[Req, Resp], out Output) (Typed, error) {
	if err := checkTypes[Req, Resp](); err != nil {
		return Typed{}, err
	}
	return Typed{
		Call: func(msg *message.Message) ([]*message.Message, error) {
			req, err := decode[Req](msg)
			if err != nil {
				return nil, err
			}
			resp, err := fn(msg.Context(), req)
			if err != nil || resp == nil {
				return nil, err
			}
			schema.SetFinal(resp, true)
			return nil, publishAsync(out, msg, resp)
		},
		RespondError: errorResponder[Resp](out),
	}, nil
}

// HandleStream adapts fn like Handle, for handlers that emit several
// outputs. Each output is published when it is emitted, in order. When fn
// returns nil and the response type has a final flag that the last output
// did not set, a terminating response with only the flag set is sent, so
// clients stop waiting. Emitting after a final output is an error.
func HandleStream[Req, Resp any](fn StreamFunc[Req, Resp], out Output) (Typed, error) {
	if err := checkTypes[Req, Resp](); err != nil {
		return Typed{}, err
	}
	_, hasFinal := schema.FinalFlag(reflect.TypeFor[Resp]())
	return Typed{
		Call: func(msg *message.Message) ([]*message.Message, error) {
			req, err := decode[Req](msg)
			if err != nil {
				return nil, err
			}
			emitted, ended := 0, false
			settle := asyncSettlement(out, msg)
			emit := func(resp *Resp) error {
				if resp == nil {
					return errors.New("emit: nil output")
				}
				if ended {
					return Permanent(errors.New("emit: output after the final one"))
				}
				final, _ := schema.IsFinal(resp)
				var err error
				if settle != nil && final {
					err = publishFinal(out, msg, resp, settle)
				} else {
					err = publish(out, msg, resp)
				}
				if err != nil {
					return err
				}
				emitted++
				ended = final
				return nil
			}
			err = fn(msg.Context(), req, emit)
			if err == nil && hasFinal && !ended {
				last := new(Resp)
				if err = schema.Defaults(last); err == nil {
					schema.SetFinal(last, true)
					err = emit(last)
				}
			}
			if err != nil && emitted > 0 {
				return nil, &streamStarted{err: err, emitted: emitted, final: ended}
			}
			if settle != nil && emitted > 1 {
				// A final output that fails after the handler returned ends
				// a stream whose chunks the client has: it is answered with
				// an error, not handled again.
				n := emitted - 1
				settle.setWrap(func(err error) error { return &streamStarted{err: err, emitted: n} })
			}
			return nil, err
		},
		RespondError: errorResponder[Resp](out),
	}, nil
}

// Consume adapts a sink function.
func Consume[Req any](fn SinkFunc[Req]) (Typed, error) {
	if err := schema.CheckType(reflect.TypeFor[Req]()); err != nil {
		return Typed{}, fmt.Errorf("input type: %w", err)
	}
	return Typed{Call: func(msg *message.Message) ([]*message.Message, error) {
		req, err := decode[Req](msg)
		if err != nil {
			return nil, err
		}
		return nil, fn(msg.Context(), req)
	}}, nil
}

func checkTypes[Req, Resp any]() error {
	if err := schema.CheckType(reflect.TypeFor[Req]()); err != nil {
		return fmt.Errorf("input type: %w", err)
	}
	if err := schema.CheckType(reflect.TypeFor[Resp]()); err != nil {
		return fmt.Errorf("output type: %w", err)
	}
	return nil
}

// errorResponder returns the function that answers an input with an error
// response of type Resp, or nil if Resp has no error field.
func errorResponder[Resp any](out Output) func(*message.Message, string, string) error {
	if out.Publisher == nil || !schema.HasErrorField(reflect.TypeFor[Resp]()) {
		return nil
	}
	return func(in *message.Message, errType, text string) error {
		resp := new(Resp)
		if err := schema.Defaults(resp); err != nil {
			return err
		}
		schema.SetError(resp, errType, text)
		schema.SetFinal(resp, true)
		return publish(out, in, resp)
	}
}

func decode[Req any](msg *message.Message) (*Req, error) {
	req := new(Req)
	if err := schema.Unmarshal(msg.Payload, req); err != nil {
		return nil, &DecodeError{Type: typeName(req), Err: err}
	}
	return req, nil
}

// publish encodes resp, copies the input's `id` onto it and publishes it,
// waiting for the broker's confirmation.
func publish(out Output, in *message.Message, resp any) error {
	m, err := output(in, resp)
	if err != nil {
		return err
	}
	if err := out.Publisher.Publish(out.Topic, m); err != nil {
		return fmt.Errorf("publishing to %s: %w", out.Topic, err)
	}
	return nil
}

// asyncSettlement returns the Settlement of in when its outputs may be
// published without waiting for the broker: its deliverer settles it later
// and the publisher can. Otherwise it returns nil.
func asyncSettlement(out Output, in *message.Message) *Settlement {
	d, _ := in.Context().Value(deliveryKey{}).(*delivery)
	if d == nil || d.settle == nil {
		return nil
	}
	if _, ok := out.Publisher.(AsyncPublisher); !ok {
		return nil
	}
	return d.settle
}

// publishAsync publishes like publish, without waiting for the broker when
// asyncSettlement allows: the confirmation then decides the input's fate.
func publishAsync(out Output, in *message.Message, resp any) error {
	settle := asyncSettlement(out, in)
	if settle == nil {
		return publish(out, in, resp)
	}
	return sendAsync(out, in, resp, settle)
}

// publishFinal publishes the final output of a stream without waiting for
// the broker, once the earlier outputs are confirmed, and asks a batching
// publisher to send it at once, since a client waits for it. The earlier
// outputs are published one confirmed output at a time: a stream is paced
// by its client's broker, which on Pulsar's non-persistent topics drops
// what a slow consumer cannot take.
func publishFinal(out Output, in *message.Message, resp any, settle *Settlement) error {
	if err := settle.wait(); err != nil {
		return err
	}
	if err := sendAsync(out, in, resp, settle); err != nil {
		return err
	}
	if f, ok := out.Publisher.(BatchFlusher); ok {
		f.FlushBatches()
	}
	return nil
}

// sendAsync hands resp to the publisher and records it on settle.
func sendAsync(out Output, in *message.Message, resp any, settle *Settlement) error {
	m, err := output(in, resp)
	if err != nil {
		return err
	}
	topic := out.Topic
	settle.add()
	out.Publisher.(AsyncPublisher).PublishAsync(topic, m, func(err error) {
		if err != nil {
			err = fmt.Errorf("publishing to %s: %w", topic, err)
		}
		settle.complete(err)
	})
	return nil
}

// output builds the message of resp answering in.
func output(in *message.Message, resp any) (*message.Message, error) {
	payload, err := schema.Marshal(resp)
	if err != nil {
		// A response that cannot be encoded is a bug in the handler; retrying
		// will not change it.
		return nil, Permanent(fmt.Errorf("cannot encode %s: %w", typeName(resp), err))
	}
	// Built without message.NewMessage's ack channels, which cost two
	// allocations: nobody waits for an output's ack.
	md := make(message.Metadata, 1)
	if id := in.Metadata.Get(IDProperty); id != "" {
		md[IDProperty] = id
	}
	m := &message.Message{UUID: watermill.NewUUID(), Metadata: md, Payload: payload}
	m.SetContext(in.Context())
	return m, nil
}

func typeName(v any) string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "<nil>"
	}
	return t.String()
}
