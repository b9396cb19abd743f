package router_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// A processor's handlers can be tested in process on the memory backend:
// register them on a router, publish a request, and read the response.
func Example_testAProcessorInProcess() {
	shout := func(_ context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
		return &schema.TextCompletionResponse{Response: strings.ToUpper(req.Prompt)}, nil
	}
	in, _ := schema.ParseTopic("request:tg:text-completion")
	out, _ := schema.ParseTopic("response:tg:text-completion")

	mem := backend.NewMemory(nil)
	defer mem.Close()
	r, _ := router.New(router.Config{ID: "shout-llm"}, mem, nil)
	_ = router.Handle(r, "shout", in, out, shout)

	// The client's own subscription to the response queue.
	sub, _ := mem.NewSubscriber(router.SubscribeOptions{Exclusive: true})
	defer sub.Close()
	responses, _ := sub.Subscribe(context.Background(), out.String())

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Running()

	req := message.NewMessage(watermill.NewUUID(), []byte(`{"prompt":"hello"}`))
	req.Metadata.Set(schema.IDProperty, "req-1")
	_ = mem.Publisher().Publish(in.String(), req)

	msg := <-responses
	msg.Ack()
	var resp schema.TextCompletionResponse
	_ = schema.Unmarshal(msg.Payload, &resp)
	fmt.Println(msg.Metadata.Get(schema.IDProperty), resp.Response, resp.EndOfStream)

	stop()
	fmt.Println(<-done)
	// Output:
	// req-1 HELLO true
	// <nil>
}
