package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-go/switchyard/flow"
	"github.com/switchyard-go/switchyard/internal/flowtest"
	"github.com/switchyard-go/switchyard/llm"
	"github.com/switchyard-go/switchyard/llm/openai/openaitest"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/rrclient"
	"github.com/switchyard-go/switchyard/schema"
)

const (
	testKey   = "sk-proj-SECRETKEY0123456789"
	flowModel = "gpt-4o-mini"
)

// env is a text-completion processor running in process on the memory
// backend, with a Go configuration service and a fake OpenAI server.
type env struct {
	srv     *openaitest.Server
	client  *rrclient.Client[request, response]
	metrics *llm.CompletionMetrics
	logs    *flowtest.Logs
}

// newEnv starts the processor with the flags cfg gives (the key and URL
// point at the fake server unless set) on flow default/default, whose
// parameters are params (JSON).
func newEnv(t *testing.T, bk flowtest.Kind, cfg Config, params string) *env {
	t.Helper()
	e := &env{srv: openaitest.New(t.Cleanup), metrics: llm.NewCompletionMetrics(), logs: &flowtest.Logs{}}
	e.srv.Key = testKey
	if cfg.URL == "" {
		cfg.URL = e.srv.BaseURL()
	}
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	log := processor.WatermillLogger(processor.NewLogger(e.logs, "debug"))
	b := flowtest.Open(t, bk, log)

	cs := flowtest.ConfigService(t, b, log)
	def := `{"topics": {"request": "request:tg:text-completion:default:default", "response": "response:tg:text-completion:default:default"}, "parameters": ` + params + `}`
	if err := cs.Put(context.Background(), "default", schema.ConfigValue{Type: "processor:" + Name, Key: "default", Value: def}); err != nil {
		t.Fatal(err)
	}

	svc := &service{metrics: e.metrics}
	if err := svc.setup(Name, cfg); err != nil {
		t.Fatal(err)
	}
	rt, err := flow.New(flow.Config{ID: Name, RetryInterval: 100 * time.Millisecond}, b, log, svc.specs()...)
	if err != nil {
		t.Fatal(err)
	}
	flowtest.Run(t, rt.Run, rt.Ready())
	if n := len(rt.Flows()); n != 1 {
		t.Fatalf("%d flows running, want 1", n)
	}
	if sub := rt.Flows()[0].Handlers[0].Subscription; sub != "text-completion--default--default--request" {
		t.Fatalf("subscription %q, want TrustGraph's", sub)
	}

	reqQ, _ := schema.ParseTopic("request:tg:text-completion:default:default")
	respQ, _ := schema.ParseTopic("response:tg:text-completion:default:default")
	c, err := rrclient.New[request, response](context.Background(), b, rrclient.Config{Request: reqQ, Response: respQ, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	e.client = c
	return e
}

func modelParams() string { return fmt.Sprintf(`{"model": %q}`, flowModel) }

func TestCompletion(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{Model: "flag-model", Temperature: 0.3}, modelParams())
		resp, err := e.client.Request(context.Background(), &request{System: "be brief", Prompt: "hello there"})
		if err != nil {
			t.Fatal(err)
		}
		want := openaitest.Reply(flowModel, "be brief\n\nhello there")
		words := int64(len(strings.SplitAfter(want, " ")))
		if resp.Response != want || !resp.EndOfStream || resp.Error != nil || resp.Model == nil || *resp.Model != flowModel ||
			resp.InToken == nil || *resp.InToken != 4 || resp.OutToken == nil || *resp.OutToken != words {
			t.Fatalf("response %+v, want %q from %s with 4 and %d tokens", resp, want, flowModel, words)
		}
		body := e.srv.Requests()[0].Body
		if body["model"] != flowModel || body["temperature"] != 0.3 || body["max_completion_tokens"] != 4096.0 || body["stream"] != nil {
			t.Fatalf("request body %v", body)
		}
		msgs := body["messages"].([]any)
		if len(msgs) != 1 || msgs[0].(map[string]any)["role"] != "user" {
			t.Fatalf("messages %v, want system and prompt in one user message", msgs)
		}
	})
}

// The flow's temperature parameter wins over --temperature; without a
// model parameter --model is used; --thinking sends reasoning_effort with
// temperature 1.
func TestParametersAndFlags(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{Model: "flag-model", Temperature: 0.3, MaxOutput: 50}, `{"temperature": 0.7}`)
		resp, err := e.client.Request(context.Background(), &request{Prompt: "p"})
		if err != nil {
			t.Fatal(err)
		}
		body := e.srv.Requests()[0].Body
		if *resp.Model != "flag-model" || body["model"] != "flag-model" || body["temperature"] != 0.7 || body["max_completion_tokens"] != 50.0 {
			t.Fatalf("model %q, body %v", *resp.Model, body)
		}

		e = newEnv(t, bk, Config{Thinking: "high"}, `{"model": "{llm-model}"}`)
		if _, err := e.client.Request(context.Background(), &request{Prompt: "p"}); err != nil {
			t.Fatal(err)
		}
		body = e.srv.Requests()[0].Body
		if body["model"] != DefaultModel || body["reasoning_effort"] != "high" || body["temperature"] != 1.0 {
			t.Fatalf("body %v, want the default model for an unresolved parameter, and reasoning", body)
		}
	})
}

func TestStreaming(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{}, modelParams())
		var chunks []*response
		for resp, err := range e.client.Stream(context.Background(), &request{Prompt: "stream this please", Streaming: true}) {
			if err != nil {
				t.Fatal(err)
			}
			chunks = append(chunks, resp)
		}
		want := openaitest.Reply(flowModel, "stream this please")
		pieces := strings.SplitAfter(want, " ")
		if len(chunks) != len(pieces)+1 {
			t.Fatalf("%d chunks, want %d text chunks and the final one", len(chunks), len(pieces))
		}
		for i, p := range pieces {
			c := chunks[i]
			if c.Response != p || c.EndOfStream || c.InToken != nil || c.OutToken != nil || c.Model == nil || *c.Model != flowModel || c.Error != nil {
				t.Fatalf("chunk %d: %+v, want %q", i, c, p)
			}
		}
		last := chunks[len(chunks)-1]
		if last.Response != "" || !last.EndOfStream || last.InToken == nil || *last.InToken != 3 || last.OutToken == nil ||
			*last.OutToken != int64(len(pieces)) || *last.Model != flowModel {
			t.Fatalf("final chunk %+v", last)
		}
		if opts := e.srv.Requests()[0].Body["stream_options"]; opts.(map[string]any)["include_usage"] != true {
			t.Fatalf("stream_options %v", opts)
		}
	})
}

func TestListModels(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{}, modelParams())
		resp, err := e.client.Request(context.Background(), &request{Operation: schema.OperationListModels})
		if err != nil {
			t.Fatal(err)
		}
		if !resp.EndOfStream || len(resp.Models) != 2 || resp.Models[0].ID != "gpt-4o-mini" || resp.Models[0].OwnedBy == nil ||
			*resp.Models[0].OwnedBy != "system" || resp.Models[1].Created == nil || *resp.Models[1].Created != 1705948997 {
			t.Fatalf("response %+v", resp)
		}
		if n := e.srv.Calls("/v1/chat/completions"); n != 0 {
			t.Fatalf("%d completions for a model list", n)
		}
	})
}

func responseError(t *testing.T, err error, wantType string) *rrclient.ResponseError {
	t.Helper()
	var re *rrclient.ResponseError
	if !errors.As(err, &re) || re.Type != wantType {
		t.Fatalf("error %v, want a %s response", err, wantType)
	}
	return re
}

// Upstream failures other than rate limits are answered at once with an
// llm-error response, without a second call.
func TestUpstreamErrors(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{}, modelParams())
		e.srv.Script("/v1/chat/completions", openaitest.ServerError(), openaitest.QuotaExhausted())
		_, err := e.client.Request(context.Background(), &request{Prompt: "p"})
		re := responseError(t, err, ErrorType)
		if !strings.Contains(re.Message, "HTTP 500") {
			t.Fatalf("message %q", re.Message)
		}
		_, err = e.client.Request(context.Background(), &request{Prompt: "p"})
		re = responseError(t, err, ErrorType)
		if !strings.Contains(re.Message, "insufficient_quota") {
			t.Fatalf("message %q", re.Message)
		}
		if n := e.srv.Calls("/v1/chat/completions"); n != 2 {
			t.Fatalf("%d calls for two failed requests, want 2", n)
		}
		e.srv.Script("/v1/models", openaitest.ServerError())
		_, err = e.client.Request(context.Background(), &request{Operation: schema.OperationListModels})
		responseError(t, err, ErrorType)
		_, err = e.client.Request(context.Background(), &request{Operation: "count-tokens"})
		responseError(t, err, "not-implemented")
	})
}

// A rate limit sends no response: the request is delivered again after the
// pause the server asked for, and then answered.
func TestRateLimitRetried(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{}, modelParams())
		e.srv.Script("/v1/chat/completions", openaitest.RateLimited("1"))
		start := time.Now()
		resp, err := e.client.Request(context.Background(), &request{Prompt: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < time.Second {
			t.Fatalf("answered after %s, before the 1s the server asked for", waited)
		}
		if resp.Response != openaitest.Reply(flowModel, "p") {
			t.Fatalf("response %+v", resp)
		}
		if n := e.srv.Calls("/v1/chat/completions"); n != 2 {
			t.Fatalf("%d calls, want the rate-limited one and the retry", n)
		}

	})
}

// A rate limit before the first chunk: the stream starts over after the
// pause and is answered whole.
func TestRateLimitRetriedStreaming(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{}, modelParams())
		e.srv.Script("/v1/chat/completions", openaitest.RateLimited("0.2"))
		var text string
		for c, err := range e.client.Stream(context.Background(), &request{Prompt: "q", Streaming: true}) {
			if err != nil {
				t.Fatal(err)
			}
			text += c.Response
		}
		if text != openaitest.Reply(flowModel, "q") {
			t.Fatalf("streamed %q", text)
		}
		if n := e.srv.Calls("/v1/chat/completions"); n != 2 {
			t.Fatalf("%d calls, want the rate-limited one and the retry", n)
		}
	})
}

// A stream that fails after some chunks ends with one llm-error response.
func TestStreamFailsMidway(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{}, modelParams())
		e.srv.CutStreamAfter(2)
		var got []string
		var streamErr error
		for c, err := range e.client.Stream(context.Background(), &request{Prompt: "a b c d e", Streaming: true}) {
			if err != nil {
				streamErr = err
				break
			}
			got = append(got, c.Response)
		}
		responseError(t, streamErr, ErrorType)
		if len(got) != 2 {
			t.Fatalf("chunks before the error %q, want 2", got)
		}
		if n := e.srv.Calls("/v1/chat/completions"); n != 1 {
			t.Fatalf("%d calls: a stream that started must not be repeated", n)
		}
	})
}

// The API key appears nowhere: not in error responses (even when the
// server quotes a wrong key back), not in logs.
func TestKeyNeverShown(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		wrong := "sk-proj-WRONGKEY9876543210"
		e := newEnv(t, bk, Config{APIKey: wrong}, modelParams())
		_, err := e.client.Request(context.Background(), &request{Prompt: "p"})
		re := responseError(t, err, ErrorType)
		if !strings.Contains(re.Message, "invalid_api_key") {
			t.Fatalf("message %q does not say why", re.Message)
		}
		good := newEnv(t, bk, Config{}, modelParams())
		if _, err := good.client.Request(context.Background(), &request{Prompt: "p"}); err != nil {
			t.Fatal(err)
		}
		// The error response is logged after it is sent: wait for the line,
		// or the check below would prove nothing.
		logs := e.logs.WaitFor(t, "Answered with an error response") + good.logs.String()
		for _, s := range []string{re.Message, err.Error(), logs} {
			for _, key := range []string{wrong, testKey, "WRONGKEY", "SECRETKEY"} {
				if strings.Contains(s, key) {
					t.Fatalf("%q shows in %q", key, s)
				}
			}
		}
	})
}

func TestMetrics(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{}, modelParams())
		reg := prometheus.NewRegistry()
		if err := reg.Register(e.metrics); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Request(context.Background(), &request{Prompt: "p"}); err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				seen = append(seen, mf.GetName())
				switch mf.GetName() {
				case "tg_text_completion_duration_seconds":
					if labels["processor"] != Name || m.GetHistogram().GetSampleCount() != 1 {
						t.Fatalf("duration %v %v", labels, m.GetHistogram())
					}
				case "tg_text_completion_model_info":
					if labels["processor"] != Name || labels["model"] != flowModel || labels["temperature"] != "0" {
						t.Fatalf("model info %v", labels)
					}
				}
			}
		}
		if len(seen) != 2 {
			t.Fatalf("metrics %v", seen)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Variant: "azure"}, {Thinking: "max"}, {MaxOutput: -1}, {Temperature: -1},
		{APIKey: "a", APIKeyFile: "f"}, {URL: "ftp://x"},
	} {
		s := &service{metrics: llm.NewCompletionMetrics()}
		var ue *processor.UsageError
		if err := s.setup(Name, c); !errors.As(err, &ue) {
			t.Errorf("%+v: %v, want a usage error", c, err)
		}
	}
}
