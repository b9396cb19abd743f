package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/examples/pipeline"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
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

// exchange subscribes to the reply queue, sends n requests and waits until
// every one is answered or the timeout passes. It reports progress on log.
func exchange(ctx context.Context, backend router.Backend, n int, timeout time.Duration, log io.Writer) (result, error) {
	sub, err := backend.NewSubscriber(router.SubscribeOptions{Subscription: "demo-client"})
	if err != nil {
		return result{}, err
	}
	defer sub.Close()
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(responseQueue.String()); err != nil {
			return result{}, fmt.Errorf("subscribing to replies: %w", err)
		}
	}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	replies, err := sub.Subscribe(subCtx, responseQueue.String())
	if err != nil {
		return result{}, fmt.Errorf("subscribing to replies: %w", err)
	}

	want := make(map[string]string, n)
	msgs := make([]*message.Message, 0, n)
	for i := 0; i < n; i++ {
		req, text := question(i)
		payload, err := schema.Marshal(req)
		if err != nil {
			return result{}, err
		}
		id := watermill.NewUUID()
		msg := message.NewMessage(watermill.NewUUID(), payload)
		msg.Metadata.Set(middleware.IDProperty, id)
		want[id] = text
		msgs = append(msgs, msg)
	}

	var mu sync.Mutex
	res := result{sent: n}
	got := make(map[string]bool, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range replies {
			var resp schema.TextCompletionResponse
			id := msg.Metadata.Get(middleware.IDProperty)
			ok := schema.Unmarshal(msg.Payload, &resp) == nil && want[id] != "" && resp.Response == want[id] && resp.Error == nil
			msg.Ack()
			mu.Lock()
			switch {
			case !ok:
				res.wrong++
			case !got[id]:
				got[id] = true
				res.replies++
			}
			finished := res.replies == n
			mu.Unlock()
			if finished {
				return
			}
		}
	}()

	start := time.Now()
	const batch = 100
	for i := 0; i < len(msgs); i += batch {
		if err := backend.Publisher().Publish(promptQueue.String(), msgs[i:min(i+batch, len(msgs))]...); err != nil {
			return result{}, fmt.Errorf("sending requests: %w", err)
		}
	}
	fmt.Fprintf(log, "demo: sent %d requests to %s\n", n, promptQueue)

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			break wait
		case <-tick.C:
			mu.Lock()
			fmt.Fprintf(log, "demo: %d of %d replies\n", res.replies, n)
			mu.Unlock()
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	res.took = time.Since(start)
	res.lost = n - res.replies
	if res.wrong > 0 {
		return res, fmt.Errorf("%d replies were wrong or unexpected", res.wrong)
	}
	if res.lost > 0 {
		return res, fmt.Errorf("%s", res)
	}
	return res, nil
}
