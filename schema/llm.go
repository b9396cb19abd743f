package schema

// Message types of TrustGraph's trustgraph.schema.llm module: text
// completion, tools, prompts and image to text.

// Operations of a TextCompletionRequest.
const (
	// OperationCompletion asks for a completion of the prompt.
	OperationCompletion = "completion"
	// OperationListModels asks for the models the service offers, returned
	// in TextCompletionResponse.Models.
	OperationListModels = "list-models"
)

// TextCompletionRequest asks an LLM service for a completion. Operation is
// "completion" (the default) or "list-models". With Streaming set the reply
// comes as several TextCompletionResponse messages, the last one with
// EndOfStream set. ResponseFormat and Schema, when set, ask for structured
// output.
type TextCompletionRequest struct {
	Operation      string          `json:"operation" default:"completion"`
	System         string          `json:"system"`
	Prompt         string          `json:"prompt"`
	Streaming      bool            `json:"streaming"`
	ResponseFormat *string         `json:"response_format"`
	Schema         *map[string]any `json:"schema"`
}

// ModelInfo describes a model in the reply to a "list-models" operation.
// Only ID is always set.
type ModelInfo struct {
	ID                string   `json:"id"`
	Name              *string  `json:"name"`
	OwnedBy           *string  `json:"owned_by"`
	Created           *int64   `json:"created"`
	Description       *string  `json:"description"`
	ContextLength     *int64   `json:"context_length"`
	MaxOutputLength   *int64   `json:"max_output_length"`
	InputModalities   []string `json:"input_modalities"`
	OutputModalities  []string `json:"output_modalities"`
	SupportedFeatures []string `json:"supported_features"`
	InputPrice        *float64 `json:"input_price"`
	OutputPrice       *float64 `json:"output_price"`
	Family            *string  `json:"family"`
	ParameterSize     *string  `json:"parameter_size"`
	Quantization      *string  `json:"quantization"`
	Format            *string  `json:"format"`
}

// TextCompletionResponse is a reply of an LLM service. For a completion it
// carries the text and token counts; a streamed reply is several messages
// whose Response pieces concatenate, the last one with EndOfStream
// (`end_of_stream`) set. For "list-models" it carries Models. Error is set
// when the request failed.
type TextCompletionResponse struct {
	Error       *Error      `json:"error"`
	Response    string      `json:"response"`
	InToken     *int64      `json:"in_token"`
	OutToken    *int64      `json:"out_token"`
	Model       *string     `json:"model"`
	EndOfStream bool        `json:"end_of_stream"`
	Models      []ModelInfo `json:"models"`
}

// ToolRequest invokes a tool by name. Parameters is a JSON-encoded object.
type ToolRequest struct {
	Name       string `json:"name"`
	Parameters string `json:"parameters"`
}

// ToolResponse is a tool's reply: Text for plain text, Object for a
// JSON-encoded result. Error is set when the tool failed.
type ToolResponse struct {
	Error  *Error `json:"error"`
	Text   string `json:"text"`
	Object string `json:"object"`
}

// PromptRequest asks the prompt service to fill the template ID with Terms,
// whose values are JSON-encoded. With Streaming set the reply comes as
// several PromptResponse messages, the last one with EndOfStream set.
type PromptRequest struct {
	ID        string            `json:"id"`
	Terms     map[string]string `json:"terms"`
	Streaming bool              `json:"streaming"`
}

// PromptResponse is a reply of the prompt service: Text for plain text,
// Object for a JSON-encoded result. EndOfStream (`end_of_stream`) marks the
// last message of a streamed reply. The token counts and model come from the
// underlying text completion. Error is set when the request failed.
type PromptResponse struct {
	Error       *Error  `json:"error"`
	Text        string  `json:"text"`
	Object      string  `json:"object"`
	EndOfStream bool    `json:"end_of_stream"`
	InToken     *int64  `json:"in_token"`
	OutToken    *int64  `json:"out_token"`
	Model       *string `json:"model"`
}

// ImageToTextRequest asks for a description of an image. Image is the
// base64-encoded image data and MimeType its type (e.g. "image/png").
type ImageToTextRequest struct {
	Image    string `json:"image"`
	MimeType string `json:"mime_type"`
	Prompt   string `json:"prompt"`
	System   string `json:"system"`
}

// ImageToTextResponse is the reply to an ImageToTextRequest: the
// description with token counts and model, or Error.
type ImageToTextResponse struct {
	Error       *Error  `json:"error"`
	Description string  `json:"description"`
	InToken     *int64  `json:"in_token"`
	OutToken    *int64  `json:"out_token"`
	Model       *string `json:"model"`
}
