package mqttpubsub_test

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/mqttpubsub"
)

// TestReconnectMosquitto publishes from many goroutines while Mosquitto is
// restarted twice, and checks that a durable subscriber receives every
// message whose Publish succeeded. Publishers retry failed messages.
func TestReconnectMosquitto(t *testing.T) {
	b := mosquitto(t)
	restart := strings.Fields(brokertest.Env(t, "SWITCHYARD_MQTT_RESTART"))
	const total, workers = 3000, 30

	queue := uniqueQueue("q1")
	sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Durable: true, ClientID: "reconnect-" + watermill.NewShortUUID(), NackDelay: 10 * time.Millisecond})
	if err := sub.SubscribeInitialize(queue); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: b.url, ConnectTimeout: 5 * time.Second},
		PublishTimeout:   10 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	var (
		mu        sync.Mutex
		published = map[string]bool{}
		received  = map[string]bool{}
	)
	gotAll := make(chan struct{})
	go func() {
		for m := range msgs {
			mu.Lock()
			received[m.UUID] = true
			done := len(published) == total && covers(received, published)
			mu.Unlock()
			m.Ack()
			if done {
				close(gotAll)
				return
			}
		}
	}()

	restarts := make(chan error, 2)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				msg := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
				deadline := time.Now().Add(90 * time.Second)
				for {
					err := pub.Publish(queue, msg)
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("message %d: still failing after retries: %v", i, err)
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
				mu.Lock()
				published[msg.UUID] = true
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < total; i++ {
		if i == total/3 || i == total/2 {
			go func() {
				out, err := exec.Command(restart[0], restart[1:]...).CombinedOutput()
				if err != nil {
					err = &restartError{err: err, output: string(out)}
				}
				restarts <- err
			}()
		}
		next <- i
	}
	close(next)
	wg.Wait()
	for i := 0; i < 2; i++ {
		if err := <-restarts; err != nil {
			t.Fatalf("restarting Mosquitto: %v", err)
		}
	}
	mu.Lock()
	if len(published) == total && covers(received, published) {
		mu.Unlock()
		return
	}
	mu.Unlock()
	select {
	case <-gotAll:
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		missing := 0
		for id := range published {
			if !received[id] {
				missing++
			}
		}
		t.Fatalf("%d of %d published messages never arrived", missing, len(published))
	}
}

func covers(got, want map[string]bool) bool {
	for id := range want {
		if !got[id] {
			return false
		}
	}
	return true
}

type restartError struct {
	err    error
	output string
}

func (e *restartError) Error() string { return e.err.Error() + ": " + e.output }

// TestSharedSubscriptionAfterMosquittoRestart checks that a group whose
// session survived a Mosquitto restart gets messages again once it
// subscribes: Mosquitto restores the session but not its shared subscription.
func TestSharedSubscriptionAfterMosquittoRestart(t *testing.T) {
	b := mosquitto(t)
	restart := strings.Fields(brokertest.Env(t, "SWITCHYARD_MQTT_RESTART"))
	queue := uniqueQueue("q1")
	cfg := mqttpubsub.SubscriberConfig{Group: "restart-" + watermill.NewShortUUID()}
	before := newSubscriber(t, b, cfg)
	if err := before.SubscribeInitialize(queue); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
	kept := message.NewMessage(watermill.NewUUID(), []byte(`"kept"`))
	if err := pub.Publish(queue, kept); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(restart[0], restart[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("restarting Mosquitto: %v: %s", err, out)
	}
	after := newSubscriber(t, b, cfg)
	msgs, err := after.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, msgs, 20*time.Second)
	got.Ack()
	if got.UUID != kept.UUID {
		t.Fatalf("got %s, want the message kept over the restart", got.UUID)
	}
	fresh := message.NewMessage(watermill.NewUUID(), []byte(`"fresh"`))
	if err := pub.Publish(queue, fresh); err != nil {
		t.Fatal(err)
	}
	got = receive(t, msgs, 20*time.Second)
	got.Ack()
	if got.UUID != fresh.UUID {
		t.Fatalf("got %s, want the message published after the restart", got.UUID)
	}
}
