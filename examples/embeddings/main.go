// Command embeddings is a TrustGraph embeddings service backed by any
// OpenAI-compatible /embeddings endpoint (OpenAI, Ollama's /v1, vLLM,
// llama.cpp). It follows the configuration service for the flows assigned
// to --id (default embeddings), consumes each flow's "request" queue and
// answers on its "response" queue, as TrustGraph's embeddings processors do.
//
//	embeddings --pubsub-backend pulsar -m text-embedding-3-small -k "$OPENAI_TOKEN"
//	embeddings -u http://localhost:11434/v1 -m mxbai-embed-large
//
// Each request's texts are embedded in one call with the flow's "model"
// parameter, else --model, and answered with one vector per text, in order.
// A rate limit (HTTP 429 other than insufficient_quota) sends nothing: the
// request is delivered again after the pause the server asked for; any
// other failure is answered at once with an embeddings-error response.
package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/flow"
	"github.com/switchyard-go/switchyard/llm"
	"github.com/switchyard-go/switchyard/llm/openai"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// Name is the binary name and the default processor id, TrustGraph's ident.
const Name = "embeddings"

// DefaultModel is the model used when neither the flow nor --model names one.
const DefaultModel = "text-embedding-3-small"

// ErrorType is the type of the error responses, TrustGraph's.
const ErrorType = "embeddings-error"

// Config is the service's own configuration.
type Config struct {
	// Model is the model used when the flow has no "model" parameter.
	Model string
	// APIKey and APIKeyFile authenticate to the server (at most one).
	APIKey, APIKeyFile string
	// URL is the API root, e.g. https://api.openai.com/v1.
	URL string
	// Timeout bounds a call to the server.
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.URL == "" {
		c.URL = openai.DefaultBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = openai.DefaultTimeout
	}
}

// Validate reports the first invalid setting, naming its flag.
func (c Config) Validate() error {
	if c.APIKey != "" && c.APIKeyFile != "" {
		return errors.New("--api-key and --api-key-file are both set; give one")
	}
	if c.Timeout < 0 {
		return errors.New("--llm-timeout must not be negative, got " + c.Timeout.String())
	}
	return nil
}

// flags returns the service's flags bound to c.
func (c *Config) flags() []cli.Flag {
	const cat = "Embeddings"
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
		&cli.DurationFlag{Name: "llm-timeout", EnvVars: []string{"LLM_TIMEOUT"}, Value: openai.DefaultTimeout, Destination: &c.Timeout, Category: cat,
			Usage: "bound on a call to the server"},
	}
}

// service answers embeddings requests of every flow.
type service struct {
	id      string
	cfg     Config
	client  *openai.Client
	metrics *llm.EmbeddingsMetrics
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

// specs are the flow specs: TrustGraph's EmbeddingsService's.
func (s *service) specs() []flow.Spec {
	return []flow.Spec{
		flow.Handle("request", "response", s.handle, router.WithErrorType(ErrorType)),
		flow.Parameter("model"),
	}
}

// handle embeds one request's texts.
func (s *service) handle(ctx context.Context, req *schema.EmbeddingsRequest) (*schema.EmbeddingsResponse, error) {
	model := s.cfg.Model
	if m, ok := flow.Param(ctx, "model"); ok && m != "" && !unresolved(m) {
		model = m
	}
	start := time.Now()
	vectors, err := s.client.Embeddings(ctx, model, req.Texts)
	s.metrics.Observe(s.id, model, len(req.Texts), time.Since(start))
	if err != nil {
		return nil, llm.Failure(ErrorType, err)
	}
	return &schema.EmbeddingsResponse{Vectors: vectors}, nil
}

// unresolved reports a flow parameter the flow service left as its
// placeholder ("{embeddings-model}") because it had no value.
func unresolved(v string) bool {
	return len(v) > 2 && v[0] == '{' && v[len(v)-1] == '}' && !strings.ContainsAny(v, "\" :")
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
	m := llm.NewEmbeddingsMetrics()
	svc := &service{metrics: m}
	processor.Processor{
		Name:       Name,
		Usage:      "answer TrustGraph embeddings requests with an OpenAI-compatible embeddings server",
		Flags:      cfg.flags(),
		Flows:      svc.specs(),
		FlowSetup:  func(c *cli.Context) error { return svc.setup(processorID(c), cfg) },
		Collectors: m.Collectors(),
	}.Main()
}
