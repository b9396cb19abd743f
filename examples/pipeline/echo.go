package pipeline

import (
	"context"
	"strings"

	"github.com/switchyard-go/switchyard/schema"
)

// EchoModel is the model name the echo LLM reports.
const EchoModel = "echo"

// Echo is a stand-in LLM: it answers a completion request with the prompt
// itself, reporting word counts as token usage. With streaming on it answers
// word by word and marks the last chunk with end_of_stream. The list-models
// operation returns the echo model; any other operation is answered with an
// error response, as a client waiting for a reply expects.
func Echo(_ context.Context, req *schema.TextCompletionRequest, emit func(*schema.TextCompletionResponse) error) error {
	model := EchoModel
	switch req.Operation {
	case "completion", "":
	case "list-models":
		return emit(&schema.TextCompletionResponse{
			Model: &model, EndOfStream: true,
			Models: []schema.ModelInfo{{ID: EchoModel, Name: &model}},
		})
	default:
		return emit(&schema.TextCompletionResponse{
			Error:       &schema.Error{Type: "bad-request", Message: "unknown operation " + req.Operation},
			EndOfStream: true,
		})
	}
	in := int64(len(strings.Fields(req.System)) + len(strings.Fields(req.Prompt)))
	out := int64(len(strings.Fields(req.Prompt)))
	if !req.Streaming {
		return emit(&schema.TextCompletionResponse{
			Response: req.Prompt, InToken: &in, OutToken: &out, Model: &model, EndOfStream: true,
		})
	}
	words := strings.SplitAfter(req.Prompt, " ")
	for i, w := range words {
		last := i == len(words)-1
		resp := &schema.TextCompletionResponse{Response: w, Model: &model, EndOfStream: last}
		if last {
			resp.InToken, resp.OutToken = &in, &out
		}
		if err := emit(resp); err != nil {
			return err
		}
	}
	return nil
}
