package pulsarpubsub_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
)

// Health is nil while the publisher's producer and the subscriber's consumer
// are connected, an error while the broker is down, and nil again once the
// client library has reconnected them. It restarts the broker, so it must
// not run in parallel with other tests of this package.
func TestHealthFollowsTheBrokerConnection(t *testing.T) {
	url := brokerURL(t)
	restart := strings.Fields(brokertest.Env(t, "SWITCHYARD_PULSAR_RESTART"))
	if len(restart) == 0 {
		t.Fatal("SWITCHYARD_PULSAR_RESTART is empty")
	}
	const bound = 3 * time.Minute // a restart on a busy machine, and reconnecting
	client := pulsarpubsub.ClientConfig{URL: url}
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{ClientConfig: client})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{ClientConfig: client})
	if err := pub.Health(); err != nil {
		t.Fatalf("publisher with no producer: Health = %v", err)
	}
	if err := sub.Health(); err != nil {
		t.Fatalf("subscriber with no subscription: Health = %v", err)
	}
	ch := subscribe(t, sub, queue)
	roundTrip := func() {
		t.Helper()
		sent := message.NewMessage(watermill.NewUUID(), []byte("x"))
		publish(t, pub, queue, sent)
		for {
			got := receive(t, ch, wait)
			got.Ack()
			if got.UUID == sent.UUID {
				return
			}
		}
	}
	roundTrip()
	if err := pub.Health(); err != nil {
		t.Fatalf("connected publisher: Health = %v", err)
	}
	if err := sub.Health(); err != nil {
		t.Fatalf("connected subscriber: Health = %v", err)
	}

	cmd := exec.Command(restart[0], restart[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("restarting the broker: %v", err)
	}
	restarted := make(chan error, 1)
	go func() { restarted <- cmd.Wait() }()

	var pubErr, subErr error
	deadline := time.After(bound)
	for pubErr == nil || subErr == nil {
		if pubErr == nil {
			pubErr = pub.Health()
		}
		if subErr == nil {
			subErr = sub.Health()
		}
		select {
		case err := <-restarted:
			restarted <- err
			if pubErr == nil || subErr == nil {
				t.Fatalf("broker restarted (%v) while Health stayed nil: publisher %v, subscriber %v", err, pubErr, subErr)
			}
		case <-deadline:
			t.Fatalf("no Health error within %s: publisher %v, subscriber %v", bound, pubErr, subErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Logf("while the broker is down: publisher: %v", pubErr)
	t.Logf("while the broker is down: subscriber: %v", subErr)
	for _, err := range []error{pubErr, subErr} {
		if !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "persistent://public/default/") {
			t.Errorf("Health error %q does not name the broker and the topic", err)
		}
	}
	select {
	case err := <-restarted:
		if err != nil {
			t.Fatalf("restarting the broker: %v", err)
		}
	case <-deadline:
		t.Fatalf("the broker did not restart within %s", bound)
	}
	for {
		pubErr, subErr = pub.Health(), sub.Health()
		if pubErr == nil && subErr == nil {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("Health not nil again within %s of the restart: publisher %v, subscriber %v", bound, pubErr, subErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	roundTrip()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Health(); !errors.Is(err, pulsarpubsub.ErrSubscriberClosed) {
		t.Errorf("closed subscriber: Health = %v, want ErrSubscriberClosed", err)
	}
}
