package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/schema"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // empty: valid
	}{
		{Config{Chunks: 3}, ""},
		{Config{Chunks: 3, FailWith: "llm-error:x: y", FailAfter: 2}, ""},
		{Config{Chunks: 0}, "--chunks must be at least 1, got 0"},
		{Config{Chunks: 3, Interval: -1}, "--interval must not be negative"},
		{Config{Chunks: 3, FailWith: "nocolon"}, `--fail-with "nocolon" is not TYPE:MESSAGE`},
		{Config{Chunks: 3, FailAfter: 3}, "--fail-after must be at least 0 and less than --chunks (3), got 3"},
		{Config{Chunks: 3, FailAfter: -1}, "--fail-after must be at least 0"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// run calls the handler with cfg and returns what it emitted and returned.
func run(t *testing.T, cfg Config, streaming bool) ([]*schema.TextCompletionResponse, error) {
	t.Helper()
	var got []*schema.TextCompletionResponse
	err := answer(&cfg)(context.Background(), &schema.TextCompletionRequest{Prompt: "p", Streaming: streaming},
		func(r *schema.TextCompletionResponse) error { got = append(got, r); return nil })
	return got, err
}

func TestStream(t *testing.T) {
	got, err := run(t, Config{Chunks: 4}, true)
	if err != nil || len(got) != 4 {
		t.Fatalf("got %d chunks, %v; want 4, nil", len(got), err)
	}
	for i, r := range got {
		var index, ns int64
		if _, err := fmt.Sscanf(r.Response, "%d %d\n", &index, &ns); err != nil || index != int64(i) || ns <= 0 {
			t.Errorf("chunk %d is %q", i, r.Response)
		}
		if last := i == 3; r.EndOfStream != last || (r.InToken != nil) != last || r.Model == nil || *r.Model != Model {
			t.Errorf("chunk %d: end_of_stream %v, in_token %v, model %v", i, r.EndOfStream, r.InToken, r.Model)
		}
	}
}

func TestFailures(t *testing.T) {
	// A type: the handler's answer, with the message after the first colon.
	got, err := run(t, Config{Chunks: 5, FailWith: "llm-error:overloaded: later", FailAfter: 2}, true)
	if len(got) != 2 || err == nil || err.Error() != "overloaded: later" || !middleware.IsPermanent(err) {
		t.Errorf("typed failure: %d chunks, %v (permanent %v)", len(got), err, middleware.IsPermanent(err))
	}
	// No type: transient.
	got, err = run(t, Config{Chunks: 5, FailWith: ":down", FailAfter: 0}, true)
	if len(got) != 0 || err == nil || err.Error() != "down" || middleware.IsPermanent(err) {
		t.Errorf("plain failure: %d chunks, %v", len(got), err)
	}
	// Without streaming the request fails before any answer.
	got, err = run(t, Config{Chunks: 5, FailWith: "llm-error:x", FailAfter: 3}, false)
	if len(got) != 0 || err == nil {
		t.Errorf("failure without streaming: %d responses, %v", len(got), err)
	}
	got, err = run(t, Config{Chunks: 5}, false)
	if err != nil || len(got) != 1 || got[0].Response != "5 chunks" || !got[0].EndOfStream {
		t.Errorf("answer without streaming: %v, %+v", err, got)
	}
}
