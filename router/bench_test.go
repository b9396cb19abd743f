package router_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/bench"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// BenchmarkHandleEcho measures what the router costs per message on the
// memory backend, which costs little itself: b.N requests of about 1 KiB
// flow through bench.Echo with at most 4096 unanswered, and one op is one
// request answered. The allocations include the load and the counter.
func BenchmarkHandleEcho(b *testing.B) {
	payload, err := bench.RequestPayload(1024)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name        string
		concurrency int
		maxInFlight int
	}{
		{"c1-pipelined", 1, 0},
		{"c1-sync", 1, 1},
		{"c8-pipelined", 8, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			benchmarkEcho(b, payload, c.concurrency, c.maxInFlight)
		})
	}
}

func benchmarkEcho(b *testing.B, payload []byte, concurrency, maxInFlight int) {
	in := schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: "flow", Queue: "bench-in"}
	out := schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: "flow", Queue: "bench-out"}
	be := backend.NewMemory(nil)
	defer be.Close()
	reader, err := be.NewSubscriber(router.SubscribeOptions{Subscription: "reader"})
	if err != nil {
		b.Fatal(err)
	}
	defer reader.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answers, err := reader.Subscribe(ctx, out.String())
	if err != nil {
		b.Fatal(err)
	}
	r, err := router.New(router.Config{ID: "bench", Concurrency: concurrency, MaxInFlight: maxInFlight}, be, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := router.Handle(r, "echo", in, out, bench.Echo); err != nil {
		b.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	<-r.Running()

	const outstanding = 4096
	slots := make(chan struct{}, outstanding)
	loadErr := make(chan error, 1)
	pub := be.Publisher()
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			slots <- struct{}{}
			msg := message.NewMessage(strconv.Itoa(i), payload)
			msg.Metadata.Set(schema.IDProperty, strconv.Itoa(i))
			if err := pub.Publish(in.String(), msg); err != nil {
				loadErr <- err
				return
			}
		}
		loadErr <- nil
	}()
	for n := 0; n < b.N; n++ {
		select {
		case msg := <-answers:
			msg.Ack()
			<-slots
		case err := <-loadErr:
			if err != nil {
				b.Fatal(err)
			}
			loadErr = nil
			n--
		case err := <-runErr:
			b.Fatal(fmt.Errorf("the router stopped: %v", err))
		}
	}
	b.StopTimer()
	cancel()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
}
