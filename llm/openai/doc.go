// Package openai is a small client for the OpenAI-compatible HTTP API: chat
// completions (whole or streamed as server-sent events), the model list and
// embeddings. OpenAI, Ollama (/v1), vLLM and the llama.cpp server speak this
// shape; every response field the client reads is optional, so the
// differences between them (missing usage, missing created dates, extra
// fields) are tolerated.
//
// Failures are sorted so a caller can act on them:
//
//   - *RateLimitError: HTTP 429 that is not an exhausted quota; try again
//     after RetryAfter (from Retry-After, retry-after-ms, or zero when the
//     server gave none);
//   - *APIError with Permanent set: the request cannot succeed as it is
//     (401, 403, 400, 404, 422, insufficient_quota, invalid_api_key,
//     account_deactivated, ...);
//   - *APIError without Permanent (5xx, 408, 409) and *TransportError
//     (connection refused, reset, timeout, a stream cut short): transient.
//
// IsRateLimit, IsPermanent and IsTransient classify any error the client
// returns. The API key is sent only in the Authorization header: it never
// appears in an error, in String or in %v of a Config, and an upstream error
// message that quotes it (OpenAI's "Incorrect API key provided: sk-...") is
// redacted.
package openai
