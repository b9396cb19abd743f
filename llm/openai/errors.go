package openai

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Error codes (the `code` or `type` of OpenAI's error body) that no retry
// can fix, even when they come with HTTP 429.
var permanentCodes = map[string]bool{
	"insufficient_quota":  true,
	"invalid_api_key":     true,
	"account_deactivated": true,
	"billing_not_active":  true,
}

// APIError is an error answer of the server: an HTTP status other than 2xx
// (or an error object inside a stream), with what the body said.
type APIError struct {
	// StatusCode is the HTTP status; 200 for an error sent inside a stream.
	StatusCode int
	// Type, Code and Param are the error body's fields, empty when absent.
	Type, Code, Param string
	// Message is the server's description, with any API key redacted.
	Message string
	// Permanent says that repeating the request cannot succeed.
	Permanent bool
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "openai: HTTP %d", e.StatusCode)
	if t := e.Code; t != "" {
		fmt.Fprintf(&b, " %s", t)
	} else if e.Type != "" {
		fmt.Fprintf(&b, " %s", e.Type)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// RateLimitError is HTTP 429 from a server that will answer later: the
// request may be repeated after RetryAfter. An exhausted quota
// (insufficient_quota) is an *APIError instead: waiting does not help.
type RateLimitError struct {
	APIError
	// RetryAfter is the pause the server asked for (Retry-After in seconds
	// or as an HTTP date, or retry-after-ms); zero when it gave none.
	RetryAfter time.Duration
}

// Error implements error.
func (e *RateLimitError) Error() string {
	s := "openai: rate limited (HTTP 429)"
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// TransportError is a failure to reach the server or to read its answer:
// connection refused or reset, a timeout, a stream cut short. It is
// transient.
type TransportError struct {
	// Op says what was being done, e.g. "POST /chat/completions".
	Op string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *TransportError) Error() string { return fmt.Sprintf("openai: %s: %v", e.Op, e.Err) }

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// IsRateLimit reports whether err is, or wraps, a *RateLimitError, and the
// pause it asked for.
func IsRateLimit(err error) (retryAfter time.Duration, ok bool) {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.RetryAfter, true
	}
	return 0, false
}

// IsPermanent reports whether err says that repeating the request cannot
// succeed: an *APIError with Permanent set, or a response the client could
// not make sense of.
func IsPermanent(err error) bool {
	if _, ok := IsRateLimit(err); ok {
		return false
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.Permanent
	}
	var bad *ResponseError
	return errors.As(err, &bad)
}

// IsTransient reports whether err may go away when the request is repeated
// later: a rate limit, a 5xx-like *APIError or a *TransportError.
func IsTransient(err error) bool {
	if _, ok := IsRateLimit(err); ok {
		return true
	}
	var api *APIError
	if errors.As(err, &api) {
		return !api.Permanent
	}
	var tr *TransportError
	return errors.As(err, &tr)
}

// ResponseError is a 2xx answer the client cannot use: not JSON, or
// missing what the operation needs (no choices, fewer vectors than texts).
type ResponseError struct {
	// Op says which call it was.
	Op string
	// Problem describes what was wrong.
	Problem string
}

// Error implements error.
func (e *ResponseError) Error() string { return fmt.Sprintf("openai: %s: %s", e.Op, e.Problem) }

// errorBody is OpenAI's error envelope; some servers send a bare string as
// `error` (llama.cpp older builds) or a top-level `message` (Ollama).
type errorBody struct {
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
}

type errorObject struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Param   json.RawMessage `json:"param"`
	Code    json.RawMessage `json:"code"`
}

// jsonText returns a JSON string's text, or a number's digits, or "".
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.Trim(string(raw), `"`)
}

// maxErrorMessage bounds the message kept from an error body.
const maxErrorMessage = 2000

// parseErrorBody reads what it can of an error body: the error object's
// fields, or the text itself when it is not JSON.
func parseErrorBody(body []byte) (typ, code, param, msg string) {
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		return "", "", "", truncate(strings.TrimSpace(string(body)), maxErrorMessage)
	}
	var obj errorObject
	switch {
	case len(eb.Error) > 0 && eb.Error[0] == '{':
		if json.Unmarshal(eb.Error, &obj) == nil {
			return obj.Type, jsonText(obj.Code), jsonText(obj.Param), truncate(obj.Message, maxErrorMessage)
		}
	case len(eb.Error) > 0:
		return "", "", "", truncate(jsonText(eb.Error), maxErrorMessage)
	}
	if eb.Message != "" {
		return "", "", "", truncate(eb.Message, maxErrorMessage)
	}
	return "", "", "", truncate(strings.TrimSpace(string(body)), maxErrorMessage)
}

// classify turns an HTTP error answer into an *APIError or a
// *RateLimitError. now is the time Retry-After dates are measured from.
func classify(status int, header http.Header, body []byte, redact func(string) string, now time.Time) error {
	typ, code, param, msg := parseErrorBody(body)
	if msg == "" {
		msg = http.StatusText(status)
	}
	api := APIError{StatusCode: status, Type: typ, Code: code, Param: param, Message: redact(msg)}
	quota := permanentCodes[code] || permanentCodes[typ]
	switch {
	case status == http.StatusTooManyRequests && !quota:
		return &RateLimitError{APIError: api, RetryAfter: retryAfter(header, now)}
	case quota:
		api.Permanent = true
	case status == http.StatusRequestTimeout, status == http.StatusConflict, status >= 500:
		api.Permanent = false
	default:
		// Every other 4xx: the request itself is wrong (400, 404, 413,
		// 422) or not allowed (401, 403).
		api.Permanent = true
	}
	return &api
}

// maxRetryAfter bounds a server's requested pause, against a garbled header.
const maxRetryAfter = time.Hour

// retryAfter reads the pause a 429 asks for: retry-after-ms (OpenAI), then
// Retry-After as seconds or as an HTTP date. Zero when none is usable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return min(time.Duration(ms*float64(time.Millisecond)), maxRetryAfter)
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return min(time.Duration(s*float64(time.Second)), maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// keyPattern matches OpenAI-style keys, whole or masked ("sk-abc***xyz").
var keyPattern = regexp.MustCompile(`sk-[A-Za-z0-9_\-*.]{3,}`)

// redactor returns a function that removes key, and anything shaped like an
// OpenAI key, from upstream text.
func redactor(key string) func(string) string {
	return func(s string) string {
		if len(key) >= 4 {
			s = strings.ReplaceAll(s, key, "[redacted]")
		}
		return keyPattern.ReplaceAllString(s, "sk-[redacted]")
	}
}
