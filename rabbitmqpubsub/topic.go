package rabbitmqpubsub

import (
	"fmt"

	"github.com/switchyard-go/switchyard/schema"
)

// maxNameLength is the longest exchange or queue name AMQP 0-9-1 carries (a
// short string).
const maxNameLength = 255

// Wire is how a switchyard topic travels on RabbitMQ, exactly as
// TrustGraph 2.11.1's RabbitMQ backend lays it out.
type Wire struct {
	// Topic is the parsed switchyard topic.
	Topic schema.Topic
	// Class is the TrustGraph class used on the wire: the topic's class, or
	// flow for a topic of no class.
	Class schema.Class
	// Exchange is "{topicspace}.{class}.{topic}": a durable fanout exchange,
	// declared by producers and consumers alike.
	Exchange string
	// Exclusive is true for response and notify: each Subscriber consumes a
	// server-named queue of its own (durable=false, exclusive=true,
	// auto_delete=true), so every client sees every message.
	Exclusive bool
	// DurableQueue is the durable flag of a shared queue: true for flow,
	// false for request.
	DurableQueue bool
	// Persistent is true when messages are published with delivery_mode 2
	// (persistent): for flow topics whose QoS is persistent, which is every
	// flow topic in TrustGraph's class form (flow:tg:x is q1).
	Persistent bool
}

// WireOf maps a topic name in any form schema.ParseTopic accepts to its
// RabbitMQ layout: topicspace = Tenant, class = Class() (flow when the
// namespace is not one of TrustGraph's classes), topic = Queue.
func WireOf(topic string) (Wire, error) {
	t, err := schema.ParseTopic(topic)
	if err != nil {
		return Wire{}, err
	}
	class := t.Class()
	if class == schema.ClassNone {
		class = schema.ClassFlow
	}
	w := Wire{
		Topic:        t,
		Class:        class,
		Exchange:     t.Tenant + "." + string(class) + "." + t.Queue,
		Exclusive:    class.Exclusive(),
		DurableQueue: class == schema.ClassFlow,
	}
	w.Persistent = w.DurableQueue && t.QoS.Persistent()
	if len(w.Exchange) > maxNameLength {
		return Wire{}, &schema.TopicError{Name: topic, Reason: fmt.Sprintf("the RabbitMQ exchange name %q is longer than %d bytes", w.Exchange, maxNameLength)}
	}
	return w, nil
}

// QueueName is the queue a shared subscription consumes:
// "{exchange}.{subscription}". Response and notify topics have no named
// queue (each Subscriber gets a server-named one) and give "".
func (w Wire) QueueName(subscription string) string {
	if w.Exclusive {
		return ""
	}
	return w.Exchange + "." + subscription
}
