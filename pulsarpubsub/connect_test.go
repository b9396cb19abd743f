package pulsarpubsub_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Creating the first producer or consumer against a broker that is not there
// fails with an error that names the broker, within the operation timeout.
func TestUnreachableBrokerIsAClearErrorInBoundedTime(t *testing.T) {
	t.Parallel()
	url := "pulsar://" + closedPort(t)
	client := pulsarpubsub.ClientConfig{URL: url, ConnectionTimeout: time.Second, OperationTimeout: 3 * time.Second}
	const bound = 20 * time.Second
	topic := uniqueQueue("q1")

	pub, err := pulsarpubsub.NewPublisher(pulsarpubsub.PublisherConfig{ClientConfig: client}, testLogger())
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer pub.Close()
	start := time.Now()
	err = pub.Publish(topic, message.NewMessage("1", []byte("x")))
	took := time.Since(start)
	if err == nil {
		t.Fatal("Publish to an unreachable broker succeeded")
	}
	t.Logf("Publish error after %s: %v", took, err)
	if took > bound {
		t.Errorf("Publish took %s, want under %s", took, bound)
	}
	if !strings.Contains(err.Error(), url) {
		t.Errorf("error %q does not name the broker %s", err, url)
	}

	sub, err := pulsarpubsub.NewSubscriber(pulsarpubsub.SubscriberConfig{ClientConfig: client, SubscriptionName: "s"}, testLogger())
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	defer sub.Close()
	start = time.Now()
	_, err = sub.Subscribe(context.Background(), topic)
	took = time.Since(start)
	if err == nil {
		t.Fatal("Subscribe to an unreachable broker succeeded")
	}
	t.Logf("Subscribe error after %s: %v", took, err)
	if took > bound {
		t.Errorf("Subscribe took %s, want under %s", took, bound)
	}
	if !strings.Contains(err.Error(), url) {
		t.Errorf("error %q does not name the broker %s", err, url)
	}
}

// A token the broker does not accept is a clear error in bounded time, and
// the token is not part of it. scripts/pulsar.sh enables token
// authentication (clients without a token are anonymous), so a wrong token
// is refused by the real broker.
func TestWrongTokenIsAClearErrorInBoundedTime(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	const bad = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2VjcmV0LXNpZ25hdHVyZS1ub3QtdmFsaWQ"
	client := pulsarpubsub.ClientConfig{URL: url, Token: bad, ConnectionTimeout: 2 * time.Second, OperationTimeout: 3 * time.Second}
	const bound = 20 * time.Second
	topic := uniqueQueue("q1")

	pub, err := pulsarpubsub.NewPublisher(pulsarpubsub.PublisherConfig{ClientConfig: client}, testLogger())
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer pub.Close()
	start := time.Now()
	err = pub.Publish(topic, message.NewMessage("1", []byte("x")))
	took := time.Since(start)
	if err == nil {
		t.Fatal("Publish with a wrong token succeeded")
	}
	t.Logf("Publish error after %s: %v", took, err)
	if took > bound {
		t.Errorf("Publish took %s, want under %s", took, bound)
	}
	if strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("error shows the token: %v", err)
	}
	if !strings.Contains(err.Error(), "credentials") {
		t.Errorf("error %q does not say the credentials were refused", err)
	}

	sub, err := pulsarpubsub.NewSubscriber(pulsarpubsub.SubscriberConfig{ClientConfig: client, SubscriptionName: "s"}, testLogger())
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	defer sub.Close()
	start = time.Now()
	err = sub.SubscribeInitialize(topic)
	took = time.Since(start)
	if err == nil {
		t.Fatal("SubscribeInitialize with a wrong token succeeded")
	}
	t.Logf("SubscribeInitialize error after %s: %v", took, err)
	if took > bound {
		t.Errorf("SubscribeInitialize took %s, want under %s", took, bound)
	}
	if strings.Contains(err.Error(), bad) {
		t.Errorf("error shows the token: %v", err)
	}
}

// The right token, from a string or a file, is accepted.
func TestValidToken(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	token := brokertest.Env(t, "SWITCHYARD_PULSAR_TOKEN")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	topic := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{ClientConfig: pulsarpubsub.ClientConfig{URL: url, Token: token}})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{ClientConfig: pulsarpubsub.ClientConfig{URL: url, TokenFile: file}})
	ch := subscribe(t, sub, topic)
	publish(t, pub, topic, message.NewMessage("u-1", []byte("hello")))
	msg := receive(t, ch, 15*time.Second)
	msg.Ack()
	if msg.UUID != "u-1" || string(msg.Payload) != "hello" {
		t.Fatalf("got %s %q", msg.UUID, msg.Payload)
	}
}

// A token file that does not exist is an error of the constructor.
func TestMissingTokenFile(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such-token")
	_, err := pulsarpubsub.NewPublisher(pulsarpubsub.PublisherConfig{
		ClientConfig: pulsarpubsub.ClientConfig{URL: "pulsar://127.0.0.1:6650", TokenFile: missing},
	}, nil)
	if err == nil {
		t.Fatal("NewPublisher with a missing token file succeeded")
	}
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("error %v does not say that %s is missing", err, missing)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = pulsarpubsub.NewSubscriber(pulsarpubsub.SubscriberConfig{
		ClientConfig:     pulsarpubsub.ClientConfig{URL: "pulsar://127.0.0.1:6650", TokenFile: empty},
		SubscriptionName: "s",
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("NewSubscriber with an empty token file: got %v, want an error saying it is empty", err)
	}
}
