package processor

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// Handler is one handler of a processor together with the queues it reads
// and writes by default. The processor turns the queues into flags: with one
// handler --input and --output, with several --NAME-input and --NAME-output.
// Build one with Handle, HandleStream or Consume.
type Handler struct {
	name     string
	input    string
	output   string // empty for a sink
	register func(r *router.Router, in schema.Topic, out *schema.Topic) error

	inFlag, outFlag string
	inValue         string
	outValue        string
	in              schema.Topic
	out             *schema.Topic
}

// Handle declares a handler that answers each input on input with at most
// one output on output. Queues may be written in any accepted form.
func Handle[Req, Resp any](name, input, output string, fn middleware.Func[Req, Resp], opts ...router.HandlerOption) Handler {
	return Handler{name: name, input: input, output: output, register: func(r *router.Router, in schema.Topic, out *schema.Topic) error {
		return router.Handle(r, name, in, *out, fn, opts...)
	}}
}

// HandleStream declares a handler that answers each input with any number of
// outputs, published as they are emitted.
func HandleStream[Req, Resp any](name, input, output string, fn middleware.StreamFunc[Req, Resp], opts ...router.HandlerOption) Handler {
	return Handler{name: name, input: input, output: output, register: func(r *router.Router, in schema.Topic, out *schema.Topic) error {
		return router.HandleStream(r, name, in, *out, fn, opts...)
	}}
}

// Consume declares a sink on input.
func Consume[Req any](name, input string, fn middleware.SinkFunc[Req], opts ...router.HandlerOption) Handler {
	return Handler{name: name, input: input, register: func(r *router.Router, in schema.Topic, _ *schema.Topic) error {
		return router.Consume(r, name, in, fn, opts...)
	}}
}

// queueFlags returns the queue flags of handlers, bound to the handlers
// themselves.
func queueFlags(handlers []Handler) []cli.Flag {
	var flags []cli.Flag
	for i := range handlers {
		h := &handlers[i]
		h.inFlag, h.outFlag = "input", "output"
		if len(handlers) > 1 {
			h.inFlag, h.outFlag = h.name+"-input", h.name+"-output"
		}
		h.inValue, h.outValue = h.input, h.output
		flags = append(flags, &cli.StringFlag{
			Name: h.inFlag, Value: h.input, Destination: &h.inValue, Category: "Queues",
			Usage: fmt.Sprintf("queue %s reads, in any accepted form", h.name),
		})
		if h.output != "" {
			flags = append(flags, &cli.StringFlag{
				Name: h.outFlag, Value: h.output, Destination: &h.outValue, Category: "Queues",
				Usage: fmt.Sprintf("queue %s writes, in any accepted form", h.name),
			})
		}
	}
	return flags
}

// parseQueues parses each handler's queues. A bad queue name is an error
// that names the flag.
func parseQueues(handlers []Handler) error {
	for i := range handlers {
		h := &handlers[i]
		in, err := schema.ParseTopic(h.inValue)
		if err != nil {
			return fmt.Errorf("--%s: %w", h.inFlag, err)
		}
		h.in = in
		if h.output != "" {
			out, err := schema.ParseTopic(h.outValue)
			if err != nil {
				return fmt.Errorf("--%s: %w", h.outFlag, err)
			}
			h.out = &out
		}
	}
	return nil
}

// registerAll registers handlers, whose queues parseQueues parsed, on r.
func registerAll(r *router.Router, handlers []Handler) error {
	for _, h := range handlers {
		if err := h.register(r, h.in, h.out); err != nil {
			return err
		}
	}
	return nil
}
