package kafkapubsub_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/kafkapubsub"
)

// suiteFeatures are the watermill universal suite's features for this
// adapter on flow (q1) topics:
//
//   - ConsumerGroups: the subscription name is the Kafka consumer group;
//     different groups each get every message, the Subscribe calls of one
//     group compete.
//   - Persistent: a group's committed offsets and the topic's records outlive
//     the consumer, so a new Subscriber of the group gets what was not acked.
//   - GuaranteedOrder with GuaranteedOrderWithSingleSubscriber: one partition
//     per topic, handed out one record at a time to a single Subscribe; a
//     nacked message comes back later as a copy, behind the others.
//   - ExactlyOnceDelivery is false: at least once.
//   - NewSubscriberReceivesOldMessages is false: a new group on a flow topic
//     starts at the latest message.
//   - ContextPreserved is false: Kafka does not carry a Go context.
//   - RestartServiceCommand restarts the broker (SWITCHYARD_KAFKA_RESTART)
//     only when SWITCHYARD_KAFKA_SUITE_RECONNECT=1 and the race detector is
//     off: the suite's TestReconnect in watermill v1.5.1 races on its own
//     list of published messages.
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
			return "q1/tgtest/flow/suite-" + string(tctx.TestID)
		},
	}
}

func suiteConstructors(addr string) (tests.PubSubConstructor, tests.ConsumerGroupPubSubConstructor) {
	build := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		cfg := kafkapubsub.Config{BootstrapServers: addr}
		pub, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{Config: cfg}, testLogger())
		if err != nil {
			t.Fatalf("NewPublisher: %v", err)
		}
		sub, err := kafkapubsub.NewSubscriber(kafkapubsub.SubscriberConfig{
			Config:           cfg,
			SubscriptionName: group,
			NackDelay:        100 * time.Millisecond,
		}, testLogger())
		if err != nil {
			t.Fatalf("NewSubscriber: %v", err)
		}
		return pub, sub
	}
	// The suite's tests run in parallel; one group for all of them would
	// rebalance at every Subscribe of every test. Each test gets a group of
	// its own (a test's subtests and its later constructors share it, which
	// TestContinueAfterSubscribeClose needs).
	plain := func(t *testing.T) (message.Publisher, message.Subscriber) {
		return build(t, "watermill-suite-"+suiteGroup(t.Name()))
	}
	group := func(t *testing.T, consumerGroup string) (message.Publisher, message.Subscriber) {
		return build(t, consumerGroup)
	}
	return plain, group
}

// TestUniversalSuite runs watermill's universal suite against the broker.
func TestUniversalSuite(t *testing.T) {
	addr := bootstrap(t)
	restart := strings.Fields(brokertest.Env(t, "SWITCHYARD_KAFKA_RESTART"))
	var r []string
	if !raceEnabled && os.Getenv("SWITCHYARD_KAFKA_SUITE_RECONNECT") == "1" {
		r = restart
	}
	plain, group := suiteConstructors(addr)
	tests.TestPubSub(t, suiteFeatures(r), plain, group)
}

// suiteGroup turns a test name into a group name: the top-level suite test
// and its first level, without characters Kafka would not show plainly.
func suiteGroup(name string) string {
	parts := strings.Split(name, "/")
	if len(parts) > 2 {
		parts = parts[:2]
	}
	return strings.NewReplacer("/", ".", " ", "_").Replace(strings.Join(parts, "/"))
}
