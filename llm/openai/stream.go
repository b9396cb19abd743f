package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"time"
)

// ChatChunk is one piece of a streamed completion. A chunk carries text,
// or the finish reason, or (the last one, with stream_options.include_usage)
// only the usage.
type ChatChunk struct {
	// Text is the content this chunk adds.
	Text string
	// Model is the model the server says answers, if it said.
	Model string
	// FinishReason is set on the chunk that ends the answer.
	FinishReason string
	// Usage is set on the chunk that reports the token counts.
	Usage *Usage
}

// maxEventSize bounds one server-sent event line.
const maxEventSize = 8 << 20

// ErrStreamTruncated is the cause of a TransportError when a stream ended
// without its terminator ("data: [DONE]") or any finishing chunk.
var ErrStreamTruncated = errors.New("the stream ended before it was complete")

// ChatStream asks for a streamed completion (POST /chat/completions with
// "stream": true and "stream_options": {"include_usage": true}) and yields
// each chunk that carries text, a finish reason or usage, in order, with a
// nil error. It ends after "data: [DONE]", or yields one error and ends.
// The request is sent when the loop starts; breaking out of the loop closes
// the connection. A server that answers with a whole completion (JSON, not
// an event stream) is yielded as one chunk followed by a usage chunk.
// Config.Timeout bounds the wait for the headers and then for each event.
func (c *Client) ChatStream(ctx context.Context, req ChatRequest) iter.Seq2[ChatChunk, error] {
	return func(yield func(ChatChunk, error) bool) {
		body, err := req.body(true)
		if err != nil {
			yield(ChatChunk{}, err)
			return
		}
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		idle := time.AfterFunc(c.cfg.Timeout, func() { cancel(errCallTimeout) })
		defer idle.Stop()

		hreq, err := c.newRequest(ctx, http.MethodPost, "/chat/completions", body)
		if err != nil {
			yield(ChatChunk{}, err)
			return
		}
		hreq.Header.Set("Accept", "text/event-stream")
		resp, err := c.send(hreq)
		if err != nil {
			yield(ChatChunk{}, err)
			return
		}
		defer resp.Body.Close()
		const op = "POST /chat/completions"

		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
			c.wholeAsStream(ctx, req.Model, resp.Body, yield)
			return
		}

		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), maxEventSize)
		var data bytes.Buffer
		pending, finished := false, false
		// dispatch handles one event; it returns false when the loop must end.
		dispatch := func() (more bool) {
			payload := bytes.TrimSpace(data.Bytes())
			data.Reset()
			pending = false
			if len(payload) == 0 {
				return true
			}
			if string(payload) == "[DONE]" {
				finished = true
				return false
			}
			var ev wireChatResponse
			if err := json.Unmarshal(payload, &ev); err != nil {
				yield(ChatChunk{}, &ResponseError{Op: op, Problem: "a stream event is not JSON: " + truncate(err.Error(), 200)})
				return false
			}
			if err := c.embeddedError(ev.Error); err != nil {
				yield(ChatChunk{}, err)
				return false
			}
			ch := ChatChunk{Model: ev.Model}
			if len(ev.Choices) > 0 {
				if t := ev.Choices[0].Delta.Content; t != nil {
					ch.Text = *t
				} else if t := ev.Choices[0].Message.Content; t != nil {
					ch.Text = *t // some servers repeat the shape of a whole answer
				}
				if fr := ev.Choices[0].FinishReason; fr != nil && *fr != "" {
					ch.FinishReason = *fr
					finished = true
				}
			}
			if ev.Usage != nil {
				ch.Usage = &Usage{PromptTokens: ev.Usage.PromptTokens, CompletionTokens: ev.Usage.CompletionTokens}
			}
			if ch.Text == "" && ch.FinishReason == "" && ch.Usage == nil {
				return true // a role-only or empty delta
			}
			return yield(ch, nil)
		}
		for sc.Scan() {
			idle.Reset(c.cfg.Timeout)
			line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
			if len(line) == 0 {
				if pending && !dispatch() {
					return
				}
				continue
			}
			if line[0] == ':' {
				continue // a comment (keep-alive)
			}
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			if string(field) != "data" {
				continue // event, id, retry: not used by this API
			}
			if pending {
				data.WriteByte('\n')
			}
			data.Write(value)
			pending = true
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				yield(ChatChunk{}, &ResponseError{Op: op, Problem: fmt.Sprintf("a stream event is longer than %d bytes", maxEventSize)})
				return
			}
			yield(ChatChunk{}, c.transportError(ctx, op, err))
			return
		}
		if pending && !dispatch() {
			return
		}
		if ctx.Err() != nil {
			yield(ChatChunk{}, c.transportError(ctx, op, ctx.Err()))
			return
		}
		if !finished {
			yield(ChatChunk{}, &TransportError{Op: op, Err: ErrStreamTruncated})
		}
	}
}

// wholeAsStream yields a whole completion as a stream: its text, then its
// usage.
func (c *Client) wholeAsStream(ctx context.Context, model string, body io.Reader, yield func(ChatChunk, error) bool) {
	const op = "POST /chat/completions"
	b, err := io.ReadAll(io.LimitReader(body, maxBody))
	if err != nil {
		yield(ChatChunk{}, c.transportError(ctx, op, err))
		return
	}
	var resp wireChatResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		yield(ChatChunk{}, &ResponseError{Op: op, Problem: "answer is not the expected JSON: " + truncate(err.Error(), 200)})
		return
	}
	res, err := c.result(model, &resp)
	if err != nil {
		yield(ChatChunk{}, err)
		return
	}
	if !yield(ChatChunk{Text: res.Text, Model: res.Model, FinishReason: res.FinishReason}, nil) {
		return
	}
	if res.HasUsage {
		yield(ChatChunk{Model: res.Model, Usage: &Usage{PromptTokens: res.InTokens, CompletionTokens: res.OutTokens}}, nil)
	}
}
