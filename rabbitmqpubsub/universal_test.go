package rabbitmqpubsub_test

import (
	"os"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
)

// suiteFeatures are the watermill universal suite's features for this
// adapter on flow topics (durable queues, persistent messages):
//
//   - ConsumerGroups: the subscription name names the queue; the
//     subscribers of one name compete, different names each get every
//     message (one queue each, bound to the topic's fanout exchange).
//   - Persistent: a durable queue keeps its messages while no consumer is
//     connected, for a new Subscriber too, and across broker restarts.
//   - GuaranteedOrder with GuaranteedOrderWithSingleSubscriber: a queue
//     hands its messages to a single consumer in publish order and the
//     adapter hands them out one at a time; with several consumers they are
//     spread over them. A nacked message is queued again behind the others,
//     which the suite's order tests allow.
//   - ExactlyOnceDelivery is false: delivery is at least once.
//   - NewSubscriberReceivesOldMessages is false: a new subscription name is
//     a new queue, which gets only messages published after it exists.
//   - ContextPreserved is false: AMQP does not carry a Go context.
//   - RequireSingleInstance is false: instances share state through the broker.
//   - RestartServiceCommand: see TestUniversalSuite.
func suiteFeatures(restart []string) tests.Features {
	return tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		RestartServiceCommand:               restart,
		RequireSingleInstance:               false,
		NewSubscriberReceivesOldMessages:    false,
		ContextPreserved:                    false,
		GenerateTopicFunc: func(tctx tests.TestContext) string {
			return "q1/switchyard-suite/flow/" + string(tctx.TestID)
		},
	}
}

func suiteConstructors(conn rabbitmqpubsub.ConnectionConfig) (tests.PubSubConstructor, tests.ConsumerGroupPubSubConstructor) {
	build := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		pub, err := rabbitmqpubsub.NewPublisher(rabbitmqpubsub.PublisherConfig{ConnectionConfig: conn}, testLogger())
		if err != nil {
			t.Fatalf("NewPublisher: %v", err)
		}
		sub, err := rabbitmqpubsub.NewSubscriber(rabbitmqpubsub.SubscriberConfig{
			ConnectionConfig: conn,
			SubscriptionName: group,
		}, testLogger())
		if err != nil {
			t.Fatalf("NewSubscriber: %v", err)
		}
		return pub, sub
	}
	plain := func(t *testing.T) (message.Publisher, message.Subscriber) {
		return build(t, "watermill-suite")
	}
	group := func(t *testing.T, consumerGroup string) (message.Publisher, message.Subscriber) {
		return build(t, consumerGroup)
	}
	return plain, group
}

// TestUniversalSuite runs watermill's universal suite against the broker.
//
// The suite's own TestReconnect (watermill v1.5.1) appends to its list of
// published messages from several goroutines without synchronisation: the
// race detector always reports it. It runs only when
// SWITCHYARD_RABBITMQ_SUITE_RECONNECT=1 and the race detector is off;
// TestBrokerRestart in this package covers the same ground.
func TestUniversalSuite(t *testing.T) {
	conn := connConfig(t)
	restart := strings.Fields(brokertest.Env(t, "SWITCHYARD_RABBITMQ_RESTART"))
	var r []string
	if !raceEnabled && os.Getenv("SWITCHYARD_RABBITMQ_SUITE_RECONNECT") == "1" {
		r = restart
	}
	plain, group := suiteConstructors(conn)
	tests.TestPubSub(t, suiteFeatures(r), plain, group)
}
