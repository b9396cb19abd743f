package rrclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/rrclient"
	"github.com/switchyard-go/switchyard/schema"
)

// A client calls a text-completion service through its request and
// response queues; here the service runs in the same process, on the
// memory backend.
func Example() {
	in, _ := schema.ParseTopic("request:tg:text-completion")
	out, _ := schema.ParseTopic("response:tg:text-completion")
	mem := backend.NewMemory(nil)
	defer mem.Close()

	// The service: capitals, or an error for an empty prompt.
	r, _ := router.New(router.Config{ID: "shout-llm"}, mem, nil)
	_ = router.Handle(r, "shout", in, out, func(_ context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
		if req.Prompt == "" {
			return &schema.TextCompletionResponse{Error: &schema.Error{Type: "llm-error", Message: "empty prompt"}}, nil
		}
		return &schema.TextCompletionResponse{Response: strings.ToUpper(req.Prompt)}, nil
	})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Running()

	// The client.
	c, err := rrclient.New[schema.TextCompletionRequest, schema.TextCompletionResponse](context.Background(), mem,
		rrclient.Config{Request: in, Response: out})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	resp, err := c.Request(context.Background(), &schema.TextCompletionRequest{Prompt: "hello"})
	fmt.Println(resp.Response, resp.EndOfStream, err)

	_, err = c.Request(context.Background(), &schema.TextCompletionRequest{})
	var re *rrclient.ResponseError
	if errors.As(err, &re) {
		fmt.Println(re.Type, re.Message)
	}

	stop()
	fmt.Println(<-done)
	// Output:
	// HELLO true <nil>
	// llm-error empty prompt
	// <nil>
}
