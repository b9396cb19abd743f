package flow

import (
	"context"
	"encoding/json"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// Spec is one part of a flow processor: a handler or a parameter. Build
// specs with Handle, HandleStream, Consume and Parameter.
type Spec struct {
	// input and output name the flow definition's topics the handler uses.
	input, output string
	param         string
	register      func(r *router.Router, in schema.Topic, out *schema.Topic, inst *Instance, opts []router.HandlerOption) error
	opts          []router.HandlerOption
}

// Handle declares a handler that consumes the flow's queue named input
// (e.g. "request") and answers on the queue named output (e.g. "response").
func Handle[Req, Resp any](input, output string, fn middleware.Func[Req, Resp], opts ...router.HandlerOption) Spec {
	return Spec{input: input, output: output, opts: opts,
		register: func(r *router.Router, in schema.Topic, out *schema.Topic, inst *Instance, opts []router.HandlerOption) error {
			return router.Handle(r, input, in, *out, func(ctx context.Context, req *Req) (*Resp, error) {
				return fn(withInstance(ctx, inst), req)
			}, opts...)
		}}
}

// HandleStream declares a streaming handler between the flow's queues named
// input and output.
func HandleStream[Req, Resp any](input, output string, fn middleware.StreamFunc[Req, Resp], opts ...router.HandlerOption) Spec {
	return Spec{input: input, output: output, opts: opts,
		register: func(r *router.Router, in schema.Topic, out *schema.Topic, inst *Instance, opts []router.HandlerOption) error {
			return router.HandleStream(r, input, in, *out, func(ctx context.Context, req *Req, emit func(*Resp) error) error {
				return fn(withInstance(ctx, inst), req, emit)
			}, opts...)
		}}
}

// Consume declares a sink on the flow's queue named input.
func Consume[Req any](input string, fn middleware.SinkFunc[Req], opts ...router.HandlerOption) Spec {
	return Spec{input: input, opts: opts,
		register: func(r *router.Router, in schema.Topic, _ *schema.Topic, inst *Instance, opts []router.HandlerOption) error {
			return router.Consume(r, input, in, func(ctx context.Context, req *Req) error {
				return fn(withInstance(ctx, inst), req)
			}, opts...)
		}}
}

// Parameter declares a flow parameter the handlers read with Param. It
// documents what the processor reads; a flow without it still starts, and
// Param reports it missing.
func Parameter(name string) Spec { return Spec{param: name} }

// Instance is one running flow of the processor.
type Instance struct {
	// Workspace and Flow identify the flow.
	Workspace, Flow string
	// Topics maps the definition's spec names to queue names.
	Topics map[string]string
	// Parameters holds the definition's parameters as JSON values.
	Parameters map[string]json.RawMessage
}

type instanceKey struct{}

func withInstance(ctx context.Context, inst *Instance) context.Context {
	return context.WithValue(ctx, instanceKey{}, inst)
}

// From returns the flow a handler's ctx belongs to.
func From(ctx context.Context) (*Instance, bool) {
	inst, ok := ctx.Value(instanceKey{}).(*Instance)
	return inst, ok
}

// Param returns the flow parameter name of the handler's flow: a string
// parameter as its text, any other JSON value as its JSON. ok is false when
// the flow has no such parameter or it is null, as TrustGraph's flow(name)
// returns None.
func Param(ctx context.Context, name string) (value string, ok bool) {
	inst, found := From(ctx)
	if !found {
		return "", false
	}
	raw, found := inst.Parameters[name]
	if !found || string(raw) == "null" {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	return string(raw), true
}
