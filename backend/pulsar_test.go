package backend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
	"github.com/switchyard-go/switchyard/router"
)

const pulsarWait = 20 * time.Second

func pulsarTestBackend(t *testing.T, s PulsarSettings) router.Backend {
	t.Helper()
	if s.URL == "" {
		s.URL = brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
	}
	cfg := Config{Name: Pulsar, ClientName: "test", Pulsar: s}
	b, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("NewBackend: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing backend: %v", err)
		}
	})
	return b
}

func pulsarSubscribe(t *testing.T, b router.Backend, opts router.SubscribeOptions, topic string, n int) []<-chan *message.Message {
	t.Helper()
	sub, err := b.NewSubscriber(opts)
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
		t.Fatalf("SubscribeInitialize: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var chans []<-chan *message.Message
	for range n {
		ch, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		chans = append(chans, ch)
	}
	return chans
}

// drain reads from every channel, acking, until want distinct messages
// arrived or the wait ends, and returns how many each channel got.
func drain(t *testing.T, chans []<-chan *message.Message, want int) []int {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	counts := make([]int, len(chans))
	ctx, cancel := context.WithTimeout(context.Background(), pulsarWait)
	defer cancel()
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case m, ok := <-ch:
					if !ok {
						return
					}
					mu.Lock()
					seen[m.UUID] = true
					counts[i]++
					done := len(seen) >= want
					mu.Unlock()
					time.Sleep(time.Millisecond)
					m.Ack()
					if done {
						cancel()
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != want {
		t.Fatalf("received %d distinct messages, want %d (per channel %v)", len(seen), want, counts)
	}
	return counts
}

func publishN(t *testing.T, b router.Backend, topic string, n int) {
	t.Helper()
	for i := range n {
		if err := b.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprint(i)))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
}

// Subscribe calls on one subscriber of a named subscription compete, as
// --concurrency needs; two subscribers of one name share the messages.
func TestPulsarBackendSharedSubscription(t *testing.T) {
	b := pulsarTestBackend(t, PulsarSettings{ReceiverQueueSize: 5})
	topic := "q1/public/default/backend-" + watermill.NewShortUUID()
	group := "grp-" + watermill.NewShortUUID()
	chans := pulsarSubscribe(t, b, router.SubscribeOptions{Subscription: group}, topic, 2)
	chans = append(chans, pulsarSubscribe(t, b, router.SubscribeOptions{Subscription: group}, topic, 1)...)
	publishN(t, b, topic, 60)
	counts := drain(t, chans, 60)
	total := 0
	for _, c := range counts {
		total += c
	}
	if total > 60+5 {
		t.Errorf("%d deliveries of 60 messages: the subscribers did not share them", total)
	}
}

// Exclusive subscribers each see every message, also several Subscribe calls
// of one of them together; and so do subscribers of a response-class topic,
// whatever subscription name they were given.
func TestPulsarBackendExclusiveSubscriptions(t *testing.T) {
	admin := brokertest.Env(t, "SWITCHYARD_PULSAR_ADMIN_URL")
	b := pulsarTestBackend(t, PulsarSettings{})

	topic := "q0/public/default/backend-" + watermill.NewShortUUID()
	first := pulsarSubscribe(t, b, router.SubscribeOptions{Exclusive: true}, topic, 2)
	second := pulsarSubscribe(t, b, router.SubscribeOptions{Exclusive: true}, topic, 1)
	publishN(t, b, topic, 20)
	drain(t, first, 20)
	drain(t, second, 20)

	brokertest.EnsurePulsarNamespace(t, admin, "public/response")
	response := "response:public:backend-" + watermill.NewShortUUID()
	a := pulsarSubscribe(t, b, router.SubscribeOptions{Subscription: "same"}, response, 2)
	c := pulsarSubscribe(t, b, router.SubscribeOptions{Subscription: "same"}, response, 1)
	publishN(t, b, response, 10)
	drain(t, a, 10)
	drain(t, c, 10)
}

// A wrong token is a clear error in bounded time that does not show it.
func TestPulsarBackendWrongToken(t *testing.T) {
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bm90LXRoZS1yaWdodC1zaWduYXR1cmU"
	s := PulsarSettings{}
	s.Token, s.OperationTimeout = token, 3*time.Second
	b := pulsarTestBackend(t, s)
	start := time.Now()
	err := b.Publisher().Publish("q1/public/default/backend-"+watermill.NewShortUUID(), message.NewMessage("1", nil))
	if err == nil {
		t.Fatal("Publish with a wrong token succeeded")
	}
	if took := time.Since(start); took > pulsarWait {
		t.Errorf("took %s", took)
	}
	if strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("error: %v", err)
	}
}

func TestPulsarSettingsValidate(t *testing.T) {
	cases := []struct {
		s    PulsarSettings
		want string
	}{
		{PulsarSettings{ClientConfig: pulsarpubsub.ClientConfig{URL: "http://x:6650"}}, "--pulsar-host"},
		{PulsarSettings{ClientConfig: pulsarpubsub.ClientConfig{URL: "pulsar://u:secret-pw@x:6650"}}, "--pulsar-host"},
		{PulsarSettings{ClientConfig: pulsarpubsub.ClientConfig{Token: "a", TokenFile: "/f"}}, "not both"},
		{PulsarSettings{ClientConfig: pulsarpubsub.ClientConfig{TLSTrustCertsFile: "/ca.pem"}}, "pulsar+ssl://"},
		{PulsarSettings{ReceiverQueueSize: -1}, "--pulsar-receiver-queue-size"},
	}
	for _, c := range cases {
		err := c.s.validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error about %s", c.s, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	if err := (PulsarSettings{}).validate(); err != nil {
		t.Errorf("zero settings: %v", err)
	}
}
