package rabbitmqpubsub_test

import (
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
)

// BenchmarkPublishAsync measures PublishAsync to a request queue with one
// consumer-less binding (the broker confirms unrouted messages at once):
// time and allocations per message, the pipeline's goroutine and the
// client's included. Messages carry an `id` property, as requests do.
func BenchmarkPublishAsync(b *testing.B) {
	topic := "request:tg:" + uniqueName("bench")
	p := newPublisher(b, rabbitmqpubsub.PublisherConfig{})
	msgs := make([]*message.Message, 1024)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(`{"system":"s","prompt":"p","streaming":false}`))
		msgs[i].Metadata.Set("id", watermill.NewUUID())
	}
	// Warm up: the exchange is declared and the pipeline started.
	publish(b, p, topic, msgs[0])
	var wg sync.WaitGroup
	var failed sync.Once
	done := func(err error) {
		if err != nil {
			failed.Do(func() { b.Errorf("PublishAsync: %v", err) })
		}
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	wg.Add(b.N)
	for i := 0; i < b.N; i++ {
		p.PublishAsync(topic, msgs[i%len(msgs)], done)
	}
	wg.Wait()
}

// BenchmarkRawDeferredConfirm is the baseline of BenchmarkPublishAsync:
// amqp091-go alone publishing the same messages on one confirm-mode channel,
// a goroutine waiting for the confirms in order.
func BenchmarkRawDeferredConfirm(b *testing.B) {
	topic := "request:tg:" + uniqueName("bench-raw")
	w, err := rabbitmqpubsub.WireOf(topic)
	if err != nil {
		b.Fatal(err)
	}
	ch := rawChannel(b)
	if err := ch.ExchangeDeclare(w.Exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	pubs := make([]amqp.Publishing, 1024)
	for i := range pubs {
		pubs[i] = amqp.Publishing{
			ContentType: "application/json",
			MessageId:   watermill.NewUUID(),
			Headers:     amqp.Table{"id": watermill.NewUUID()},
			Body:        []byte(`{"system":"s","prompt":"p","streaming":false}`),
		}
	}
	confirms := make(chan *amqp.DeferredConfirmation, 4096)
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		for dc := range confirms {
			if !dc.Wait() {
				b.Error("not confirmed")
				return
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dc, err := ch.PublishWithDeferredConfirm(w.Exchange, "", false, false, pubs[i%len(pubs)])
		if err != nil {
			b.Fatal(err)
		}
		confirms <- dc
	}
	close(confirms)
	<-waited
}
