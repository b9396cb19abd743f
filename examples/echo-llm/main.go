// Command echo-llm is an example processor: a stand-in LLM that answers each
// TextCompletionRequest with a TextCompletionResponse echoing the prompt,
// carrying the request's id property.
//
//	echo-llm --pubsub-backend mqtt --input q1/tg/flow/text-completion-request --output q1/tg/flow/text-completion-response
package main

import (
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/examples/pipeline"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

func main() {
	var input, output string
	router.Processor{
		Name:  "echo-llm",
		Usage: "answer text completion requests with the prompt itself",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Value: "q1/tg/flow/text-completion-request", Usage: "queue of TextCompletionRequest", Destination: &input},
			&cli.StringFlag{Name: "output", Value: "q1/tg/flow/text-completion-response", Usage: "queue of TextCompletionResponse", Destination: &output},
		},
		Setup: func(_ *cli.Context, r *router.Router) error {
			in, err := schema.ParseTopic(input)
			if err != nil {
				return err
			}
			out, err := schema.ParseTopic(output)
			if err != nil {
				return err
			}
			return router.HandleStream(r, "echo-llm", in, out, pipeline.Echo)
		},
	}.Main()
}
