package schema

// Message property (metadata) keys that every backend and the middleware
// agree on. Properties other than IDProperty are switchyard's own; Python
// TrustGraph processors read only `id` and ignore the rest.
const (
	// IDProperty correlates a request with its responses: every output
	// carries the `id` of the input it answers.
	IDProperty = "id"

	// DeliveryAttemptKey holds the delivery attempt of a received message as
	// a decimal number: "1" on the first delivery, "2" on the first
	// redelivery, and so on. Adapters set it on every message they emit to
	// a subscriber, from the broker's own redelivery counter where it has
	// one (Pulsar) or from the same key carried on the wire where a nack is
	// implemented by publishing the message again (MQTT, RabbitMQ, Kafka).
	// The delivery policy compares it with the handler's max deliveries.
	DeliveryAttemptKey = "switchyard-attempt"
)
