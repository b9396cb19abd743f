package middleware

import (
	"context"
	"fmt"
	"reflect"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/schema"
)

// IDProperty is the message property that correlates a request with its
// responses. Every output carries the `id` of the input it answers.
const IDProperty = "id"

// Func is a message-in/message-out handler. Returning a nil response and a nil
// error publishes nothing and acks the input.
type Func[Req, Resp any] func(ctx context.Context, req *Req) (*Resp, error)

// StreamFunc is a handler that answers one input with any number of outputs,
// for example a streaming completion. It calls emit for each output in order.
type StreamFunc[Req, Resp any] func(ctx context.Context, req *Req, emit func(*Resp) error) error

// SinkFunc is a handler that consumes messages and produces none.
type SinkFunc[Req any] func(ctx context.Context, req *Req) error

// Handle adapts fn to a watermill handler: it decodes the payload into a new
// *Req with the schema codec (declared defaults applied), calls fn with the
// message context, encodes the response and copies the input's `id` property
// onto it. An undecodable payload yields a *DecodeError, which the Poison
// middleware sends to the poison queue.
func Handle[Req, Resp any](fn Func[Req, Resp]) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		req, err := decode[Req](msg)
		if err != nil {
			return nil, err
		}
		resp, err := fn(msg.Context(), req)
		if err != nil || resp == nil {
			return nil, err
		}
		out, err := encode(msg, resp)
		if err != nil {
			return nil, err
		}
		return []*message.Message{out}, nil
	}
}

// HandleStream adapts fn like Handle, for handlers that emit several outputs.
// The outputs are published together, in order, before the input is acked.
func HandleStream[Req, Resp any](fn StreamFunc[Req, Resp]) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		req, err := decode[Req](msg)
		if err != nil {
			return nil, err
		}
		var outs []*message.Message
		emit := func(resp *Resp) error {
			out, err := encode(msg, resp)
			if err != nil {
				return err
			}
			outs = append(outs, out)
			return nil
		}
		if err := fn(msg.Context(), req, emit); err != nil {
			return nil, err
		}
		return outs, nil
	}
}

// Consume adapts a sink function to a watermill handler that publishes nothing.
func Consume[Req any](fn SinkFunc[Req]) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		req, err := decode[Req](msg)
		if err != nil {
			return nil, err
		}
		return nil, fn(msg.Context(), req)
	}
}

func decode[Req any](msg *message.Message) (*Req, error) {
	req := new(Req)
	if err := schema.Unmarshal(msg.Payload, req); err != nil {
		return nil, &DecodeError{Type: typeName(req), Err: err}
	}
	return req, nil
}

func encode(in *message.Message, resp any) (*message.Message, error) {
	payload, err := schema.Marshal(resp)
	if err != nil {
		// A response that cannot be encoded is a bug in the handler; retrying
		// will not change it.
		return nil, Permanent(fmt.Errorf("cannot encode %s: %w", typeName(resp), err))
	}
	out := message.NewMessage(watermill.NewUUID(), payload)
	if id := in.Metadata.Get(IDProperty); id != "" {
		out.Metadata.Set(IDProperty, id)
	}
	return out, nil
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
