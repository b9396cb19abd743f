// Package router is where a switchyard processor is assembled: its
// configuration and command-line flags, the backend factory that connects to
// Pulsar, MQTT or the in-process memory broker, the Router that runs typed
// handlers between queues, and Processor, which turns a setup function into
// a complete binary with graceful shutdown.
//
// A processor in full:
//
//	func main() {
//		router.Processor{
//			Name:  "echo",
//			Usage: "answers every request with its own text",
//			Setup: func(c *cli.Context, r *router.Router) error {
//				in, _ := schema.ParseTopic("q1/tg/flow/echo-request")
//				out, _ := schema.ParseTopic("q1/tg/flow/echo-response")
//				return router.Handle(r, "echo", in, out,
//					func(ctx context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
//						return &schema.TextCompletionResponse{Response: req.Prompt}, nil
//					})
//			},
//		}.Main()
//	}
package router
