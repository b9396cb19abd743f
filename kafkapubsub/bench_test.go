package kafkapubsub_test

import (
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// BenchmarkPublishAsync measures PublishAsync to a flow queue (idempotent,
// acks=all): time and allocations per message, the client's goroutines
// included. Messages carry an `id` property, as requests do.
func BenchmarkPublishAsync(b *testing.B) {
	topic := uniqueQueue("q1", "flow")
	p := newPublisher(b)
	msgs := make([]*message.Message, 1024)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(`{"system":"s","prompt":"p","streaming":false}`))
		msgs[i].Metadata.Set("id", watermill.NewUUID())
	}
	// Warm up: the topic is created and the producer connected.
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
