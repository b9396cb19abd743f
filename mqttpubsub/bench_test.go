package mqttpubsub_test

import (
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/switchyard-go/switchyard/mqttpubsub"
)

// benchPayload is a typical small JSON output.
var benchPayload = []byte(`{"response":"The quick brown fox jumps over the lazy dog.","error":null,"in_token":12,"out_token":9,"model":"m"}`)

// BenchmarkPublishAsync measures PublishAsync of one QoS 1 message, its
// confirmation included; allocs/op are per message, the MQTT client's
// included (and, on the embedded broker, the broker's). The message and
// the callback are made once, so that only the publishing is counted.
func BenchmarkPublishAsync(b *testing.B) {
	for _, tb := range []func(testing.TB) testBroker{mosquitto, embeddedBroker} {
		broker := tb(b)
		b.Run(broker.name, func(b *testing.B) {
			pub := newPublisher(b, broker, mqttpubsub.PayloadEnvelope)
			queue := uniqueQueue("q1")
			msg := message.NewMessage(watermill.NewUUID(), benchPayload)
			msg.Metadata.Set("id", watermill.NewUUID())
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				fail error
			)
			done := func(err error) {
				if err != nil {
					mu.Lock()
					fail = err
					mu.Unlock()
				}
				wg.Done()
			}
			wg.Add(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				pub.PublishAsync(queue, msg, done)
			}
			wg.Wait()
			b.StopTimer()
			if fail != nil {
				b.Fatal(fail)
			}
		})
	}
}

// BenchmarkRawPahoPublish is the baseline of BenchmarkPublishAsync: the
// paho client alone publishing the same envelope with QoS 1, at most 256
// unacknowledged, the oldest waited for when the window is full.
func BenchmarkRawPahoPublish(b *testing.B) {
	for _, tb := range []func(testing.TB) testBroker{mosquitto, embeddedBroker} {
		broker := tb(b)
		b.Run(broker.name, func(b *testing.B) {
			c := plainClient(b, broker)
			topic := mqttTopicOf(uniqueQueue("q1"))
			payload := []byte(`{"switchyard":1,"uuid":"` + watermill.NewUUID() + `","metadata":{"id":"` + watermill.NewUUID() + `"},"payload":` + string(benchPayload) + `}`)
			const window = 256
			tokens := make([]mqtt.Token, window)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if old := tokens[i%window]; old != nil {
					if old.Wait(); old.Error() != nil {
						b.Fatalf("publish: %v", old.Error())
					}
				}
				tokens[i%window] = c.Publish(topic, 1, false, payload)
			}
			for _, tok := range tokens {
				if tok != nil && (!tok.Wait() || tok.Error() != nil) {
					b.Fatalf("publish: %v", tok.Error())
				}
			}
		})
	}
}
