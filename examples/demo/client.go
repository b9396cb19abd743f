package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/examples/pipeline"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/rrclient"
	"github.com/switchyard-go/switchyard/schema"
)

// The demo's queues.
var (
	promptQueue   = schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: "demo", Queue: "prompt-request"}
	requestQueue  = schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: "demo", Queue: "text-completion-request"}
	responseQueue = schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: "demo", Queue: "text-completion-response"}
)

// result is what a demo run observed.
type result struct {
	sent, replies, lost, wrong int
	took                       time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("demo: %d requests, %d replies, %d lost in %s", r.sent, r.replies, r.lost, r.took.Round(time.Millisecond))
}

// question returns the prompt request i and the reply text expected for it.
func question(i int) (*schema.PromptRequest, string) {
	q := fmt.Sprintf("What is %d times 6? (request %d)", i%10, i)
	term, _ := json.Marshal(q)
	req := &schema.PromptRequest{ID: "question", Terms: map[string]string{"question": string(term)}}
	want := strings.ReplaceAll(pipeline.DefaultTemplates["question"].Prompt, "{{question}}", q)
	return req, want
}

// exchange sends n prompt requests through a request/response client, at
// most inFlight at a time, and checks every reply until all are answered or
// the timeout passes. It reports progress on log every second.
func exchange(ctx context.Context, backend router.Backend, n int, timeout time.Duration, log io.Writer) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := rrclient.New[schema.PromptRequest, schema.TextCompletionResponse](ctx, backend, rrclient.Config{
		Request: promptQueue, Response: responseQueue, Timeout: timeout,
	})
	if err != nil {
		return result{}, fmt.Errorf("starting the demo client: %w", err)
	}
	defer client.Close()

	const inFlight = 256
	var replies, wrong atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				req, want := question(i)
				resp, err := client.Request(ctx, req)
				switch {
				case err != nil:
					if ctx.Err() == nil {
						firstErr.CompareAndSwap(nil, err)
					}
				case resp.Response != want || resp.Error != nil:
					wrong.Add(1)
				default:
					replies.Add(1)
				}
			}
		}()
	}
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	go func() {
		defer close(work)
		for i := 0; i < n; i++ {
			select {
			case work <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-progress.C:
			fmt.Fprintf(log, "demo: %d of %d replies\n", replies.Load(), n)
		}
	}
	res := result{sent: n, replies: int(replies.Load()), wrong: int(wrong.Load()), took: time.Since(start)}
	res.lost = n - res.replies - res.wrong
	switch {
	case res.wrong > 0:
		return res, fmt.Errorf("%d replies were wrong", res.wrong)
	case res.lost > 0 && ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled):
		return res, fmt.Errorf("interrupted with %d of %d replies", res.replies, n)
	case res.lost > 0:
		if err, ok := firstErr.Load().(error); ok {
			return res, fmt.Errorf("%d of %d requests unanswered, first error: %w", res.lost, n, err)
		}
		return res, fmt.Errorf("%d of %d requests unanswered within %s", res.lost, n, timeout)
	}
	return res, nil
}
