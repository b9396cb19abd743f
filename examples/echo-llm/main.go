// Command echo-llm is an example processor: a stand-in LLM that answers each
// TextCompletionRequest with a TextCompletionResponse echoing the prompt,
// carrying the request's id property.
//
//	echo-llm --pubsub-backend mqtt --input q1/tg/flow/text-completion-request --output q1/tg/flow/text-completion-response
package main

import (
	"github.com/switchyard-go/switchyard/examples/pipeline"
	"github.com/switchyard-go/switchyard/processor"
)

func main() {
	processor.Processor{
		Name:  "echo-llm",
		Usage: "answer text completion requests with the prompt itself",
		Handlers: []processor.Handler{
			processor.HandleStream("echo-llm", "q1/tg/flow/text-completion-request", "q1/tg/flow/text-completion-response", pipeline.Echo),
		},
	}.Main()
}
