package flow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/flow"
	"github.com/switchyard-go/switchyard/internal/flowtest"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/rrclient"
	"github.com/switchyard-go/switchyard/schema"
)

// completion answers with the flow's model parameter and the prompt.
func completion(ctx context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
	model, ok := flow.Param(ctx, "model")
	if !ok {
		model = "(none)"
	}
	inst, _ := flow.From(ctx)
	return &schema.TextCompletionResponse{Response: inst.Flow + ":" + model + ":" + req.Prompt, Model: &model}, nil
}

func definition(ws, name, model string) string {
	return fmt.Sprintf(`{"topics": {"request": "request:tg:tc:%s:%s", "response": "response:tg:tc:%s:%s"}, "parameters": {"model": %q}}`,
		ws, name, ws, name, model)
}

func ask(t *testing.T, b router.Backend, ws, name string, timeout time.Duration) (string, error) {
	t.Helper()
	req, _ := schema.ParseTopic("request:tg:tc:" + ws + ":" + name)
	resp, _ := schema.ParseTopic("response:tg:tc:" + ws + ":" + name)
	c, err := rrclient.New[schema.TextCompletionRequest, schema.TextCompletionResponse](context.Background(), b,
		rrclient.Config{Request: req, Response: resp, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Request(context.Background(), &schema.TextCompletionRequest{Prompt: "hi"})
	if err != nil {
		return "", err
	}
	return r.Response, nil
}

func waitFlows(t *testing.T, rt *flow.Runtime, want ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		got = got[:0]
		for _, f := range rt.Flows() {
			got = append(got, f.Workspace+"/"+f.Flow)
		}
		if strings.Join(got, ",") == strings.Join(want, ",") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("flows %v, want %v", got, want)
}

// The runtime starts the flows the configuration names, follows changes
// without a restart and leaves the other flows alone.
func TestRuntimeFollowsTheConfiguration(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, k flowtest.Kind) {
		b := flowtest.Open(t, k, nil)
		svc := flowtest.ConfigService(t, b, nil)
		ctx := context.Background()
		key := "processor:tc"
		// Present before the processor starts: found by the startup fetch.
		if err := svc.Put(ctx, "default", schema.ConfigValue{Type: key, Key: "f1", Value: definition("default", "f1", "m1")}); err != nil {
			t.Fatal(err)
		}
		// Reserved workspaces are skipped.
		if err := svc.Put(ctx, "_template", schema.ConfigValue{Type: key, Key: "t", Value: definition("_template", "t", "x")}); err != nil {
			t.Fatal(err)
		}
		rt, err := flow.New(flow.Config{ID: "tc", RetryInterval: 100 * time.Millisecond}, b, nil,
			flow.Handle("request", "response", completion, router.WithErrorType("llm-error")), flow.Parameter("model"))
		if err != nil {
			t.Fatal(err)
		}
		flowtest.Run(t, rt.Run, rt.Ready())
		waitFlows(t, rt, "default/f1")
		if got, err := ask(t, b, "default", "f1", 10*time.Second); err != nil || got != "f1:m1:hi" {
			t.Fatalf("f1 answered %q, %v", got, err)
		}
		f := rt.Flows()[0]
		if sub := f.Handlers[0].Subscription; sub != "tc--default--f1--request" {
			t.Fatalf("subscription %q, want TrustGraph's name", sub)
		}

		// A new flow starts, a removed one stops, without a restart.
		if err := svc.Put(ctx, "default", schema.ConfigValue{Type: key, Key: "f2", Value: definition("default", "f2", "m2")}); err != nil {
			t.Fatal(err)
		}
		waitFlows(t, rt, "default/f1", "default/f2")
		if err := svc.Delete(ctx, "default", schema.ConfigKey{Type: key, Key: "f1"}); err != nil {
			t.Fatal(err)
		}
		waitFlows(t, rt, "default/f2")
		if got, err := ask(t, b, "default", "f2", 10*time.Second); err != nil || got != "f2:m2:hi" {
			t.Fatalf("f2 answered %q, %v", got, err)
		}
		if got, err := ask(t, b, "default", "f1", 300*time.Millisecond); err == nil {
			t.Fatalf("the removed flow f1 still answered %q", got)
		}
		// A changed definition restarts the flow with it.
		if err := svc.Put(ctx, "default", schema.ConfigValue{Type: key, Key: "f2", Value: definition("default", "f2", "m3")}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := ask(t, b, "default", "f2", 5*time.Second)
			if err == nil && got == "f2:m3:hi" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("f2 answered %q, %v after its model changed", got, err)
			}
		}
		// The version is recorded once the whole push is applied, which
		// can be just after the restarted flow has answered.
		for deadline := time.Now().Add(10 * time.Second); rt.Version() != svc.Version(); {
			if time.Now().After(deadline) {
				t.Fatalf("runtime at version %d, service at %d", rt.Version(), svc.Version())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// Without a configuration service the runtime keeps retrying and stops
// cleanly when asked.
func TestRuntimeRetriesUntilTheServiceAnswers(t *testing.T) {
	b := backend.NewMemory(nil)
	// Closed after the config service the test starts has stopped.
	t.Cleanup(func() { _ = b.Close() })
	rt, err := flow.New(flow.Config{ID: "tc", Timeout: 100 * time.Millisecond, RetryInterval: 50 * time.Millisecond}, b, nil,
		flow.Handle("request", "response", completion))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case <-rt.Ready():
		t.Fatal("ready without a configuration")
	default:
	}
	svc := flowtest.ConfigService(t, b, nil)
	if err := svc.Put(context.Background(), "w", schema.ConfigValue{Type: "processor:tc", Key: "f", Value: definition("w", "f", "m")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rt.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after the service came")
	}
	waitFlows(t, rt, "w/f")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// stallingService answers the startup fetch and then holds every request
// until its context ends.
type stallingService struct{ stalled chan struct{} }

func (s *stallingService) Request(ctx context.Context, req *schema.ConfigRequest) (*schema.ConfigResponse, error) {
	if req.Operation == "getkeys-all-ws" {
		return &schema.ConfigResponse{Version: 1}, nil
	}
	select {
	case s.stalled <- struct{}{}:
	default:
	}
	<-ctx.Done()
	// Long enough for the push subscription to end with the same context.
	time.Sleep(20 * time.Millisecond)
	return nil, ctx.Err()
}

// Cancelling Run is a normal stop, even when the runtime is applying a push
// at that moment and then finds the push subscription, which ends with the
// same context, closed as well as the context done.
func TestRuntimeStopsCleanlyWhenCancelledDuringAPush(t *testing.T) {
	b := backend.NewMemory(nil)
	t.Cleanup(func() { _ = b.Close() })
	payload, err := schema.Marshal(&schema.ConfigPush{Version: 2, Changes: map[string][]string{"processor:tc": {"w"}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		svc := &stallingService{stalled: make(chan struct{}, 1)}
		rt, err := flow.New(flow.Config{ID: "tc", Service: svc, Timeout: time.Minute}, b, nil,
			flow.Handle("request", "response", completion))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rt.Run(ctx) }()
		select {
		case <-rt.Ready():
		case err := <-done:
			t.Fatalf("run %d stopped before it was ready: %v", i, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d not ready within 10s", i)
		}
		if err := b.Publisher().Publish(schema.ConfigPushQueue.String(), message.NewMessage(watermill.NewUUID(), payload)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-svc.stalled:
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d did not apply the push", i)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run %d: cancelling returned %v", i, err)
		}
	}
}
