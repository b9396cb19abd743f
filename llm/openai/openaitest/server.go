// Package openaitest runs an in-process HTTP server that speaks the
// OpenAI-compatible API in the shapes OpenAI sends (chat completions, an
// event stream whose last chunk carries only the usage, the model list,
// embeddings), for tests of clients and processors without a network.
// Failures (429 with Retry-After, 500, insufficient_quota, a stream cut in
// the middle) are scripted per path.
package openaitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Response is a scripted answer.
type Response struct {
	// Status is the HTTP status. Default 200.
	Status int
	// Header is added to the answer.
	Header http.Header
	// Body is sent as it is.
	Body string
	// Delay, if set, is waited before answering.
	Delay time.Duration
}

// Request is a request the server received.
type Request struct {
	// Method and Path are the request line's.
	Method, Path string
	// Authorization is the header's value.
	Authorization string
	// Body is the decoded JSON body (nil for none).
	Body map[string]any
}

// Server is a fake OpenAI-compatible server under /v1. The answer to a
// chat completion is Reply(model, prompt), streamed as one chunk per word.
type Server struct {
	*httptest.Server
	// Key, if set, is the only API key accepted; any other gets OpenAI's
	// 401 invalid_api_key answer, which quotes the key it got.
	Key string

	mu       sync.Mutex
	scripts  map[string][]Response
	requests []Request
	midFail  map[string]int // path: stream chunks sent before the connection is cut
}

// New starts a server; it is closed when the test ends through cleanup.
func New(cleanup func(func())) *Server {
	s := &Server{scripts: map[string][]Response{}, midFail: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	cleanup(s.Close)
	return s
}

// BaseURL is the API root to give a client: the server's URL plus /v1.
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Script queues answers for path (e.g. "/v1/chat/completions"): the next
// calls get them in order, later calls the normal answer.
func (s *Server) Script(path string, rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[path] = append(s.scripts[path], rs...)
}

// CutStreamAfter makes the next stream on /v1/chat/completions stop after
// n text chunks, without a finish, usage or [DONE].
func (s *Server) CutStreamAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.midFail["/v1/chat/completions"] = n
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Calls counts the requests received on path.
func (s *Server) Calls(path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// Reply is the text a chat completion answers with.
func Reply(model, prompt string) string {
	return fmt.Sprintf("%s says: %s", model, prompt)
}

// Vector is the embedding the server gives text.
func Vector(text string) []float64 {
	return []float64{float64(len(text)), float64(strings.Count(text, " ")), 0.5}
}

// RateLimited is OpenAI's 429 answer to too many requests, asking for a
// pause of retryAfter seconds.
func RateLimited(retryAfter string) Response {
	return Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {retryAfter}, "Content-Type": {"application/json"}},
		Body: `{"error": {"message": "Rate limit reached for gpt-4o-mini in organization org-xyz on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}`}
}

// QuotaExhausted is OpenAI's 429 answer when the account has no credit.
func QuotaExhausted() Response {
	return Response{Status: http.StatusTooManyRequests, Header: http.Header{"Content-Type": {"application/json"}},
		Body: `{"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}`}
}

// ServerError is OpenAI's 500 answer.
func ServerError() Response {
	return Response{Status: http.StatusInternalServerError, Header: http.Header{"Content-Type": {"application/json"}},
		Body: `{"error": {"message": "The server had an error while processing your request. Sorry about that!", "type": "server_error", "param": null, "code": null}}`}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, `{"error": {"message": "bad json", "type": "invalid_request_error"}}`, http.StatusBadRequest)
			return
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Body: body})
	var scripted *Response
	if q := s.scripts[r.URL.Path]; len(q) > 0 {
		scripted = &q[0]
		s.scripts[r.URL.Path] = q[1:]
	}
	cut, cutting := s.midFail[r.URL.Path]
	if cutting && body["stream"] == true {
		delete(s.midFail, r.URL.Path)
	} else {
		cutting = false
	}
	s.mu.Unlock()

	if s.Key != "" && r.Header.Get("Authorization") != "Bearer "+s.Key {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error": {"message": "Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}`, got)
		return
	}
	if scripted != nil {
		if scripted.Delay > 0 {
			time.Sleep(scripted.Delay)
		}
		for k, vs := range scripted.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		status := scripted.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		io.WriteString(w, scripted.Body)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		s.chat(w, body, cut, cutting)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object": "list", "data": [`+
			`{"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}, `+
			`{"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"}]}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/embeddings":
		s.embeddings(w, body)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error": {"message": "Invalid URL (%s %s)", "type": "invalid_request_error", "param": null, "code": null}}`, r.Method, r.URL.Path)
	}
}

// prompt returns the model and the last user message of a chat request.
func prompt(body map[string]any) (model, text string, words int) {
	model, _ = body["model"].(string)
	msgs, _ := body["messages"].([]any)
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		c, _ := mm["content"].(string)
		words += len(strings.Fields(c))
		if mm["role"] == "user" {
			text = c
		}
	}
	return model, text, words
}

func (s *Server) chat(w http.ResponseWriter, body map[string]any, cut int, cutting bool) {
	model, text, in := prompt(body)
	answer := Reply(model, text)
	pieces := strings.SplitAfter(answer, " ")
	out := len(pieces)
	if body["stream"] != true {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952, "model": "%s-2024-07-18", `+
			`"choices": [{"index": 0, "message": {"role": "assistant", "content": %s, "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}], `+
			`"usage": {"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}, `+
			`"service_tier": "default", "system_fingerprint": "fp_06737a9306"}`, model, quote(answer), in, out, in+out)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	f, _ := w.(http.Flusher)
	event := func(format string, args ...any) {
		fmt.Fprintf(w, "data: "+format+"\n\n", args...)
		if f != nil {
			f.Flush()
		}
	}
	const head = `{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"%s-2024-07-18","system_fingerprint":"fp_44709d6fcb",`
	usage := body["stream_options"] != nil
	tail := `}`
	if usage {
		tail = `,"usage":null}`
	}
	event(head+`"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`+tail, model)
	io.WriteString(w, ": keep-alive\n\n")
	for i, p := range pieces {
		if cutting && i == cut {
			return // the connection ends with the handler
		}
		event(head+`"choices":[{"index":0,"delta":{"content":%s},"logprobs":null,"finish_reason":null}]`+tail, model, quote(p))
	}
	event(head+`"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]`+tail, model)
	if usage {
		event(head+`"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, model, in, out, in+out)
	}
	event("[DONE]")
}

func (s *Server) embeddings(w http.ResponseWriter, body map[string]any) {
	model, _ := body["model"].(string)
	var texts []string
	switch in := body["input"].(type) {
	case string:
		texts = []string{in}
	case []any:
		for _, t := range in {
			s, _ := t.(string)
			texts = append(texts, s)
		}
	}
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	items := make([]item, len(texts))
	tokens := 0
	// Answer in reverse order: clients must place vectors by index.
	for i := range texts {
		j := len(texts) - 1 - i
		items[i] = item{Object: "embedding", Index: j, Embedding: Vector(texts[j])}
		tokens += len(strings.Fields(texts[j]))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"object": "list", "data": items, "model": model,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens},
	})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
