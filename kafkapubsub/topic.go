package kafkapubsub

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/schema"
)

// Retention of topics the adapter creates, as TrustGraph creates them.
const (
	// FlowRetention is retention.ms of flow (and other shared, persistent) topics: 7 days.
	FlowRetention = 7 * 24 * time.Hour
	// ShortRetention is retention.ms of request, response and notify topics: 5 minutes.
	ShortRetention = 5 * time.Minute
)

// topicSpec is how one queue maps onto Kafka.
type topicSpec struct {
	queue schema.Topic
	// name is the Kafka topic.
	name string
	// durable: flow (or a persistent queue of another namespace): producer
	// acks=all and 7 days of retention; otherwise leader ack and 5 minutes.
	durable bool
	// perClient: response and notify, one consumer group per client reading
	// from the earliest retained message.
	perClient bool
}

// TopicName returns the Kafka topic of a queue name in any form
// schema.ParseTopic accepts: "{tenant}.{namespace}.{queue}" with every ':'
// replaced by '.', which for TrustGraph's classes is its own
// "{topicspace}.{class}.{topic}" (request:tg:text-completion:default:default
// is tg.request.text-completion.default.default).
func TopicName(queue string) (string, error) {
	s, err := parseTopic(queue)
	if err != nil {
		return "", err
	}
	return s.name, nil
}

func parseTopic(queue string) (topicSpec, error) {
	t, err := schema.ParseTopic(queue)
	if err != nil {
		return topicSpec{}, &PermanentError{Op: "mapping queue name", Err: err}
	}
	name := strings.ReplaceAll(t.Tenant+"."+t.Namespace+"."+t.Queue, ":", ".")
	if err := checkKafkaName(name); err != nil {
		return topicSpec{}, &PermanentError{Op: "mapping queue name", Err: fmt.Errorf("queue %q maps to Kafka topic %q: %w", queue, name, err)}
	}
	c := t.Class()
	return topicSpec{
		queue:     t,
		name:      name,
		durable:   c == schema.ClassFlow || (c == schema.ClassNone && t.QoS.Persistent()),
		perClient: c.Exclusive(),
	}, nil
}

// checkKafkaName applies the broker's rules for topic names.
func checkKafkaName(name string) error {
	if len(name) > 249 {
		return fmt.Errorf("longer than 249 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("contains %q; Kafka allows only ASCII letters, digits, '.', '_' and '-'", c)
		}
	}
	return nil
}

func (s topicSpec) retention() time.Duration {
	if s.durable {
		return FlowRetention
	}
	return ShortRetention
}
