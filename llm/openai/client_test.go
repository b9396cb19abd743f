package openai_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/llm/openai"
	"github.com/switchyard-go/switchyard/llm/openai/openaitest"
)

const testKey = "sk-proj-TESTKEY0123456789abcdef"

func newClient(t *testing.T, srv *openaitest.Server, cfg openai.Config) *openai.Client {
	t.Helper()
	cfg.BaseURL = srv.BaseURL()
	if cfg.APIKey == "" && cfg.APIKeyFile == "" {
		cfg.APIKey = testKey
	}
	c, err := openai.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func temp(f float64) *float64 { return &f }

func TestChat(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	srv.Key = testKey
	c := newClient(t, srv, openai.Config{})
	res, err := c.Chat(context.Background(), openai.ChatRequest{
		Model: "gpt-4o-mini", System: "be brief", Prompt: "hello world", Temperature: temp(0), MaxTokens: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := openaitest.Reply("gpt-4o-mini", "hello world")
	if res.Text != want || !res.HasUsage || res.InTokens != 4 || res.OutTokens != 4 || res.FinishReason != "stop" || res.Model != "gpt-4o-mini-2024-07-18" {
		t.Fatalf("got %+v, want text %q, 4 in, 4 out", res, want)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Authorization != "Bearer "+testKey {
		t.Fatalf("authorization %q", r.Authorization)
	}
	msgs := r.Body["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["role"] != "system" || msgs[1].(map[string]any)["content"] != "hello world" {
		t.Fatalf("messages %v", msgs)
	}
	if r.Body["temperature"] != 0.0 || r.Body["max_completion_tokens"] != 100.0 || r.Body["max_tokens"] != nil || r.Body["stream"] != nil {
		t.Fatalf("body %v", r.Body)
	}
}

func TestChatOptions(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	c := newClient(t, srv, openai.Config{})
	strict := true
	_, err := c.Chat(context.Background(), openai.ChatRequest{
		Model: "llama3", Prompt: "x", MaxTokens: 7, TokenParam: openai.MaxTokens, ReasoningEffort: "low",
		ResponseFormat: &openai.ResponseFormat{Type: "json_schema", JSONSchema: &openai.JSONSchema{Name: "answer", Schema: map[string]any{"type": "object"}, Strict: &strict}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := srv.Requests()[0].Body
	if b["max_tokens"] != 7.0 || b["max_completion_tokens"] != nil || b["temperature"] != nil || b["reasoning_effort"] != "low" {
		t.Fatalf("body %v", b)
	}
	rf := b["response_format"].(map[string]any)
	if rf["type"] != "json_schema" || rf["json_schema"].(map[string]any)["name"] != "answer" {
		t.Fatalf("response_format %v", rf)
	}
	if _, err := c.Chat(context.Background(), openai.ChatRequest{Prompt: "x"}); err == nil {
		t.Fatal("a request without a model was sent")
	}
}

func collect(t *testing.T, c *openai.Client, req openai.ChatRequest) (text string, chunks []openai.ChatChunk, err error) {
	t.Helper()
	for ch, err := range c.ChatStream(context.Background(), req) {
		if err != nil {
			return text, chunks, err
		}
		text += ch.Text
		chunks = append(chunks, ch)
	}
	return text, chunks, nil
}

func TestChatStream(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	c := newClient(t, srv, openai.Config{})
	text, chunks, err := collect(t, c, openai.ChatRequest{Model: "gpt-4o-mini", Prompt: "tell me more"})
	if err != nil {
		t.Fatal(err)
	}
	want := openaitest.Reply("gpt-4o-mini", "tell me more")
	if text != want {
		t.Fatalf("text %q, want %q", text, want)
	}
	words := len(strings.Fields(want))
	// One chunk per word, one with the finish reason, one with the usage.
	if len(chunks) != words+2 {
		t.Fatalf("%d chunks, want %d: %+v", len(chunks), words+2, chunks)
	}
	fin, last := chunks[len(chunks)-2], chunks[len(chunks)-1]
	if fin.FinishReason != "stop" || fin.Text != "" || fin.Usage != nil {
		t.Fatalf("finish chunk %+v", fin)
	}
	if last.Usage == nil || last.Usage.PromptTokens != 3 || last.Usage.CompletionTokens != int64(words) || last.Text != "" {
		t.Fatalf("usage chunk %+v", last)
	}
	b := srv.Requests()[0].Body
	if b["stream"] != true || b["stream_options"].(map[string]any)["include_usage"] != true {
		t.Fatalf("body %v", b)
	}
}

// A server that ignores "stream" and answers with a whole completion is
// read as a stream of one chunk.
func TestChatStreamWholeAnswer(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	srv.Script("/v1/chat/completions", openaitest.Response{Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body: `{"model": "m", "choices": [{"message": {"content": "whole"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 2, "completion_tokens": 1}}`})
	c := newClient(t, srv, openai.Config{})
	text, chunks, err := collect(t, c, openai.ChatRequest{Model: "m", Prompt: "p"})
	if err != nil || text != "whole" || len(chunks) != 2 || chunks[1].Usage == nil || chunks[1].Usage.CompletionTokens != 1 {
		t.Fatalf("text %q, chunks %+v, err %v", text, chunks, err)
	}
}

// Servers differ: Ollama sends no usage without include_usage support,
// events may span several data lines, a stream may end at EOF after its
// finish reason.
func TestChatStreamTolerance(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	srv.Script("/v1/chat/completions", openaitest.Response{Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: "event: message\r\ndata: {\"choices\": [{\"delta\": {\"content\": \"a\"}}]}\r\n\r\n" +
			"data: {\"choices\": [{\"delta\":\ndata: {\"content\": \"b\"}, \"finish_reason\": \"length\"}]}\n\n"})
	c := newClient(t, srv, openai.Config{})
	text, chunks, err := collect(t, c, openai.ChatRequest{Model: "m", Prompt: "p"})
	if err != nil || text != "ab" || len(chunks) != 2 || chunks[1].FinishReason != "length" {
		t.Fatalf("text %q, chunks %+v, err %v", text, chunks, err)
	}
}

func TestChatStreamCut(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	srv.CutStreamAfter(2)
	c := newClient(t, srv, openai.Config{})
	text, _, err := collect(t, c, openai.ChatRequest{Model: "m", Prompt: "one two three"})
	if !errors.Is(err, openai.ErrStreamTruncated) || !openai.IsTransient(err) {
		t.Fatalf("err %v, want a transient truncation", err)
	}
	if text != "m says: " {
		t.Fatalf("text before the cut %q", text)
	}
}

func TestChatStreamErrorEvent(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	srv.Script("/v1/chat/completions", openaitest.Response{Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: "data: {\"choices\": [{\"delta\": {\"content\": \"a\"}}]}\n\n" +
			"data: {\"error\": {\"object\": \"error\", \"message\": \"out of memory\", \"type\": \"InternalServerError\", \"code\": 500}}\n\n"})
	c := newClient(t, srv, openai.Config{})
	text, _, err := collect(t, c, openai.ChatRequest{Model: "m", Prompt: "p"})
	var api *openai.APIError
	if text != "a" || !errors.As(err, &api) || api.StatusCode != 500 || api.Permanent || !strings.Contains(err.Error(), "out of memory") {
		t.Fatalf("text %q, err %v", text, err)
	}
}

// Breaking out of the loop ends the request without leaking the
// connection's goroutines.
func TestChatStreamBreak(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	c := newClient(t, srv, openai.Config{})
	n := 0
	for _, err := range c.ChatStream(context.Background(), openai.ChatRequest{Model: "m", Prompt: "a b c d"}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Fatalf("%d chunks", n)
	}
}

func TestErrors(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		name      string
		resp      openaitest.Response
		rateLimit bool
		retry     time.Duration // lower bound
		permanent bool
		transient bool
	}{
		{"429 seconds", openaitest.RateLimited("7"), true, 7 * time.Second, false, true},
		{"429 date", openaitest.RateLimited(date), true, 80 * time.Second, false, true},
		{"429 ms", openaitest.Response{Status: 429, Header: http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"2"}}, Body: `{"error": {"code": "rate_limit_exceeded"}}`}, true, 1500 * time.Millisecond, false, true},
		{"429 no header", openaitest.Response{Status: 429, Body: "slow down"}, true, 0, false, true},
		{"insufficient_quota", openaitest.QuotaExhausted(), false, 0, true, false},
		{"500", openaitest.ServerError(), false, 0, false, true},
		{"503 text", openaitest.Response{Status: 503, Body: "upstream unavailable"}, false, 0, false, true},
		{"401", openaitest.Response{Status: 401, Body: `{"error": {"message": "no", "type": "invalid_request_error", "code": "invalid_api_key"}}`}, false, 0, true, false},
		{"403 deactivated", openaitest.Response{Status: 403, Body: `{"error": {"message": "gone", "type": "access_terminated", "code": "account_deactivated"}}`}, false, 0, true, false},
		{"404 ollama", openaitest.Response{Status: 404, Body: `{"error": {"message": "model \"x\" not found, try pulling it first", "type": "api_error"}}`}, false, 0, true, false},
		{"400 string error", openaitest.Response{Status: 400, Body: `{"error": "bad input"}`}, false, 0, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := openaitest.New(t.Cleanup)
			srv.Script("/v1/chat/completions", tc.resp)
			c := newClient(t, srv, openai.Config{})
			_, err := c.Chat(context.Background(), openai.ChatRequest{Model: "m", Prompt: "p"})
			if err == nil {
				t.Fatal("no error")
			}
			ra, rl := openai.IsRateLimit(err)
			if rl != tc.rateLimit || openai.IsPermanent(err) != tc.permanent || openai.IsTransient(err) != tc.transient {
				t.Fatalf("%v: rate limit %v, permanent %v, transient %v", err, rl, openai.IsPermanent(err), openai.IsTransient(err))
			}
			if tc.rateLimit && (ra < tc.retry || ra > tc.retry+15*time.Second) {
				t.Fatalf("retry after %s, want about %s", ra, tc.retry)
			}
			if tc.retry == 0 && ra != 0 {
				t.Fatalf("retry after %s, want none", ra)
			}
		})
	}
}

func TestTransportError(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	base := srv.BaseURL()
	srv.Close()
	c, err := openai.New(openai.Config{BaseURL: base, APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Chat(context.Background(), openai.ChatRequest{Model: "m", Prompt: "p"})
	var tr *openai.TransportError
	if !errors.As(err, &tr) || !openai.IsTransient(err) || openai.IsPermanent(err) {
		t.Fatalf("err %v, want a transient TransportError", err)
	}

	// The caller's own cancellation is not a server fault.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Chat(ctx, openai.ChatRequest{Model: "m", Prompt: "p"})
	if !errors.Is(err, context.Canceled) || errors.As(err, &tr) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestTimeout(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	srv.Script("/v1/chat/completions", openaitest.Response{Delay: 500 * time.Millisecond, Body: `{}`})
	c := newClient(t, srv, openai.Config{Timeout: 50 * time.Millisecond})
	_, err := c.Chat(context.Background(), openai.ChatRequest{Model: "m", Prompt: "p"})
	var tr *openai.TransportError
	if !errors.As(err, &tr) || !openai.IsTransient(err) {
		t.Fatalf("err %v, want a transient timeout", err)
	}
}

// The key never shows: not in errors (even when the server quotes it), not
// in the client's or the configuration's printed forms.
func TestKeyNeverPrinted(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	srv.Key = "sk-the-right-one-000000"
	c := newClient(t, srv, openai.Config{})
	_, err := c.Chat(context.Background(), openai.ChatRequest{Model: "m", Prompt: "p"})
	if err == nil || !openai.IsPermanent(err) {
		t.Fatalf("err %v, want a permanent invalid_api_key", err)
	}
	var stream error
	for _, e := range c.ChatStream(context.Background(), openai.ChatRequest{Model: "m", Prompt: "p"}) {
		stream = e
	}
	_, lerr := c.ListModels(context.Background())
	_, eerr := c.Embeddings(context.Background(), "e", []string{"x"})
	cfg := openai.Config{BaseURL: srv.BaseURL(), APIKey: testKey}
	for _, s := range []string{err.Error(), stream.Error(), lerr.Error(), eerr.Error(), c.String(), cfg.String(), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)} {
		if strings.Contains(s, testKey) || strings.Contains(s, "TESTKEY") {
			t.Fatalf("the key shows in %q", s)
		}
	}
	if !strings.Contains(err.Error(), "invalid_api_key") {
		t.Fatalf("err %q does not say why", err)
	}
}

func TestKeyFile(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	srv.Key = testKey
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv, openai.Config{APIKeyFile: path})
	if _, err := c.ListModels(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := openai.New(openai.Config{APIKey: "a", APIKeyFile: path}); err == nil {
		t.Fatal("both a key and a key file were accepted")
	}
	if _, err := openai.New(openai.Config{APIKeyFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Fatal("a missing key file was accepted")
	}
	if _, err := openai.New(openai.Config{BaseURL: "localhost:11434"}); err == nil {
		t.Fatal("a base URL without a scheme was accepted")
	}
}

// A local server needs no key: no Authorization header is sent.
func TestNoKey(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	c, err := openai.New(openai.Config{BaseURL: srv.BaseURL() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListModels(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := srv.Requests()[0]; r.Authorization != "" || r.Path != "/v1/models" {
		t.Fatalf("request %+v", r)
	}
}

func TestListModels(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	c := newClient(t, srv, openai.Config{})
	ms, err := c.ListModels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].ID != "gpt-4o-mini" || ms[0].Created == nil || *ms[0].Created != 1721172741 || ms[0].OwnedBy == nil || *ms[0].OwnedBy != "system" || ms[0].Name != nil {
		t.Fatalf("models %+v", ms)
	}
	// vLLM's shape: max_model_len is the context length.
	srv.Script("/v1/models", openaitest.Response{Body: `{"object": "list", "data": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "object": "model", "owned_by": "vllm", "root": "x", "max_model_len": 8192, "permission": []}, {"object": "model"}]}`})
	ms, err = c.ListModels(context.Background())
	if err != nil || len(ms) != 1 || ms[0].ContextLength == nil || *ms[0].ContextLength != 8192 || ms[0].Created != nil {
		t.Fatalf("models %+v, %v", ms, err)
	}
}

func TestEmbeddings(t *testing.T) {
	srv := openaitest.New(t.Cleanup)
	c := newClient(t, srv, openai.Config{})
	texts := []string{"one", "two words", "three little words"}
	vs, err := c.Embeddings(context.Background(), "text-embedding-3-small", texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(texts) {
		t.Fatalf("%d vectors", len(vs))
	}
	for i, v := range vs {
		if fmt.Sprint(v) != fmt.Sprint(openaitest.Vector(texts[i])) {
			t.Fatalf("vector %d is %v, want %v", i, v, openaitest.Vector(texts[i]))
		}
	}
	b := srv.Requests()[0].Body
	if b["model"] != "text-embedding-3-small" || len(b["input"].([]any)) != 3 {
		t.Fatalf("body %v", b)
	}
	if vs, err := c.Embeddings(context.Background(), "m", nil); err != nil || len(vs) != 0 || srv.Calls("/v1/embeddings") != 1 {
		t.Fatalf("no texts: %v, %v, %d calls", vs, err, srv.Calls("/v1/embeddings"))
	}
	srv.Script("/v1/embeddings", openaitest.Response{Body: `{"data": [{"index": 0, "embedding": [1]}]}`})
	if _, err := c.Embeddings(context.Background(), "m", texts); !openai.IsPermanent(err) {
		t.Fatalf("a short answer gave %v", err)
	}
	srv.Script("/v1/embeddings", openaitest.RateLimited("3"))
	if ra, ok := openai.IsRateLimit(mustErr(c.Embeddings(context.Background(), "m", texts))); !ok || ra != 3*time.Second {
		t.Fatalf("rate limit %v %s", ok, ra)
	}
}

func mustErr(_ [][]float64, err error) error { return err }
