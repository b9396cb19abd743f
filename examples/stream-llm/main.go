// Command stream-llm is an example processor: a stand-in LLM whose streaming
// behaviour is set by flags, for testing clients against a live processor.
// A streaming TextCompletionRequest is answered with --chunks chunks, one
// every --interval; each chunk's text is "<index> <unix-nanoseconds>\n",
// the index counting from 0 and the time taken just before the chunk is
// emitted, so a client on the same machine can measure how long each chunk
// took to reach it. The last chunk sets end_of_stream and carries the token
// counts. A request without streaming is answered with one response,
// "<chunks> chunks".
//
// --fail-with TYPE:MESSAGE makes every request fail after --fail-after
// chunks (a request without streaming fails before answering). With a TYPE
// the failure is the handler's answer: an error response of that type,
// sent at once. With an empty TYPE (":MESSAGE") the failure is transient:
// the request is delivered again, and when its deliveries are used up it is
// answered with an llm-error response.
//
//	stream-llm --pubsub-backend pulsar --input request:tg:llm --output response:tg:llm --chunks 100 --interval 10ms
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// Model is the model name stream-llm reports.
const Model = "stream"

// DefaultChunks is how many chunks a stream has unless --chunks says.
const DefaultChunks = 10

// Config is how stream-llm answers.
type Config struct {
	// Chunks is how many chunks a streaming answer has. Default DefaultChunks.
	Chunks int
	// Interval is the pause before each chunk after the first.
	Interval time.Duration
	// FailWith, if set, is "TYPE:MESSAGE": every request fails with
	// MESSAGE, as an error response of TYPE, or transiently when TYPE is
	// empty.
	FailWith string
	// FailAfter is how many chunks a streaming answer emits before it
	// fails; it must be less than Chunks, so the failure comes before the
	// final chunk.
	FailAfter int
}

func (c *Config) setDefaults() {
	if c.Chunks == 0 {
		c.Chunks = DefaultChunks
	}
}

// Validate reports the first invalid setting, naming its flag.
func (c Config) Validate() error {
	if c.Chunks < 1 {
		return fmt.Errorf("--chunks must be at least 1, got %d", c.Chunks)
	}
	if c.Interval < 0 {
		return fmt.Errorf("--interval must not be negative, got %s", c.Interval)
	}
	if c.FailWith != "" && !strings.Contains(c.FailWith, ":") {
		return fmt.Errorf("--fail-with %q is not TYPE:MESSAGE", c.FailWith)
	}
	if c.FailAfter < 0 || c.FailAfter >= c.Chunks {
		return fmt.Errorf("--fail-after must be at least 0 and less than --chunks (%d), got %d", c.Chunks, c.FailAfter)
	}
	return nil
}

// failure returns the error a request fails with, nil when it does not fail.
func (c Config) failure() error {
	if c.FailWith == "" {
		return nil
	}
	errType, msg, _ := strings.Cut(c.FailWith, ":")
	err := errors.New(msg)
	if errType == "" {
		return err
	}
	return middleware.ErrorType(errType, err)
}

// answer is the handler: it streams cfg.Chunks chunks, or fails as cfg says.
func answer(cfg *Config) middleware.StreamFunc[schema.TextCompletionRequest, schema.TextCompletionResponse] {
	return func(ctx context.Context, req *schema.TextCompletionRequest, emit func(*schema.TextCompletionResponse) error) error {
		model := Model
		n := int64(cfg.Chunks)
		fail := cfg.failure()
		if !req.Streaming {
			if fail != nil {
				return fail
			}
			return emit(&schema.TextCompletionResponse{
				Response: fmt.Sprintf("%d chunks", n), InToken: &n, OutToken: &n, Model: &model, EndOfStream: true,
			})
		}
		for i := 0; i < cfg.Chunks; i++ {
			if fail != nil && i == cfg.FailAfter {
				return fail
			}
			if i > 0 && cfg.Interval > 0 {
				t := time.NewTimer(cfg.Interval)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
			last := i == cfg.Chunks-1
			resp := &schema.TextCompletionResponse{
				Response:    fmt.Sprintf("%d %d\n", i, time.Now().UnixNano()),
				Model:       &model,
				EndOfStream: last,
			}
			if last {
				resp.InToken, resp.OutToken = &n, &n
			}
			if err := emit(resp); err != nil {
				return err
			}
		}
		return nil
	}
}

func main() {
	var cfg Config
	processor.Processor{
		Name:  "stream-llm",
		Usage: "answer text completion requests with a stream of timestamped chunks, or fail as told",
		Handlers: []processor.Handler{
			processor.HandleStream("stream-llm", "q1/tg/flow/text-completion-request", "q1/tg/flow/text-completion-response",
				answer(&cfg), router.WithErrorType("llm-error")),
		},
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "chunks", Value: DefaultChunks, Destination: &cfg.Chunks, Usage: "chunks in a streaming answer"},
			&cli.DurationFlag{Name: "interval", Destination: &cfg.Interval, Usage: "pause before each chunk after the first"},
			&cli.StringFlag{Name: "fail-with", Destination: &cfg.FailWith, Usage: "TYPE:MESSAGE: fail every request with an error response of TYPE (empty TYPE: a transient failure, answered once deliveries are used up)"},
			&cli.IntFlag{Name: "fail-after", Destination: &cfg.FailAfter, Usage: "chunks a streaming answer emits before --fail-with fails it"},
		},
		Setup: func(*cli.Context, *router.Router) error {
			// Validate what the flags gave first: an explicit --chunks 0
			// is a mistake, not a request for the default.
			if err := cfg.Validate(); err != nil {
				return &processor.UsageError{Err: err}
			}
			cfg.setDefaults()
			return nil
		},
	}.Main()
}
