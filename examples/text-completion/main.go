// Command text-completion is a TrustGraph text completion service backed by
// any OpenAI-compatible chat completions server (OpenAI, Ollama, vLLM,
// llama.cpp). It takes the command line of TrustGraph's
// text-completion-openai and replaces it on a live deployment: it follows
// the configuration service for the flows assigned to --id (default
// text-completion), consumes each flow's "request" queue and answers on its
// "response" queue.
//
//	text-completion --pubsub-backend pulsar -m gpt-4o-mini -k "$OPENAI_TOKEN"
//	text-completion --id text-completion-rag -u http://localhost:11434/v1 -m llama3.1
//
// Handling, as TrustGraph's LLM service:
//
//   - operation "list-models": one response with the server's models
//     (GET /models) and end_of_stream set;
//   - a completion uses the flow's "model" parameter, else --model, and the
//     flow's "temperature" parameter, else --temperature. System and prompt
//     go as one user message, system, a blank line, then the prompt, as
//     TrustGraph's OpenAI processor sends them;
//   - streaming requests get one response per piece of text (in_token,
//     out_token null, end_of_stream false) and a final response with empty
//     text, the token counts and end_of_stream set; others get one response
//     with the text, the counts and end_of_stream set; model is the model
//     asked for, as the metering service prices it;
//   - a rate limit (HTTP 429 other than insufficient_quota) sends nothing:
//     the request is delivered again after the pause the server asked for
//     (Retry-After), at most the handler's max deliveries, never in a tight
//     loop; any other failure is answered at once with an llm-error
//     response, also when it happens in the middle of a stream;
//   - an operation other than "completion" and "list-models" is answered
//     with a not-implemented error (TrustGraph would run it as a completion).
//
// --variant and --thinking take TrustGraph's choices, but only the openai
// variant's wire is implemented: max_completion_tokens, and with --thinking
// other than off, reasoning_effort and temperature 1. Other variants are
// accepted and sent the same wire, with a warning at start.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/flow"
	"github.com/switchyard-go/switchyard/llm"
	"github.com/switchyard-go/switchyard/llm/openai"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// Name is the binary name and the default processor id, TrustGraph's ident.
const Name = "text-completion"

// Defaults of the flags, TrustGraph's.
const (
	DefaultModel       = "gpt-3.5-turbo"
	DefaultTemperature = 0.0
	DefaultMaxOutput   = 4096
	DefaultThinking    = "off"
	DefaultVariant     = "openai"
)

// ErrorType is the type of the error responses, TrustGraph's.
const ErrorType = "llm-error"

// Thinking and variant choices, as TrustGraph lists them.
var (
	thinkingChoices = []string{"off", "low", "medium", "high"}
	variantChoices  = []string{"openai", "deepseek", "qwen", "mistral", "dashscope", "glm", "llama", "vllm"}
)

// Config is the service's own configuration.
type Config struct {
	// Model is the model used when the flow has no "model" parameter.
	Model string
	// APIKey and APIKeyFile authenticate to the server (at most one).
	APIKey, APIKeyFile string
	// URL is the API root, e.g. https://api.openai.com/v1.
	URL string
	// Temperature is used when the flow has no "temperature" parameter.
	Temperature float64
	// MaxOutput bounds the output tokens of a completion.
	MaxOutput int
	// Thinking is off, low, medium or high.
	Thinking string
	// Variant is the OpenAI-compatible provider's flavour.
	Variant string
	// Timeout bounds a call to the server (each event of a stream).
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.URL == "" {
		c.URL = openai.DefaultBaseURL
	}
	if c.MaxOutput == 0 {
		c.MaxOutput = DefaultMaxOutput
	}
	if c.Thinking == "" {
		c.Thinking = DefaultThinking
	}
	if c.Variant == "" {
		c.Variant = DefaultVariant
	}
	if c.Timeout == 0 {
		c.Timeout = openai.DefaultTimeout
	}
}

// Validate reports the first invalid setting, naming its flag.
func (c Config) Validate() error {
	if c.MaxOutput < 1 {
		return fmt.Errorf("--max-output must be at least 1, got %d", c.MaxOutput)
	}
	if c.Temperature < 0 {
		return fmt.Errorf("--temperature must not be negative, got %g", c.Temperature)
	}
	if !slices.Contains(thinkingChoices, c.Thinking) {
		return fmt.Errorf("--thinking must be one of %s, got %q", strings.Join(thinkingChoices, ", "), c.Thinking)
	}
	if !slices.Contains(variantChoices, c.Variant) {
		return fmt.Errorf("--variant must be one of %s, got %q", strings.Join(variantChoices, ", "), c.Variant)
	}
	if c.APIKey != "" && c.APIKeyFile != "" {
		return errors.New("--api-key and --api-key-file are both set; give one")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("--llm-timeout must not be negative, got %s", c.Timeout)
	}
	return nil
}

// flags returns the service's flags bound to c, named as TrustGraph's
// text-completion-openai names them.
func (c *Config) flags() []cli.Flag {
	const cat = "Text completion"
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Value: DefaultModel, Destination: &c.Model, Category: cat,
			Usage: "model used when the flow sets no model parameter"},
		// No Value: --help must never show a key.
		&cli.StringFlag{Name: "api-key", Aliases: []string{"k"}, EnvVars: []string{"OPENAI_TOKEN"}, Destination: &c.APIKey, Category: cat,
			Usage: "API key (never printed); local servers need none"},
		&cli.StringFlag{Name: "api-key-file", EnvVars: []string{"OPENAI_TOKEN_FILE"}, Destination: &c.APIKeyFile, Category: cat,
			Usage: "file holding the API key (instead of --api-key)"},
		&cli.StringFlag{Name: "url", Aliases: []string{"u"}, EnvVars: []string{"OPENAI_BASE_URL"}, Value: openai.DefaultBaseURL, Destination: &c.URL, Category: cat,
			Usage: "API root of the OpenAI-compatible server, e.g. http://localhost:11434/v1 for Ollama"},
		&cli.Float64Flag{Name: "temperature", Aliases: []string{"t"}, Value: DefaultTemperature, Destination: &c.Temperature, Category: cat,
			Usage: "temperature used when the flow sets no temperature parameter"},
		&cli.IntFlag{Name: "max-output", Aliases: []string{"x"}, Value: DefaultMaxOutput, Destination: &c.MaxOutput, Category: cat,
			Usage: "most output tokens of a completion"},
		&cli.StringFlag{Name: "thinking", Value: DefaultThinking, Destination: &c.Thinking, Category: cat,
			Usage: "reasoning effort: " + strings.Join(thinkingChoices, ", ")},
		&cli.StringFlag{Name: "variant", Value: DefaultVariant, Destination: &c.Variant, Category: cat,
			Usage: "provider flavour: " + strings.Join(variantChoices, ", ") + " (only openai's wire is implemented)"},
		&cli.DurationFlag{Name: "llm-timeout", EnvVars: []string{"LLM_TIMEOUT"}, Value: openai.DefaultTimeout, Destination: &c.Timeout, Category: cat,
			Usage: "bound on a call to the server, and on each event of a stream"},
	}
}

// service answers text completion requests of every flow.
type service struct {
	id      string
	cfg     Config
	client  *openai.Client
	metrics *llm.CompletionMetrics
}

// setup validates cfg and connects the service to its server; id is the
// processor id, the metrics' processor label.
func (s *service) setup(id string, cfg Config) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return &processor.UsageError{Err: err}
	}
	c, err := openai.New(openai.Config{BaseURL: cfg.URL, APIKey: cfg.APIKey, APIKeyFile: cfg.APIKeyFile, Timeout: cfg.Timeout})
	if err != nil {
		return &processor.UsageError{Err: err}
	}
	s.id, s.cfg, s.client = id, cfg, c
	return nil
}

// specs are the flow specs: TrustGraph's LlmService's.
func (s *service) specs() []flow.Spec {
	return []flow.Spec{
		flow.HandleStream("request", "response", s.handle, router.WithErrorType(ErrorType)),
		flow.Parameter("model"),
		flow.Parameter("temperature"),
	}
}

type (
	request  = schema.TextCompletionRequest
	response = schema.TextCompletionResponse
)

// handle answers one request.
func (s *service) handle(ctx context.Context, req *request, emit func(*response) error) error {
	switch req.Operation {
	case schema.OperationListModels:
		return s.listModels(ctx, emit)
	case schema.OperationCompletion, "":
	default:
		return middleware.ErrorType("not-implemented", fmt.Errorf("operation %q is not implemented (want %q or %q)",
			req.Operation, schema.OperationCompletion, schema.OperationListModels))
	}
	creq, err := s.chatRequest(ctx, req)
	if err != nil {
		return middleware.ErrorType(ErrorType, err)
	}
	model := creq.Model
	start := time.Now()
	if !req.Streaming {
		res, err := s.client.Chat(ctx, creq)
		s.metrics.ObserveDuration(s.id, time.Since(start))
		if err != nil {
			return llm.Failure(ErrorType, err)
		}
		s.metrics.SetModel(s.id, model, formatTemperature(creq.Temperature))
		resp := &response{Response: res.Text, Model: &model, EndOfStream: true}
		if res.HasUsage {
			resp.InToken, resp.OutToken = &res.InTokens, &res.OutTokens
		}
		return emit(resp)
	}
	var usage *openai.Usage
	for ch, err := range s.client.ChatStream(ctx, creq) {
		if err != nil {
			s.metrics.ObserveDuration(s.id, time.Since(start))
			return llm.Failure(ErrorType, err)
		}
		if ch.Usage != nil {
			usage = ch.Usage
		}
		if ch.Text == "" {
			continue
		}
		if err := emit(&response{Response: ch.Text, Model: &model}); err != nil {
			return err
		}
	}
	s.metrics.ObserveDuration(s.id, time.Since(start))
	s.metrics.SetModel(s.id, model, formatTemperature(creq.Temperature))
	final := &response{Model: &model, EndOfStream: true}
	if usage != nil {
		final.InToken, final.OutToken = &usage.PromptTokens, &usage.CompletionTokens
	}
	return emit(final)
}

// listModels answers a list-models request.
func (s *service) listModels(ctx context.Context, emit func(*response) error) error {
	models, err := s.client.ListModels(ctx)
	if err != nil {
		return llm.Failure(ErrorType, err)
	}
	out := make([]schema.ModelInfo, 0, len(models))
	for _, m := range models {
		out = append(out, schema.ModelInfo{ID: m.ID, Name: m.Name, OwnedBy: m.OwnedBy, Created: m.Created,
			Description: m.Description, ContextLength: m.ContextLength})
	}
	return emit(&response{Models: out, EndOfStream: true})
}

// chatRequest builds the server request: the flow's model and temperature
// over the flags', the openai variant's wire.
func (s *service) chatRequest(ctx context.Context, req *request) (openai.ChatRequest, error) {
	model := s.cfg.Model
	if m, ok := flow.Param(ctx, "model"); ok && m != "" && !unresolved(m) {
		model = m
	}
	temperature := s.cfg.Temperature
	if t, ok := flow.Param(ctx, "temperature"); ok && t != "" && !unresolved(t) {
		v, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return openai.ChatRequest{}, fmt.Errorf("the flow parameter temperature %q is not a number", t)
		}
		temperature = v
	}
	prompt := req.Prompt
	if req.System != "" {
		prompt = req.System + "\n\n" + req.Prompt
	}
	creq := openai.ChatRequest{Model: model, Prompt: prompt, Temperature: &temperature, MaxTokens: s.cfg.MaxOutput,
		TokenParam: openai.MaxCompletionTokens, ResponseFormat: responseFormat(req)}
	if s.cfg.Thinking != "off" {
		one := 1.0
		creq.ReasoningEffort, creq.Temperature = s.cfg.Thinking, &one
	}
	return creq, nil
}

// unresolved reports a flow parameter the flow service left as its
// placeholder ("{llm-model}") because it had no value.
func unresolved(v string) bool {
	return len(v) > 2 && v[0] == '{' && v[len(v)-1] == '}' && !strings.ContainsAny(v, "\" :")
}

// responseFormat maps the request's response_format and schema onto the
// wire: a schema asks for json_schema, "json" or "json_object" for
// json_object; "text" or nothing leaves the server's default.
func responseFormat(req *request) *openai.ResponseFormat {
	if req.Schema != nil {
		return &openai.ResponseFormat{Type: "json_schema", JSONSchema: &openai.JSONSchema{Name: "response", Schema: *req.Schema}}
	}
	if req.ResponseFormat == nil {
		return nil
	}
	switch f := *req.ResponseFormat; f {
	case "", "text":
		return nil
	case "json", "json_object":
		return &openai.ResponseFormat{Type: "json_object"}
	default:
		return &openai.ResponseFormat{Type: f}
	}
}

func formatTemperature(t *float64) string {
	if t == nil {
		return ""
	}
	return strconv.FormatFloat(*t, 'f', -1, 64)
}

// processorID is the --id the processor runs as.
func processorID(c *cli.Context) string {
	if id := c.String("id"); id != "" {
		return id
	}
	return Name
}

func main() {
	var cfg Config
	m := llm.NewCompletionMetrics()
	svc := &service{metrics: m}
	processor.Processor{
		Name:  Name,
		Usage: "answer TrustGraph text completion requests with an OpenAI-compatible chat completions server",
		Flags: cfg.flags(),
		Flows: svc.specs(),
		FlowSetup: func(c *cli.Context) error {
			if err := svc.setup(processorID(c), cfg); err != nil {
				return err
			}
			if svc.cfg.Variant != "openai" {
				fmt.Fprintf(os.Stderr, "%s: --variant %s: only the openai variant's request shape is implemented; it is sent as is\n", Name, svc.cfg.Variant)
			}
			return nil
		},
		Collectors: m.Collectors(),
	}.Main()
}
