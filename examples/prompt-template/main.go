// Command prompt-template is an example processor that sits in front of an
// LLM: it renders each PromptRequest through a named template into a
// TextCompletionRequest, keeping the id property, so a chain of
// prompt-template and echo-llm answers prompt requests end to end.
//
//	prompt-template --input q1/tg/flow/prompt-request --output q1/tg/flow/text-completion-request
package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/examples/pipeline"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

func main() {
	var templates string
	t := pipeline.Templater{Templates: pipeline.DefaultTemplates}
	// The closure reads t when called, after Setup may have loaded a file.
	render := func(ctx context.Context, req *schema.PromptRequest) (*schema.TextCompletionRequest, error) {
		return t.Render(ctx, req)
	}
	processor.Processor{
		Name:  "prompt-template",
		Usage: "render prompt requests into text completion requests",
		Handlers: []processor.Handler{
			processor.Handle("prompt-template", "q1/tg/flow/prompt-request", "q1/tg/flow/text-completion-request", render),
		},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "templates", Usage: "JSON file of name -> {system, prompt} templates (default: built-in question and summarize)", Destination: &templates},
		},
		Setup: func(*cli.Context, *router.Router) error {
			if templates == "" {
				return nil
			}
			loaded, err := pipeline.LoadTemplates(templates)
			if err != nil {
				return processor.Usagef("--templates: %v", err)
			}
			t.Templates = loaded
			return nil
		},
	}.Main()
}
