package mqttpubsub_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/mqttpubsub"
	"github.com/switchyard-go/switchyard/mqttpubsub/embedded"
	"github.com/switchyard-go/switchyard/schema"
)

const wait = 10 * time.Second

func TestQoSFollowsQueueClass(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		name := watermill.NewShortUUID()
		topic := "tg/mqtt-test/" + name
		plain := plainClient(t, b)
		got := plainSubscribe(t, plain, topic, 2)
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		want := map[string]byte{}
		for qos, queue := range []string{"q0/", "q1/", "q2/"} {
			msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			want[msg.UUID] = byte(qos)
			if err := pub.Publish(queue+topic, msg); err != nil {
				t.Fatal(err)
			}
		}
		for range want {
			select {
			case m := <-got:
				var env struct{ UUID string }
				if err := json.Unmarshal(m.Payload(), &env); err != nil {
					t.Fatalf("payload %q: %v", m.Payload(), err)
				}
				if q, ok := want[env.UUID]; !ok || m.Qos() != q {
					t.Errorf("message %s arrived with QoS %d, want %d", env.UUID, m.Qos(), q)
				}
				if m.Topic() != topic {
					t.Errorf("MQTT topic %q, want %q", m.Topic(), topic)
				}
			case <-time.After(wait):
				t.Fatal("plain subscriber got nothing")
			}
		}
	})
}

func TestClassFormMapsToTheSameMQTTTopic(t *testing.T) {
	b := embeddedBroker(t)
	name := watermill.NewShortUUID()
	plain := plainClient(t, b)
	got := plainSubscribe(t, plain, "tg/flow/"+name, 2)
	pub := newPublisher(t, b, mqttpubsub.PayloadRaw)
	if err := pub.Publish("flow:tg:"+name, message.NewMessage(watermill.NewUUID(), []byte(`"class"`))); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Qos() != 1 || string(m.Payload()) != `"class"` {
			t.Fatalf("got QoS %d payload %q", m.Qos(), m.Payload())
		}
	case <-time.After(wait):
		t.Fatal("nothing arrived")
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		plain := plainClient(t, b)
		wire := plainSubscribe(t, plain, mqttTopicOf(queue), 1)
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "roundtrip"})
		msgs, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		payloads := [][]byte{
			[]byte(`{"response": "hi", "is_final": true, "nested": [1, 2.5, null]}`),
			[]byte(`{"x": NaN}`), // Python JSON: not valid JSON, travels as text
			{0, 1, 2, 0xff, 0xfe},
			[]byte(" [1] "),
			nil,
		}
		var sent []*message.Message
		for i, p := range payloads {
			m := message.NewMessage(watermill.NewUUID(), p)
			m.Metadata.Set("id", "req-"+string(rune('a'+i)))
			m.Metadata.Set("trace", `quote " and \ backslash`)
			sent = append(sent, m)
		}
		if err := pub.Publish(queue, sent...); err != nil {
			t.Fatal(err)
		}
		for _, want := range sent {
			got := receive(t, msgs, wait)
			got.Ack()
			if got.UUID != want.UUID || string(got.Payload) != string(want.Payload) ||
				got.Metadata.Get("id") != want.Metadata.Get("id") || got.Metadata.Get("trace") != want.Metadata.Get("trace") {
				t.Errorf("got uuid %s payload %q metadata %v, want %s %q %v", got.UUID, got.Payload, got.Metadata, want.UUID, want.Payload, want.Metadata)
			}
			if got.Metadata.Get(mqttpubsub.EnvelopeErrorKey) != "" {
				t.Errorf("message flagged: %s", got.Metadata.Get(mqttpubsub.EnvelopeErrorKey))
			}
		}
		// The first payload is JSON, embedded as it is on the wire.
		select {
		case m := <-wire:
			s := string(m.Payload())
			if !strings.HasPrefix(s, `{"switchyard":1,"uuid":"`+sent[0].UUID+`"`) || !strings.HasSuffix(s, `"payload":`+string(payloads[0])+`}`) {
				t.Errorf("envelope on the wire: %s", s)
			}
		case <-time.After(wait):
			t.Fatal("plain subscriber got nothing")
		}
	})
}

func TestRawMode(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		plain := plainClient(t, b)
		wire := plainSubscribe(t, plain, mqttTopicOf(queue), 1)
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "raw", PayloadMode: mqttpubsub.PayloadRaw})
		msgs, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadRaw)
		sent := message.NewMessage(watermill.NewUUID(), []byte(`{"temperature":21.5}`))
		sent.Metadata.Set("id", "lost")
		if err := pub.Publish(queue, sent); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-wire:
			if string(m.Payload()) != `{"temperature":21.5}` {
				t.Errorf("raw payload on the wire: %q", m.Payload())
			}
		case <-time.After(wait):
			t.Fatal("plain subscriber got nothing")
		}
		got := receive(t, msgs, wait)
		got.Ack()
		if string(got.Payload) != `{"temperature":21.5}` || got.UUID == sent.UUID || got.UUID == "" ||
			len(got.Metadata) != 1 || got.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
			t.Errorf("raw receive: uuid %q payload %q metadata %v", got.UUID, got.Payload, got.Metadata)
		}
		// A plain device publishes; the raw subscriber takes the bytes as they are.
		plainPublish(t, plain, mqttTopicOf(queue), 1, []byte("not json at all"))
		got = receive(t, msgs, wait)
		got.Ack()
		if string(got.Payload) != "not json at all" || got.Metadata.Get(mqttpubsub.EnvelopeErrorKey) != "" {
			t.Errorf("raw receive of a device message: %q %v", got.Payload, got.Metadata)
		}
	})
}

func TestGarbageIsDeliveredFlagged(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "garbage"})
		msgs, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		plain := plainClient(t, b)
		garbage := [][]byte{[]byte("hello"), []byte(`{"id":"x","payload":{}}`), []byte(`{"switchyard":1,"uuid":"u","encoding":"base64","payload":"%%%"}`), {0xff, 0}}
		for _, g := range garbage {
			plainPublish(t, plain, mqttTopicOf(queue), 1, g)
		}
		for _, g := range garbage {
			got := receive(t, msgs, wait)
			reason := got.Metadata.Get(mqttpubsub.EnvelopeErrorKey)
			if reason == "" || !strings.Contains(reason, "not a switchyard MQTT envelope") {
				t.Errorf("payload %q: flag %q", g, reason)
			}
			if string(got.Payload) != string(g) || got.UUID == "" {
				t.Errorf("payload %q arrived as %q, uuid %q", g, got.Payload, got.UUID)
			}
			got.Ack()
		}
		expectNone(t, msgs, 300*time.Millisecond)
	})
}

func TestSharedSubscriptionSplitsTheLoad(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		group := "split-" + watermill.NewShortUUID()
		// Two processes of one group: each names itself with a client id.
		var chans []<-chan *message.Message
		for _, id := range []string{"replica-a", "replica-b"} {
			sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: group, ClientID: id})
			msgs, err := sub.Subscribe(context.Background(), queue)
			if err != nil {
				t.Fatal(err)
			}
			chans = append(chans, msgs)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		const n = 200
		want := map[string]bool{}
		var batch []*message.Message
		for i := 0; i < n; i++ {
			m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			want[m.UUID] = true
			batch = append(batch, m)
		}
		if err := pub.Publish(queue, batch...); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		got := map[string]int{}
		perReplica := make([]int, len(chans))
		var wg sync.WaitGroup
		for i, ch := range chans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case m := <-ch:
						mu.Lock()
						got[m.UUID]++
						perReplica[i]++
						mu.Unlock()
						m.Ack()
					case <-time.After(time.Second):
						return
					}
				}
			}()
		}
		wg.Wait()
		if len(got) != n {
			t.Fatalf("received %d distinct messages, want %d", len(got), n)
		}
		for id := range want {
			if got[id] == 0 {
				t.Fatalf("message %s lost", id)
			}
		}
		if perReplica[0] == 0 || perReplica[1] == 0 {
			t.Fatalf("load not shared: %v", perReplica)
		}
		t.Logf("%s: replicas got %v", b.name, perReplica)
	})
}

func TestGroupsAndExclusiveSubscribersEachGetEveryMessage(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		var chans []<-chan *message.Message
		for _, cfg := range []mqttpubsub.SubscriberConfig{
			{Group: "group-a"}, {Group: "group-b"}, {}, {},
		} {
			sub := newSubscriber(t, b, cfg)
			msgs, err := sub.Subscribe(context.Background(), queue)
			if err != nil {
				t.Fatal(err)
			}
			chans = append(chans, msgs)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		if err := pub.Publish(queue, m); err != nil {
			t.Fatal(err)
		}
		for i, ch := range chans {
			got := receive(t, ch, wait)
			got.Ack()
			if got.UUID != m.UUID {
				t.Errorf("subscriber %d got %s", i, got.UUID)
			}
		}
	})
}

func TestResponseQueuesAreNotShared(t *testing.T) {
	b := embeddedBroker(t)
	queue := "response:tg:" + watermill.NewShortUUID()
	var chans []<-chan *message.Message
	for i := 0; i < 2; i++ {
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "same-group"})
		msgs, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, msgs)
	}
	pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
	m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := pub.Publish(queue, m); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		got := receive(t, ch, wait)
		got.Ack()
		if got.UUID != m.UUID {
			t.Fatalf("got %s", got.UUID)
		}
	}
}

func TestConcurrentSubscribeCallsShareTheWork(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "slots-" + watermill.NewShortUUID()})
		if err := sub.SubscribeInitialize(queue); err != nil {
			t.Fatal(err)
		}
		a, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		c, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		m1 := message.NewMessage(watermill.NewUUID(), []byte(`1`))
		m2 := message.NewMessage(watermill.NewUUID(), []byte(`2`))
		if err := pub.Publish(queue, m1, m2); err != nil {
			t.Fatal(err)
		}
		// Both are handled at once: neither is acked before both arrived.
		got1 := receive(t, a, wait)
		got2 := receive(t, c, wait)
		if got1.UUID == got2.UUID {
			t.Fatalf("both subscriptions got %s", got1.UUID)
		}
		got1.Ack()
		got2.Ack()
		expectNone(t, a, 300*time.Millisecond)
		expectNone(t, c, 10*time.Millisecond)
	})
}

func TestNackRedeliversBehindLaterMessages(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		for _, mode := range []mqttpubsub.PayloadMode{mqttpubsub.PayloadEnvelope, mqttpubsub.PayloadRaw} {
			queue := uniqueQueue("q1")
			const delay = 300 * time.Millisecond
			sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "nack", NackDelay: delay, PayloadMode: mode})
			msgs, err := sub.Subscribe(context.Background(), queue)
			if err != nil {
				t.Fatal(err)
			}
			pub := newPublisher(t, b, mode)
			first := message.NewMessage(watermill.NewUUID(), []byte(`1`))
			second := message.NewMessage(watermill.NewUUID(), []byte(`2`))
			if err := pub.Publish(queue, first, second); err != nil {
				t.Fatal(err)
			}
			got := receive(t, msgs, wait)
			if string(got.Payload) != "1" || got.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
				t.Fatalf("%s: first delivery %q attempt %q", mode, got.Payload, got.Metadata.Get(schema.DeliveryAttemptKey))
			}
			nacked := time.Now()
			got.Nack()
			next := receive(t, msgs, wait)
			next.Ack()
			if string(next.Payload) != "2" {
				t.Fatalf("%s: after the nack got %q, want the second message", mode, next.Payload)
			}
			again := receive(t, msgs, wait)
			again.Ack()
			if string(again.Payload) != "1" || again.Metadata.Get(schema.DeliveryAttemptKey) != "2" {
				t.Fatalf("%s: then got %q attempt %q, want the first again as attempt 2", mode, again.Payload, again.Metadata.Get(schema.DeliveryAttemptKey))
			}
			if mode == mqttpubsub.PayloadEnvelope && again.UUID != first.UUID {
				t.Errorf("redelivered with uuid %s, want %s", again.UUID, first.UUID)
			}
			if waited := time.Since(nacked); waited < delay*8/10 {
				t.Errorf("%s: redelivered after %s, before the nack delay of %s", mode, waited, delay)
			}
			expectNone(t, msgs, 300*time.Millisecond)
		}
	})
}

func TestUnackedMessageComesBackToTheNextSubscriber(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		group := "crash-" + watermill.NewShortUUID()
		first := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: group})
		msgs, err := first.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		if err := pub.Publish(queue, m); err != nil {
			t.Fatal(err)
		}
		got := receive(t, msgs, wait)
		if got.UUID != m.UUID {
			t.Fatalf("got %s", got.UUID)
		}
		// The process goes away without acking.
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		got.Ack() // too late: the subscription is gone
		second := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: group})
		msgs, err = second.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		again := receive(t, msgs, wait)
		again.Ack()
		if again.UUID != m.UUID {
			t.Fatalf("after the restart got %s, want %s", again.UUID, m.UUID)
		}
		expectNone(t, msgs, 300*time.Millisecond)
	})
}

func TestLostConnectionRedeliversUnackedMessagesOnce(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		proxy := newKillProxy(t, strings.TrimPrefix(b.url, "tcp://"))
		via := testBroker{name: b.name, url: "tcp://" + proxy.addr()}
		queue := uniqueQueue("q1")
		group := "cut-" + watermill.NewShortUUID()
		sub := newSubscriber(t, via, mqttpubsub.SubscriberConfig{Group: group, ConnectionConfig: mqttpubsub.ConnectionConfig{MaxReconnectInterval: 200 * time.Millisecond}})
		msgs, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		var sent []*message.Message
		for i := 0; i < 3; i++ {
			sent = append(sent, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
		}
		if err := pub.Publish(queue, sent...); err != nil {
			t.Fatal(err)
		}
		held := receive(t, msgs, wait)
		if held.UUID != sent[0].UUID {
			t.Fatalf("got %s first", held.UUID)
		}
		// The connection breaks while all three are unacknowledged; the
		// broker sends them again when the subscription reconnects.
		proxy.cut()
		deadline := time.Now().Add(wait)
		for proxy.accepted() < 2 {
			if time.Now().After(deadline) {
				t.Fatal("the subscription did not reconnect")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // let the broker resend
		held.Ack()
		for _, want := range sent[1:] {
			got := receive(t, msgs, wait)
			got.Ack()
			if got.UUID != want.UUID {
				t.Fatalf("got %s, want %s", got.UUID, want.UUID)
			}
		}
		expectNone(t, msgs, 500*time.Millisecond)
		// And the acks reached the broker: a new subscriber of the group gets nothing.
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		next := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: group})
		msgs, err = next.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		expectNone(t, msgs, 500*time.Millisecond)
	})
}

func TestPersistentSessionKeepsMessagesWhileAway(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		for _, cfg := range []mqttpubsub.SubscriberConfig{
			{Group: "away-" + watermill.NewShortUUID()},
			{Durable: true, ClientID: "away-" + watermill.NewShortUUID()},
		} {
			queue := uniqueQueue("q2")
			sub := newSubscriber(t, b, cfg)
			if err := sub.SubscribeInitialize(queue); err != nil {
				t.Fatal(err)
			}
			pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
			m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			if err := pub.Publish(queue, m); err != nil {
				t.Fatal(err)
			}
			msgs, err := sub.Subscribe(context.Background(), queue)
			if err != nil {
				t.Fatal(err)
			}
			got := receive(t, msgs, wait)
			got.Ack()
			if got.UUID != m.UUID {
				t.Fatalf("got %s", got.UUID)
			}
		}
	})
}

func TestSubscribeContextEndsTheChannel(t *testing.T) {
	b := embeddedBroker(t)
	sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "ctx"})
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, uniqueQueue("q1"))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-msgs:
		if ok {
			t.Fatal("got a message")
		}
	case <-time.After(wait):
		t.Fatal("channel not closed after the context was cancelled")
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	b := embeddedBroker(t)
	sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "close"})
	queue := uniqueQueue("q1")
	msgs, err := sub.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := <-msgs; ok {
		t.Fatal("channel open after Close")
	}
	if _, err := sub.Subscribe(context.Background(), queue); !errors.Is(err, mqttpubsub.ErrSubscriberClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
	for i := 0; i < 2; i++ {
		if err := pub.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(queue, message.NewMessage(watermill.NewUUID(), nil)); !errors.Is(err, mqttpubsub.ErrPublisherClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

func TestIllegalTopicNamesAreRejected(t *testing.T) {
	b := embeddedBroker(t)
	pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
	sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "names"})
	for _, name := range []string{
		"", "q1/tg/flow/a+b", "q1/tg/flow/#", "q1/tg//x", "q1/tg/flow/x\x00y", "tg/flow/x",
		"q1/tg/flow/a/b", "q9/tg/flow/x", "q1/$SYS/flow/x", "flow:tg:", "persistent://tg/flow/a#",
	} {
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		for what, err := range map[string]error{
			"Publish":             pub.Publish(name, msg),
			"SubscribeInitialize": sub.SubscribeInitialize(name),
			"Subscribe":           subscribeErr(sub, name),
		} {
			if !errors.Is(err, schema.ErrInvalidTopic) {
				t.Errorf("%s(%q): %v, want an invalid queue name error", what, name, err)
				continue
			}
			if !strings.Contains(err.Error(), "invalid queue name") {
				t.Errorf("%s(%q): unclear error %q", what, name, err)
			}
		}
	}
}

func subscribeErr(sub *mqttpubsub.Subscriber, topic string) error {
	_, err := sub.Subscribe(context.Background(), topic)
	return err
}

func TestWrongPasswordFailsFastAndClearly(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		users := filepath.Join(t.TempDir(), "users")
		if err := os.WriteFile(users, []byte("alice:right-password-123\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		broker, err := embedded.Start(context.Background(), embedded.Config{Listen: "127.0.0.1:0", UsersFile: users, InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		defer broker.Close()
		checkAuth(t, broker.URL(), "alice", "right-password-123")
	})
	t.Run("mosquitto", func(t *testing.T) {
		addr := brokertest.Env(t, "SWITCHYARD_MQTT_AUTH_ADDR")
		user := brokertest.Env(t, "SWITCHYARD_MQTT_USER")
		password := brokertest.Env(t, "SWITCHYARD_MQTT_PASSWORD")
		checkAuth(t, "tcp://"+addr, user, password)
	})
}

// checkAuth checks that the right password works, from a password file
// too, and that a wrong one or none fails quickly with a clear error that
// does not reveal it.
func checkAuth(t *testing.T, url, user, password string) {
	t.Helper()
	conn := mqttpubsub.ConnectionConfig{Broker: url, Username: user, Password: password, ConnectTimeout: 3 * time.Second}
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{ConnectionConfig: conn}, nil)
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	_ = pub.Close()

	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := conn
	fromFile.Password, fromFile.PasswordFile = "", file
	sub, err := mqttpubsub.NewSubscriber(mqttpubsub.SubscriberConfig{ConnectionConfig: fromFile, Group: "auth"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SubscribeInitialize(uniqueQueue("q1")); err != nil {
		t.Fatalf("password from a file: %v", err)
	}
	_ = sub.Close()

	wrongPassword := "wrong-" + password
	for _, c := range []struct{ user, password string }{{user, wrongPassword}, {"", ""}} {
		bad := conn
		bad.Username, bad.Password = c.user, c.password
		start := time.Now()
		_, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{ConnectionConfig: bad}, nil)
		took := time.Since(start)
		if err == nil {
			t.Fatalf("user %q: connected with a wrong password", c.user)
		}
		var ce *mqttpubsub.ConnectError
		if !errors.Is(err, mqttpubsub.ErrConnect) || !errors.As(err, &ce) {
			t.Fatalf("user %q: error %v is not a ConnectError", c.user, err)
		}
		msg := err.Error()
		if strings.Contains(msg, password) || strings.ContainsAny(msg, "\n") {
			t.Fatalf("user %q: error reveals the password or spans lines: %q", c.user, msg)
		}
		if !strings.Contains(msg, "refused") && !strings.Contains(msg, "rejected") && !strings.Contains(msg, "requires") {
			t.Errorf("user %q: unclear error %q", c.user, msg)
		}
		if took > 2*bad.ConnectTimeout+2*time.Second {
			t.Errorf("user %q: failing took %s", c.user, took)
		}
		t.Logf("user %q: %s", c.user, msg)
	}
}

func TestUnreachableBrokerFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	start := time.Now()
	_, err = mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: addr, ConnectTimeout: 2 * time.Second},
	}, nil)
	if !errors.Is(err, mqttpubsub.ErrConnect) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error %v", err)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Fatalf("failing took %s", took)
	}
}

func TestPahoLogsAreRedacted(t *testing.T) {
	logger := &recordingLogger{}
	mqttpubsub.RoutePahoLogs(logger, true, "s3cret-pw")
	defer mqttpubsub.RoutePahoLogs(nil, false)
	mqtt.ERROR.Println("connect failed for", "user:s3cret-pw")
	mqtt.DEBUG.Printf("password=%s", "s3cret-pw")
	lines := logger.all()
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, "s3cret") || !strings.Contains(l, "***") {
			t.Errorf("line %q", l)
		}
	}
	mqttpubsub.RoutePahoLogs(logger, false, "s3cret-pw")
	mqtt.DEBUG.Println("not routed")
	if n := len(logger.all()); n != 2 {
		t.Fatalf("debug line routed with debug off: %d lines", n)
	}
}

type recordingLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *recordingLogger) add(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, msg)
}

func (l *recordingLogger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *recordingLogger) Error(msg string, _ error, _ watermill.LogFields) { l.add(msg) }
func (l *recordingLogger) Info(msg string, _ watermill.LogFields)           { l.add(msg) }
func (l *recordingLogger) Debug(msg string, _ watermill.LogFields)          { l.add(msg) }
func (l *recordingLogger) Trace(msg string, _ watermill.LogFields)          { l.add(msg) }
func (l *recordingLogger) With(watermill.LogFields) watermill.LoggerAdapter { return l }

// killProxy forwards TCP connections to a broker and can cut them all, as a
// crashed network or process would, without an MQTT DISCONNECT.
type killProxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	count int
	wg    sync.WaitGroup
}

func newKillProxy(t *testing.T, target string) *killProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &killProxy{l: l, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *killProxy) addr() string { return p.l.Addr().String() }

func (p *killProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.count++
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *killProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut closes every connection made so far.
func (p *killProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// accepted returns how many connections the proxy accepted.
func (p *killProxy) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}
