package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// killBackend is a broker the kill test runs on: the flags that point a
// processor at it and the configuration of the in-process client that
// publishes the requests and reads the responses.
type killBackend struct {
	name  string
	setup func(t *testing.T) (flags []string, cfg backend.Config)
}

var killBackends = []killBackend{
	{"pulsar", func(t *testing.T) ([]string, backend.Config) {
		url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
		brokertest.EnsurePulsarNamespace(t, brokertest.Env(t, "SWITCHYARD_PULSAR_ADMIN_URL"), "tg/flow")
		cfg := backend.Config{Name: backend.Pulsar}
		cfg.Pulsar.URL = url
		return []string{"--pubsub-backend", "pulsar", "--pulsar-host", url}, cfg
	}},
	{"mosquitto", func(t *testing.T) ([]string, backend.Config) {
		return mqttKillBackend(t, brokertest.Env(t, "SWITCHYARD_MQTT_ADDR"))
	}},
	{"embedded", func(t *testing.T) ([]string, backend.Config) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		// The broker keeps its data under the user's cache directory (it
		// has no flag for it): give it one of its own, so that no other
		// broker holds its lock and nothing is left behind.
		t.Setenv("XDG_CACHE_HOME", t.TempDir())
		broker := start(t, nil, "switchyard", "broker", "--listen", addr)
		waitListening(t, addr, broker)
		t.Cleanup(broker.stop)
		return mqttKillBackend(t, addr)
	}},
	{"rabbitmq", func(t *testing.T) ([]string, backend.Config) {
		host := brokertest.Env(t, "SWITCHYARD_RABBITMQ_HOST")
		port := brokertest.Env(t, "SWITCHYARD_RABBITMQ_PORT")
		user := brokertest.Env(t, "SWITCHYARD_RABBITMQ_USER")
		password := brokertest.Env(t, "SWITCHYARD_RABBITMQ_PASSWORD")
		p, err := strconv.Atoi(port)
		if err != nil {
			t.Fatalf("SWITCHYARD_RABBITMQ_PORT %q: %v", port, err)
		}
		cfg := backend.Config{Name: backend.RabbitMQ}
		cfg.RabbitMQ.Host, cfg.RabbitMQ.Port = host, p
		cfg.RabbitMQ.Username, cfg.RabbitMQ.Password = user, password
		return []string{"--pubsub-backend", "rabbitmq", "--rabbitmq-host", host, "--rabbitmq-port", port,
			"--rabbitmq-username", user, "--rabbitmq-password", password}, cfg
	}},
	{"kafka", func(t *testing.T) ([]string, backend.Config) {
		servers := brokertest.Env(t, "SWITCHYARD_KAFKA_BOOTSTRAP")
		cfg := backend.Config{Name: backend.Kafka}
		cfg.Kafka.BootstrapServers = servers
		return []string{"--pubsub-backend", "kafka", "--kafka-bootstrap-servers", servers}, cfg
	}},
}

func mqttKillBackend(t *testing.T, addr string) ([]string, backend.Config) {
	host, port := hostPort(t, addr)
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("MQTT port %q: %v", port, err)
	}
	cfg := backend.Config{Name: backend.MQTT}
	cfg.MQTT.Host, cfg.MQTT.Port = host, p
	return []string{"--pubsub-backend", "mqtt", "--mqtt-host", host, "--mqtt-port", port}, cfg
}

// Settings of the kill test.
const (
	killRequests    = 10000
	killConcurrency = 1
	killReaders     = 4
	// killStall is how long the responses may stop coming before the
	// requests still unanswered are counted as lost; killDeadline bounds
	// the whole exchange, from the first publish to the last response, kill
	// and restart included. On a quiet machine every backend answers all
	// requests in well under a minute; the bounds leave room for a loaded one.
	killStall    = 30 * time.Second
	killDeadline = 3 * time.Minute
)

// TestKillProcessorMidStream kills echo-llm with SIGKILL while it works
// through 10,000 requests on a persistent (flow) queue, at the default
// concurrency of 1 and pipelined (outputs sent without waiting, inputs
// acked on their confirmation: up to 256 inputs unacked, 1000 on Pulsar),
// starts a fresh one with the same id, and checks that every request is
// answered: nothing the killed process held unacked may be lost. Responses may come twice (a
// request handled but not yet acked when the process died): at-least-once.
// The duplicates are logged per backend.
func TestKillProcessorMidStream(t *testing.T) {
	for _, b := range killBackends {
		t.Run(b.name, func(t *testing.T) {
			flags, cfg := b.setup(t)
			killMidStream(t, flags, cfg)
		})
	}
}

// killResult is what one kill run observed.
type killResult struct {
	answered   int // distinct ids answered
	duplicates int // responses to an id answered before
	atKill     int // distinct ids answered when the processor was killed
}

func killMidStream(t *testing.T, flags []string, cfg backend.Config) {
	u := strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	inQ := "flow:tg:kill-" + u + "-request"
	outQ := "q1/tg/flow/kill-" + u + "-response"
	id := "kill-" + u

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The client is a process of its own to the broker: a name and (for
	// MQTT) a session id that no processor and no other test uses.
	cfg.ClientName = "kill-client-" + u
	cfg.MQTT.ClientID = "kill-client-" + u
	client, err := backend.New(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("connecting the client: %v", err)
	}
	defer client.Close()

	// The reader's durable shared subscription exists before the first
	// request goes out, so that no response can pass unseen.
	sub, err := client.NewSubscriber(router.SubscribeOptions{Subscription: "reader", InitialPosition: router.PositionEarliest})
	if err != nil {
		t.Fatalf("creating the response reader: %v", err)
	}
	defer sub.Close()
	// Subscribe may return before the broker has the subscription (a
	// RabbitMQ queue and its binding are declared in the background).
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(outQ); err != nil {
			t.Fatalf("creating the subscription on %s: %v", outQ, err)
		}
	}
	responses := make(chan *message.Message)
	var readers sync.WaitGroup
	for i := 0; i < killReaders; i++ {
		ch, err := sub.Subscribe(ctx, outQ)
		if err != nil {
			t.Fatalf("subscribing to %s: %v", outQ, err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			for msg := range ch {
				select {
				case responses <- msg:
				case <-ctx.Done():
					msg.Nack()
					return
				}
			}
		}()
	}
	defer readers.Wait()
	defer cancel()

	procFlags := append([]string{"--input", inQ, "--output", outQ, "--id", id,
		"--concurrency", strconv.Itoa(killConcurrency), "--metrics-addr", "127.0.0.1:0"}, flags...)
	first := start(t, nil, "echo-llm", procFlags...)
	first.waitFor("msg=ready", 60*time.Second)
	// The processor runs pipelined (the default): killed, it holds inputs
	// whose outputs were sent but not yet confirmed. Its default window is
	// 256, and the receiver queue (1000) on Pulsar.
	window := router.DefaultMaxInFlight
	if cfg.Name == backend.Pulsar {
		window = pulsarpubsub.DefaultReceiverQueueSize
	}
	if want := fmt.Sprintf("pipelined, %d in flight", window); !strings.Contains(first.log(), want) {
		t.Fatalf("echo-llm does not run pipelined (no %q in its log):\n%s", want, first.log())
	}

	prompts := make(map[string]string, killRequests)
	ids := make([]string, killRequests)
	for i := range ids {
		ids[i] = uuid.NewString()
		prompts[ids[i]] = fmt.Sprintf("request %d of the kill test: ünïcode ✓", i)
	}

	started := time.Now()
	published := make(chan error, 1)
	go func() { published <- publishRequests(client.Publisher(), inQ, ids, prompts) }()

	res := killResult{}
	seen := make(map[string]bool, killRequests)
	deadline := time.NewTimer(killDeadline)
	defer deadline.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	lastProgress := time.Now()
	var second *proc
	for res.answered < killRequests {
		select {
		case err := <-published:
			if err != nil {
				t.Fatalf("publishing the requests: %v", err)
			}
			t.Logf("%d requests published in %s", killRequests, time.Since(started).Round(time.Millisecond))
			published = nil
		case msg := <-responses:
			rid := msg.Metadata.Get(schema.IDProperty)
			want, ok := prompts[rid]
			if !ok {
				msg.Ack()
				t.Fatalf("response with an unknown id %q: %s", rid, msg.Payload)
			}
			var resp schema.TextCompletionResponse
			if err := schema.Unmarshal(msg.Payload, &resp); err != nil {
				t.Fatalf("response to %s does not decode: %v: %s", rid, err, msg.Payload)
			}
			if resp.Response != want || resp.Error != nil || !resp.EndOfStream {
				t.Fatalf("response to %s is %s, want the prompt %q back", rid, msg.Payload, want)
			}
			msg.Ack()
			if seen[rid] {
				res.duplicates++
				continue
			}
			seen[rid] = true
			res.answered++
			lastProgress = time.Now()
			if second == nil && res.answered >= killRequests/3 {
				res.atKill = res.answered
				if err := first.cmd.Process.Kill(); err != nil {
					t.Fatalf("killing echo-llm: %v", err)
				}
				<-first.done
				t.Logf("echo-llm killed with %d of %d answered, %s after the first request", res.atKill, killRequests, time.Since(started).Round(time.Millisecond))
				second = start(t, nil, "echo-llm", procFlags...)
				second.waitFor("msg=ready", 60*time.Second)
				lastProgress = time.Now()
			}
		case now := <-check.C:
			if now.Sub(lastProgress) < killStall {
				continue
			}
			t.Fatalf("no new response for %s: %s", killStall, killFailure(res, ids, seen, first, second))
		case <-deadline.C:
			t.Fatalf("not every request answered after %s: %s", killDeadline, killFailure(res, ids, seen, first, second))
		}
	}
	if published != nil {
		if err := <-published; err != nil {
			t.Fatalf("publishing the requests: %v", err)
		}
	}
	if second == nil {
		t.Fatal("every request was answered before the processor was killed")
	}
	elapsed := time.Since(started)
	// Responses to requests that were handled twice may still be on their
	// way: take what arrives within a short quiet period, so the count of
	// duplicates is complete.
	quiet := time.NewTimer(2 * time.Second)
	defer quiet.Stop()
drain:
	for {
		select {
		case msg := <-responses:
			rid := msg.Metadata.Get(schema.IDProperty)
			msg.Ack()
			if _, ok := prompts[rid]; !ok {
				t.Fatalf("response with an unknown id %q: %s", rid, msg.Payload)
			}
			res.duplicates++
			quiet.Reset(2 * time.Second)
		case <-quiet.C:
			break drain
		}
	}
	second.stop()
	t.Logf("%s: %d requests, %d answered, 0 lost, %d duplicates (%.2f%%); killed at %d answered; all answered in %s",
		cfg.Name, killRequests, res.answered, res.duplicates, 100*float64(res.duplicates)/killRequests, res.atKill, elapsed.Round(time.Millisecond))
}

// publishRequests publishes a TextCompletionRequest per id to topic, in
// batches, each with its id property.
func publishRequests(pub message.Publisher, topic string, ids []string, prompts map[string]string) error {
	const batch = 200
	for i := 0; i < len(ids); i += batch {
		var msgs []*message.Message
		for _, rid := range ids[i:min(i+batch, len(ids))] {
			payload, err := schema.Marshal(&schema.TextCompletionRequest{Operation: schema.OperationCompletion, Prompt: prompts[rid]})
			if err != nil {
				return err
			}
			msg := message.NewMessage(uuid.NewString(), payload)
			msg.Metadata.Set(schema.IDProperty, rid)
			msgs = append(msgs, msg)
		}
		if err := pub.Publish(topic, msgs...); err != nil {
			return fmt.Errorf("publishing requests %d to %d: %w", i, i+len(msgs)-1, err)
		}
	}
	return nil
}

// killFailure describes the requests still unanswered and what the
// processors logged.
func killFailure(res killResult, ids []string, seen map[string]bool, first, second *proc) string {
	var some []string
	for i, rid := range ids {
		if !seen[rid] && len(some) < 5 {
			some = append(some, fmt.Sprintf("#%d %s", i, rid))
		}
	}
	msg := fmt.Sprintf("%d of %d requests unanswered (%d answered when the processor was killed, %d duplicates), e.g. %s",
		len(ids)-res.answered, len(ids), res.atKill, res.duplicates, strings.Join(some, ", "))
	for _, p := range []*proc{first, second} {
		if p != nil {
			msg += fmt.Sprintf("\n%s logged:\n%s", p.name, p.log())
		}
	}
	return msg
}
