package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultBaseURL is OpenAI's API root.
const DefaultBaseURL = "https://api.openai.com/v1"

// DefaultTimeout bounds a whole call, and for a stream the wait for each
// event: TrustGraph's text completion client waits 600 s for an answer.
const DefaultTimeout = 600 * time.Second

// maxBody bounds a response body read into memory (error bodies, model
// lists, embeddings of a large batch).
const maxBody = 256 << 20

// Config says where the server is and how to authenticate.
type Config struct {
	// BaseURL is the API root, the part before /chat/completions, e.g.
	// https://api.openai.com/v1 or http://localhost:11434/v1 (Ollama).
	// Default DefaultBaseURL.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer KEY". Empty sends no
	// Authorization header (local servers need none). Never printed.
	APIKey string
	// APIKeyFile, if set, is a file holding the key (surrounding white
	// space ignored), read by New; it is an error to set both.
	APIKeyFile string
	// HTTPClient makes the requests. Default: a client of its own with
	// http.DefaultTransport's settings.
	HTTPClient *http.Client
	// Timeout bounds a call; for ChatStream it bounds the wait for the
	// response headers and then for each event. Default DefaultTimeout.
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Validate reports the first invalid setting. Zero values stand for their
// defaults.
func (c Config) Validate() error {
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil {
			return fmt.Errorf("openai: base URL is not a URL: %w", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("openai: base URL %q must start with http:// or https://", u.Redacted())
		}
		if u.Host == "" {
			return fmt.Errorf("openai: base URL %q has no host", u.Redacted())
		}
	}
	if c.APIKey != "" && c.APIKeyFile != "" {
		return errors.New("openai: set the API key or the API key file, not both")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("openai: timeout must not be negative, got %s", c.Timeout)
	}
	return nil
}

// String describes the configuration without the key.
func (c Config) String() string {
	key := "none"
	switch {
	case c.APIKeyFile != "":
		key = "from " + c.APIKeyFile
	case c.APIKey != "":
		key = "set"
	}
	base := c.BaseURL
	if u, err := url.Parse(base); err == nil {
		base = u.Redacted()
	}
	return fmt.Sprintf("openai.Config{BaseURL: %s, APIKey: %s, Timeout: %s}", base, key, c.Timeout)
}

// GoString keeps %#v from printing the key.
func (c Config) GoString() string { return c.String() }

// Client calls one OpenAI-compatible server. It is safe for concurrent use.
type Client struct {
	cfg    Config
	base   string // BaseURL without a trailing slash
	key    string
	redact func(string) string
}

// New returns a client for cfg. It reads the key file, if any.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key := cfg.APIKey
	if cfg.APIKeyFile != "" {
		b, err := os.ReadFile(cfg.APIKeyFile)
		if err != nil {
			return nil, fmt.Errorf("openai: reading the API key file: %w", err)
		}
		key = strings.TrimSpace(string(b))
		if key == "" {
			return nil, fmt.Errorf("openai: the API key file %s is empty", cfg.APIKeyFile)
		}
	}
	if strings.ContainsAny(key, "\r\n") {
		return nil, errors.New("openai: the API key contains a line break")
	}
	cfg.APIKey = ""
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), key: key, redact: redactor(key)}, nil
}

// String describes the client without its key.
func (c *Client) String() string { return "openai.Client{" + c.safeBase() + "}" }

// BaseURL returns the API root the client calls, without credentials.
func (c *Client) BaseURL() string { return c.safeBase() }

func (c *Client) safeBase() string {
	if u, err := url.Parse(c.base); err == nil {
		return u.Redacted()
	}
	return "(invalid URL)"
}

// newRequest builds a request for path (e.g. "/chat/completions") with body
// encoded as JSON when not nil.
func (c *Client) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("openai: encoding the %s request: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("openai: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	return req, nil
}

// send performs req and returns the response when its status is 2xx;
// otherwise it reads the body and returns the classified error.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	op := req.Method + " " + strings.TrimPrefix(req.URL.Path, c.pathPrefix())
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, c.transportError(req.Context(), op, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if rerr != nil && len(body) == 0 {
		body = nil
	}
	return nil, classify(resp.StatusCode, resp.Header, body, c.redact, time.Now())
}

// pathPrefix is the base URL's path, stripped from operation names.
func (c *Client) pathPrefix() string {
	if u, err := url.Parse(c.base); err == nil {
		return u.Path
	}
	return ""
}

// transportError wraps a failure to talk to the server. A cancelled or
// expired ctx is returned as the context's error, wrapped, so callers can
// tell their own cancellation from a server fault.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its message repeats the URL
	}
	if ctx.Err() != nil {
		if context.Cause(ctx) == errCallTimeout {
			return &TransportError{Op: op, Err: fmt.Errorf("%w (%s)", errCallTimeout, c.cfg.Timeout)}
		}
		return fmt.Errorf("openai: %s: %w", op, ctx.Err())
	}
	return &TransportError{Op: op, Err: errors.New(c.redact(err.Error()))}
}

// errCallTimeout is the cause of a call's own deadline, so it is reported
// as a transient TransportError, not as the caller's cancellation.
var errCallTimeout = errors.New("no answer within the timeout")

// call performs a JSON request and decodes the 2xx answer into out.
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Timeout, errCallTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return c.transportError(ctx, method+" "+path, fmt.Errorf("reading the answer: %w", err))
	}
	if len(b) > maxBody {
		return &ResponseError{Op: method + " " + path, Problem: fmt.Sprintf("answer larger than %d bytes", maxBody)}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &ResponseError{Op: method + " " + path, Problem: "answer is not the expected JSON: " + truncate(err.Error(), 200)}
	}
	return nil
}
