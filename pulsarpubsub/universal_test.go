package pulsarpubsub_test

import (
	"os"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
)

// suiteFeatures are the watermill universal suite's features for this
// adapter on persistent (q1) topics:
//
//   - ConsumerGroups: the subscription name is the consumer group; the
//     subscribers of one shared subscription compete, and different
//     subscriptions each get every message.
//   - Persistent: a durable subscription on a persistent topic keeps its
//     messages while no consumer is connected, for a new Subscriber instance
//     too, and across broker restarts.
//   - GuaranteedOrder with GuaranteedOrderWithSingleSubscriber: the broker
//     dispatches a topic's messages to a single consumer in publish order and
//     the adapter hands them out one at a time; with several consumers of a
//     shared subscription they are spread over them, so order holds for a
//     single subscriber only (this also runs TestNoAck).
//   - ExactlyOnceDelivery is false: delivery is at least once (a message whose
//     ack was lost in a restart comes again).
//   - NewSubscriberReceivesOldMessages is false: a new subscription starts
//     at the latest message, like the adapter's default; acked messages are
//     not kept for later subscribers.
//   - ContextPreserved is false: Pulsar does not carry a Go context.
//   - RequireSingleInstance is false: instances share state through the broker.
//   - RestartServiceCommand restarts the broker (SWITCHYARD_PULSAR_RESTART,
//     scripts/pulsar.sh restart) for the suite's TestReconnect; see
//     TestUniversalSuite for when it is set. A restart of the standalone
//     broker takes about 15 seconds, inside the suite's 60 second window
//     between two messages, and scripts/pulsar.sh serialises the two
//     restarts the test asks for when they overlap.
//
// GenerateTopicFunc maps the suite's names to generic q1 queue names on the
// standalone broker's public/default namespace.
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
			return "q1/public/default/suite-" + string(tctx.TestID)
		},
	}
}

func suiteConstructors(url string) (tests.PubSubConstructor, tests.ConsumerGroupPubSubConstructor) {
	build := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		client := pulsarpubsub.ClientConfig{URL: url}
		pub, err := pulsarpubsub.NewPublisher(pulsarpubsub.PublisherConfig{ClientConfig: client}, testLogger())
		if err != nil {
			t.Fatalf("NewPublisher: %v", err)
		}
		sub, err := pulsarpubsub.NewSubscriber(pulsarpubsub.SubscriberConfig{
			ClientConfig:     client,
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
// The suite's TestReconnect (watermill v1.5.1) compares the messages
// received with a list of published messages that its own publishing
// goroutines append to without synchronisation: the race detector always
// reports it, and without -race the list can lack the last message
// published, which fails the test although every message arrived (both seen
// here with all 10000 messages received across two broker restarts). It
// therefore runs only when SWITCHYARD_PULSAR_SUITE_RECONNECT=1 and the race
// detector is off; TestReconnect in this package runs the same scenario
// (publishing from many goroutines while the broker restarts twice) without
// that flaw, always.
func TestUniversalSuite(t *testing.T) {
	url := brokerURL(t)
	restart := strings.Fields(brokertest.Env(t, "SWITCHYARD_PULSAR_RESTART"))
	if len(restart) == 0 {
		t.Fatal("SWITCHYARD_PULSAR_RESTART is empty")
	}
	var r []string
	if !raceEnabled && os.Getenv("SWITCHYARD_PULSAR_SUITE_RECONNECT") == "1" {
		r = restart
	}
	plain, group := suiteConstructors(url)
	tests.TestPubSub(t, suiteFeatures(r), plain, group)
}
