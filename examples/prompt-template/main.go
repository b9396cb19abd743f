// Command prompt-template is an example processor that sits in front of an
// LLM: it renders each PromptRequest through a named template into a
// TextCompletionRequest, keeping the id property, so a chain of
// prompt-template and echo-llm answers prompt requests end to end.
//
//	prompt-template --input q1/tg/flow/prompt-request --output q1/tg/flow/text-completion-request
package main

import (
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/examples/pipeline"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

func main() {
	var input, output, templates string
	router.Processor{
		Name:  "prompt-template",
		Usage: "render prompt requests into text completion requests",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Value: "q1/tg/flow/prompt-request", Usage: "queue of PromptRequest", Destination: &input},
			&cli.StringFlag{Name: "output", Value: "q1/tg/flow/text-completion-request", Usage: "queue of TextCompletionRequest", Destination: &output},
			&cli.StringFlag{Name: "templates", Usage: "JSON file of name -> {system, prompt} templates (default: built-in question and summarize)", Destination: &templates},
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
			t := pipeline.Templater{Templates: pipeline.DefaultTemplates}
			if templates != "" {
				if t.Templates, err = pipeline.LoadTemplates(templates); err != nil {
					return router.Usagef("--templates: %v", err)
				}
			}
			return router.Handle(r, "prompt-template", in, out, t.Render)
		},
	}.Main()
}
