// Command shout-llm is the processor shown in the README: it answers every
// TextCompletionRequest with the prompt in capitals. A test keeps the README's
// copy identical to this file.
package main

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

func shout(_ context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
	return &schema.TextCompletionResponse{Response: strings.ToUpper(req.Prompt), EndOfStream: true}, nil
}

func main() {
	var input, output string
	router.Processor{
		Name:  "shout-llm",
		Usage: "answer completion requests in capitals",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Value: "q1/tg/flow/text-completion-request", Destination: &input},
			&cli.StringFlag{Name: "output", Value: "q1/tg/flow/text-completion-response", Destination: &output},
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
			return router.Handle(r, "shout", in, out, shout)
		},
	}.Main()
}
