package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// TokenParam names the request field that bounds the output tokens.
type TokenParam string

// The two spellings servers accept. OpenAI deprecated max_tokens for
// max_completion_tokens (its reasoning models refuse max_tokens); vLLM
// accepts both; some older OpenAI-compatible servers know only max_tokens.
const (
	MaxCompletionTokens TokenParam = "max_completion_tokens"
	MaxTokens           TokenParam = "max_tokens"
)

// ChatRequest is one chat completion: an optional system message and one
// user message.
type ChatRequest struct {
	// Model names the model. Required.
	Model string
	// System, if not empty, is sent as a system message before Prompt.
	System string
	// Prompt is the user message.
	Prompt string
	// Temperature, if set, is sent; nil leaves the server's default.
	Temperature *float64
	// MaxTokens, if positive, bounds the output tokens.
	MaxTokens int
	// TokenParam is the field MaxTokens is sent in. Default
	// MaxCompletionTokens.
	TokenParam TokenParam
	// ReasoningEffort, if set ("low", "medium", "high"), is sent as
	// reasoning_effort.
	ReasoningEffort string
	// ResponseFormat, if set, asks for structured output.
	ResponseFormat *ResponseFormat
}

// ResponseFormat is the response_format field: {"type":"json_object"}, or
// {"type":"json_schema","json_schema":{...}} with a schema.
type ResponseFormat struct {
	// Type is "text", "json_object" or "json_schema".
	Type string `json:"type"`
	// JSONSchema is set with Type "json_schema".
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema names a JSON schema the answer must follow.
type JSONSchema struct {
	// Name names the schema (letters, digits, '_' and '-').
	Name string `json:"name"`
	// Schema is the JSON schema.
	Schema map[string]any `json:"schema"`
	// Strict, if set, asks the server to follow the schema exactly.
	Strict *bool `json:"strict,omitempty"`
}

// Usage is a completion's token counts.
type Usage struct {
	// PromptTokens counts the input tokens.
	PromptTokens int64
	// CompletionTokens counts the output tokens.
	CompletionTokens int64
}

// ChatResult is a whole completion.
type ChatResult struct {
	// Text is the answer's content ("" when the server sent none).
	Text string
	// InTokens and OutTokens are the usage the server reported; zero with
	// HasUsage false when it reported none.
	InTokens, OutTokens int64
	// HasUsage says whether the server reported usage.
	HasUsage bool
	// Model is the model the server says answered; the requested one when
	// it did not say.
	Model string
	// FinishReason is why the answer ended ("stop", "length", ...), if said.
	FinishReason string
}

// wireMessage is one chat message.
type wireMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// wireChatRequest is the body of POST /chat/completions.
type wireChatRequest struct {
	Model               string          `json:"model"`
	Messages            []wireMessage   `json:"messages"`
	Temperature         *float64        `json:"temperature,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *streamOptions  `json:"stream_options,omitempty"`
}

type wireUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

type wireContent struct {
	Content *string `json:"content"`
}

type wireChoice struct {
	Message      wireContent `json:"message"`
	Delta        wireContent `json:"delta"`
	FinishReason *string     `json:"finish_reason"`
}

// wireChatResponse is a chat completion, or one chunk of a stream.
type wireChatResponse struct {
	Model   string          `json:"model"`
	Choices []wireChoice    `json:"choices"`
	Usage   *wireUsage      `json:"usage"`
	Error   json.RawMessage `json:"error"`
}

// body builds the wire request.
func (r ChatRequest) body(stream bool) (*wireChatRequest, error) {
	if r.Model == "" {
		return nil, errors.New("openai: the chat request names no model")
	}
	w := &wireChatRequest{Model: r.Model, Temperature: r.Temperature, ReasoningEffort: r.ReasoningEffort, ResponseFormat: r.ResponseFormat}
	if r.System != "" {
		w.Messages = append(w.Messages, wireMessage{Role: "system", Content: r.System})
	}
	w.Messages = append(w.Messages, wireMessage{Role: "user", Content: r.Prompt})
	if r.MaxTokens > 0 {
		n := r.MaxTokens
		switch r.TokenParam {
		case "", MaxCompletionTokens:
			w.MaxCompletionTokens = &n
		case MaxTokens:
			w.MaxTokens = &n
		default:
			return nil, fmt.Errorf("openai: unknown token parameter %q (want %s or %s)", r.TokenParam, MaxCompletionTokens, MaxTokens)
		}
	}
	if stream {
		w.Stream = true
		w.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	return w, nil
}

// Chat asks for a whole completion (POST /chat/completions).
func (c *Client) Chat(ctx context.Context, req ChatRequest) (ChatResult, error) {
	body, err := req.body(false)
	if err != nil {
		return ChatResult{}, err
	}
	var resp wireChatResponse
	if err := c.call(ctx, http.MethodPost, "/chat/completions", body, &resp); err != nil {
		return ChatResult{}, err
	}
	return c.result(req.Model, &resp)
}

// result turns a whole completion into a ChatResult.
func (c *Client) result(model string, resp *wireChatResponse) (ChatResult, error) {
	if err := c.embeddedError(resp.Error); err != nil {
		return ChatResult{}, err
	}
	if len(resp.Choices) == 0 {
		return ChatResult{}, &ResponseError{Op: "POST /chat/completions", Problem: "the answer has no choices"}
	}
	ch := resp.Choices[0]
	out := ChatResult{Model: resp.Model}
	if out.Model == "" {
		out.Model = model
	}
	if ch.Message.Content != nil {
		out.Text = *ch.Message.Content
	}
	if ch.FinishReason != nil {
		out.FinishReason = *ch.FinishReason
	}
	if resp.Usage != nil {
		out.InTokens, out.OutTokens, out.HasUsage = resp.Usage.PromptTokens, resp.Usage.CompletionTokens, true
	}
	return out, nil
}

// embeddedError returns the error an answer carries in its body (a stream
// event, or a server that answers 200 with an error object), nil if none.
func (c *Client) embeddedError(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	body, _ := json.Marshal(struct {
		Error json.RawMessage `json:"error"`
	}{raw})
	typ, code, _, _ := parseErrorBody(body)
	// vLLM puts the HTTP status in code.
	var status int
	if _, err := fmt.Sscanf(code, "%d", &status); err == nil && status >= 400 && status <= 599 {
		return classify(status, http.Header{}, body, c.redact, time.Now())
	}
	err := classify(http.StatusInternalServerError, http.Header{}, body, c.redact, time.Now())
	var api *APIError
	if errors.As(err, &api) {
		api.StatusCode = http.StatusOK
		api.Permanent = permanentCodes[code] || permanentCodes[typ]
		if code == "rate_limit_exceeded" || typ == "rate_limit_exceeded" {
			return &RateLimitError{APIError: *api}
		}
	}
	return err
}
