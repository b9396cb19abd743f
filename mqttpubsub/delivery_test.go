package mqttpubsub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/mqttpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// TestPoisonPillDoesNotHoldUpTheQueue nacks one message every time it comes,
// on a single Subscribe channel (concurrency 1), and checks that the four
// messages published after it are handled without waiting for it, and that
// its attempts count 1, 2, 3.
func TestPoisonPillDoesNotHoldUpTheQueue(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		const delay = 300 * time.Millisecond
		queue := uniqueQueue("q1")
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "poison-" + watermill.NewShortUUID(), NackDelay: delay})
		if err := sub.SubscribeInitialize(queue); err != nil {
			t.Fatal(err)
		}
		msgs, err := sub.Subscribe(context.Background(), queue)
		if err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		batch := []*message.Message{message.NewMessage(watermill.NewUUID(), []byte(`"poison"`))}
		for i := 0; i < 4; i++ {
			batch = append(batch, message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i))))
		}
		published := time.Now()
		if err := pub.Publish(queue, batch...); err != nil {
			t.Fatal(err)
		}
		var attempts []string
		good := map[string]time.Duration{}
		for len(good) < 4 || len(attempts) < 3 {
			m := receive(t, msgs, wait)
			if m.UUID == batch[0].UUID {
				attempts = append(attempts, m.Metadata.Get(schema.DeliveryAttemptKey))
				m.Nack()
				continue
			}
			if _, dup := good[m.UUID]; dup {
				t.Fatalf("good message %s delivered twice", m.UUID)
			}
			good[m.UUID] = time.Since(published)
			m.Ack()
		}
		for id, took := range good {
			if took > 2*delay {
				t.Errorf("good message %s handled %s after publishing, more than twice the nack delay %s", id, took, delay)
			}
		}
		for i, a := range attempts {
			if a != strconv.Itoa(i+1) {
				t.Fatalf("poison attempts %v, want 1, 2, 3, ...", attempts)
			}
		}
		t.Logf("%s: good messages handled after %v; poison attempts %v", b.name, good, attempts)
	})
}

// TestRedeliveryCopyStaysInItsSubscription nacks a message in one group and
// checks that the copy published for its redelivery reaches that group only:
// another group, an exclusive and a durable subscriber of the topic each
// handle the message once.
func TestRedeliveryCopyStaysInItsSubscription(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := uniqueQueue("q1")
		cfgs := []mqttpubsub.SubscriberConfig{
			{Group: "nacker-" + watermill.NewShortUUID(), NackDelay: 100 * time.Millisecond},
			{Group: "other-" + watermill.NewShortUUID()},
			{},
			{Durable: true, ClientID: "durable-" + watermill.NewShortUUID()},
		}
		var chans []<-chan *message.Message
		for _, cfg := range cfgs {
			sub := newSubscriber(t, b, cfg)
			if err := sub.SubscribeInitialize(queue); err != nil {
				t.Fatal(err)
			}
			msgs, err := sub.Subscribe(context.Background(), queue)
			if err != nil {
				t.Fatal(err)
			}
			chans = append(chans, msgs)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		m.Metadata.Set("id", "req-1")
		if err := pub.Publish(queue, m); err != nil {
			t.Fatal(err)
		}
		first := receive(t, chans[0], wait)
		first.Nack()
		again := receive(t, chans[0], wait)
		again.Ack()
		if again.UUID != m.UUID || again.Metadata.Get("id") != "req-1" || again.Metadata.Get(schema.DeliveryAttemptKey) != "2" {
			t.Fatalf("redelivery: uuid %s metadata %v", again.UUID, again.Metadata)
		}
		for i, ch := range chans[1:] {
			got := receive(t, ch, wait)
			got.Ack()
			if got.UUID != m.UUID || got.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
				t.Fatalf("subscriber %d: got %s attempt %s", i+1, got.UUID, got.Metadata.Get(schema.DeliveryAttemptKey))
			}
		}
		for _, ch := range chans {
			expectNone(t, ch, 500*time.Millisecond)
		}
	})
}

// TestExclusiveQueueSharesOneSubscriptionAmongSubscribeCalls consumes a
// response queue (one subscription per client) with three Subscribe calls of
// one Subscriber, as the router does at --concurrency 3, and checks that each
// message is handled once.
func TestExclusiveQueueSharesOneSubscriptionAmongSubscribeCalls(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b testBroker) {
		queue := "q1/tg/response/" + watermill.NewShortUUID()
		sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "ignored-for-responses"})
		var chans []<-chan *message.Message
		for i := 0; i < 3; i++ {
			msgs, err := sub.Subscribe(context.Background(), queue)
			if err != nil {
				t.Fatal(err)
			}
			chans = append(chans, msgs)
		}
		pub := newPublisher(t, b, mqttpubsub.PayloadEnvelope)
		const n = 30
		var batch []*message.Message
		for i := 0; i < n; i++ {
			batch = append(batch, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
		}
		if err := pub.Publish(queue, batch...); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for _, ch := range chans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case m := <-ch:
						mu.Lock()
						got[m.UUID]++
						mu.Unlock()
						m.Ack()
					case <-time.After(time.Second):
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, m := range batch {
			if got[m.UUID] != 1 {
				t.Errorf("message %s handled %d times, want once", m.UUID, got[m.UUID])
			}
		}
		if len(got) != n {
			t.Errorf("handled %d distinct messages, want %d", len(got), n)
		}
	})
}

// TestPublishErrorsThatRetryCannotFixArePermanent checks that an invalid
// topic and a message larger than the broker's maximum packet size give an
// error that says it is permanent.
func TestPublishErrorsThatRetryCannotFixArePermanent(t *testing.T) {
	b := embeddedBroker(t)
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: b.url},
		MaxPacketSize:    1024,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	permanent := func(err error) bool {
		var p interface{ Permanent() bool }
		return errors.As(err, &p) && p.Permanent()
	}
	err = pub.Publish("q1/tg/flow/a+b", message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
	if err == nil || !permanent(err) || !errors.Is(err, schema.ErrInvalidTopic) {
		t.Errorf("invalid topic: %v, want a permanent error wrapping schema.ErrInvalidTopic", err)
	}
	queue := uniqueQueue("q1")
	small := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	big := message.NewMessage(watermill.NewUUID(), []byte(`"`+strings.Repeat("x", 2000)+`"`))
	err = pub.Publish(queue, small, big)
	var pe *mqttpubsub.PublishError
	if !permanent(err) || !errors.As(err, &pe) || pe.Index != 1 || pe.UUID != big.UUID {
		t.Errorf("oversized message: %v, want a permanent *PublishError for message 2", err)
	}
	if err := pub.Publish(queue, small); err != nil || permanent(err) {
		t.Errorf("a message that fits: %v", err)
	}
}

// TestPublisherHealthFollowsTheConnection cuts the publisher's connection
// and checks that Health reports it until the publisher is back.
func TestPublisherHealthFollowsTheConnection(t *testing.T) {
	b := embeddedBroker(t)
	proxy := newKillProxy(t, strings.TrimPrefix(b.url, "tcp://"))
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: "tcp://" + proxy.addr(), MaxReconnectInterval: 200 * time.Millisecond},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Health(); err != nil {
		t.Fatalf("connected publisher: %v", err)
	}
	proxy.cut()
	waitFor(t, "Health to report the lost connection", func() bool {
		err := pub.Health()
		return err != nil && strings.Contains(err.Error(), "disconnected from")
	})
	waitFor(t, "Health to recover", func() bool { return pub.Health() == nil })
	_ = pub.Close()
	if pub.Health() == nil {
		t.Error("a closed publisher reports healthy")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// refuseSubscriptions is a mochi-mqtt hook that admits every client and
// refuses subscriptions while refuse is set.
type refuseSubscriptions struct {
	mochi.HookBase
	refuse atomic.Bool
}

func (h *refuseSubscriptions) ID() string { return "refuse-subscriptions" }

func (h *refuseSubscriptions) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *refuseSubscriptions) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool {
	return true
}

func (h *refuseSubscriptions) OnACLCheck(_ *mochi.Client, _ string, write bool) bool {
	return write || !h.refuse.Load()
}

// TestSubscriptionRenewalIsRetriedUntilItSucceeds makes the broker refuse
// subscriptions, cuts the subscriber's connection, and checks that Health
// reports the subscription missing while renewing it fails, that renewing is
// retried until the broker accepts it, logged once each way, and that
// messages flow again.
func TestSubscriptionRenewalIsRetriedUntilItSucceeds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	server := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hook := &refuseSubscriptions{}
	if err := server.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	go func() { _ = server.Serve() }()
	t.Cleanup(func() { _ = server.Close() })
	b := testBroker{name: "mochi", url: "tcp://" + addr}
	waitFor(t, "the broker to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})

	proxy := newKillProxy(t, addr)
	logs := &recordingLogger{}
	sub, err := mqttpubsub.NewSubscriber(mqttpubsub.SubscriberConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: "tcp://" + proxy.addr(), MaxReconnectInterval: 200 * time.Millisecond},
		Group:            "renew",
	}, logs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	queue := uniqueQueue("q1")
	msgs, err := sub.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Health(); err != nil {
		t.Fatalf("subscribed: %v", err)
	}
	hook.refuse.Store(true)
	proxy.cut()
	waitFor(t, "Health to report the refused subscription", func() bool {
		err := sub.Health()
		return err != nil && strings.Contains(err.Error(), "not renewed since")
	})
	time.Sleep(time.Second) // several refused attempts
	t.Logf("while refused: %v", sub.Health())
	hook.refuse.Store(false)
	waitFor(t, "Health to recover", func() bool { return sub.Health() == nil })

	c := plainClient(t, b)
	plainPublish(t, c, mqttTopicOf(queue), 1, []byte(`{"switchyard":1,"uuid":"after","payload":{}}`))
	got := receive(t, msgs, wait)
	got.Ack()
	if got.UUID != "after" {
		t.Fatalf("got %s", got.UUID)
	}
	count := func(prefix string) int {
		n := 0
		for _, line := range logs.all() {
			if strings.HasPrefix(line, prefix) {
				n++
			}
		}
		return n
	}
	if n := count("MQTT subscription could not be renewed"); n != 1 {
		t.Errorf("%d log lines about the failed renewal, want 1", n)
	}
	if n := count("MQTT subscription renewed"); n != 1 {
		t.Errorf("%d log lines about the recovery, want 1", n)
	}
}

// TestBacklogIsConsumedInBoundedMemory fills a durable session on Mosquitto
// with a backlog (150,000 messages; 20,000 under the race detector, which
// makes everything slower and bigger) and consumes it with one subscriber.
// Mosquitto sends far more than its max_inflight_messages once the client
// acks, so without the subscriber's window the whole backlog would pile up
// in the process. It reports the peak heap in use and the peak RSS (VmHWM)
// while consuming.
func TestBacklogIsConsumedInBoundedMemory(t *testing.T) {
	b := mosquitto(t)
	n := 150000
	if raceEnabled {
		n = 20000
	}
	queue := uniqueQueue("q1")
	sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Durable: true, ClientID: "backlog-" + watermill.NewShortUUID()})
	if err := sub.SubscribeInitialize(queue); err != nil {
		t.Fatal(err)
	}
	// A typical small TrustGraph message in an envelope (about 450 bytes).
	payload := []byte(`{"switchyard":1,"uuid":"u","metadata":{"id":"x"},"payload":{"text":"` + strings.Repeat("a", 380) + `"}}`)
	c := plainClient(t, b)
	var tokens []mqtt.Token
	for i := 0; i < n; i++ {
		tokens = append(tokens, c.Publish(mqttTopicOf(queue), 1, false, payload))
		if len(tokens) == 1000 || i == n-1 {
			for _, tk := range tokens {
				if !tk.WaitTimeout(wait) || tk.Error() != nil {
					t.Fatalf("publishing the backlog: %v", tk.Error())
				}
			}
			tokens = tokens[:0]
		}
	}
	c.Disconnect(100)
	runtime.GC()
	resetPeakRSS(t)
	before := peakRSS(t)
	msgs, err := sub.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	var peakHeap uint64
	start := time.Now()
	for i := 0; i < n; i++ {
		m := receive(t, msgs, wait)
		m.Ack()
		if i%2000 == 0 {
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
		}
	}
	took := time.Since(start)
	rss := peakRSS(t)
	t.Logf("consumed %d messages in %s (%.0f/s); peak heap in use %.1f MB; peak RSS %.1f MB (%.1f MB before consuming)",
		n, took, float64(n)/took.Seconds(), float64(peakHeap)/1e6, float64(rss)/1e3, float64(before)/1e3)
	// Generous: the window holds 256 messages of about 1 kB each in memory;
	// without it this backlog took over 100 MB of heap.
	if limit := uint64(40e6); peakHeap > limit {
		t.Errorf("peak heap in use %d bytes, more than %d", peakHeap, limit)
	}
}

// resetPeakRSS resets the kernel's peak RSS (VmHWM) of this process.
func resetPeakRSS(t *testing.T) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS: %v", err)
	}
}

// peakRSS returns VmHWM of this process in kB.
func peakRSS(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Logf("reading /proc/self/status: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			v, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// TestSharedGroupLosesNothingAcrossMosquittoRestarts streams 10,000 messages
// to a group while Mosquitto restarts twice, and checks that every message
// whose Publish succeeded arrives. Mosquitto forgets shared subscriptions in
// a restart and drops what is published to the topic before they are
// renewed; subscriptions reconnect within a quarter second and publishers
// wait PublisherConfig.ReconnectGrace after reconnecting. Set
// SWITCHYARD_MQTT_RESTART_RUNS to repeat it.
func TestSharedGroupLosesNothingAcrossMosquittoRestarts(t *testing.T) {
	b := mosquitto(t)
	restart := strings.Fields(brokertest.Env(t, "SWITCHYARD_MQTT_RESTART"))
	runs := 1
	if v, err := strconv.Atoi(os.Getenv("SWITCHYARD_MQTT_RESTART_RUNS")); err == nil && v > 0 {
		runs = v
	}
	var losses []int
	for run := 0; run < runs; run++ {
		lost := restartRun(t, b, restart)
		losses = append(losses, lost)
		t.Logf("run %d: %d lost", run+1, lost)
	}
	t.Logf("lost per run: %v", losses)
	for i, lost := range losses {
		if lost != 0 {
			t.Errorf("run %d lost %d messages", i+1, lost)
		}
	}
}

func restartRun(t *testing.T, b testBroker, restart []string) int {
	const total, workers = 10000, 20
	queue := uniqueQueue("q1")
	sub := newSubscriber(t, b, mqttpubsub.SubscriberConfig{Group: "restart-" + watermill.NewShortUUID(), ClientID: "r1"})
	if err := sub.SubscribeInitialize(queue); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	received := map[string]bool{}
	for i := 0; i < 4; i++ { // --concurrency 4
		msgs, err := sub.Subscribe(ctx, queue)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range msgs {
				mu.Lock()
				received[m.UUID] = true
				mu.Unlock()
				m.Ack()
			}
		}()
	}
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: mqttpubsub.ConnectionConfig{Broker: b.url, ConnectTimeout: 5 * time.Second},
		PublishTimeout:   10 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	published := map[string]bool{}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"n":%d}`, i)))
				deadline := time.Now().Add(60 * time.Second)
				for pub.Publish(queue, msg) != nil {
					if time.Now().After(deadline) {
						t.Errorf("message %d: still failing", i)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				mu.Lock()
				published[msg.UUID] = true
				mu.Unlock()
			}
		}()
	}
	// One restart at a time: the second starts when a third of the
	// messages is left and the first is done.
	trigger := make(chan struct{}, 2)
	restarted := make(chan error, 1)
	go func() {
		for i := 0; i < 2; i++ {
			<-trigger
			out, err := exec.Command(restart[0], restart[1:]...).CombinedOutput()
			if err != nil {
				restarted <- fmt.Errorf("%w: %s", err, out)
				return
			}
		}
		restarted <- nil
	}()
	for i := 0; i < total; i++ {
		if i == total/3 || i == 2*total/3 {
			trigger <- struct{}{}
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := <-restarted; err != nil {
		t.Fatalf("restarting Mosquitto: %v", err)
	}
	lost := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for id := range published {
			if !received[id] {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(20 * time.Second)
	for lost() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	return lost()
}
