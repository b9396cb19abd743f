// Command shout-llm is the processor shown in the README: it answers every
// TextCompletionRequest with the prompt in capitals. A test keeps the README's
// copy identical to this file.
package main

import (
	"context"
	"strings"

	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/schema"
)

func shout(_ context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
	return &schema.TextCompletionResponse{Response: strings.ToUpper(req.Prompt), EndOfStream: true}, nil
}

func main() {
	processor.Processor{
		Name:  "shout-llm",
		Usage: "answer completion requests in capitals",
		Handlers: []processor.Handler{
			processor.Handle("shout", "q1/tg/flow/text-completion-request", "q1/tg/flow/text-completion-response", shout),
		},
	}.Main()
}
