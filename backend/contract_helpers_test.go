package backend

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/mqttpubsub/embedded"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// contractNackDelay is the redelivery delay the contract tests configure on
// the brokers that let it be configured.
const contractNackDelay = 200 * time.Millisecond

// contractWait bounds every wait for a message that must come.
const contractWait = 20 * time.Second

// contractTarget is one backend the delivery contract is checked on.
type contractTarget struct {
	name string
	// nackDelay is how long a nacked message waits before it comes again.
	nackDelay time.Duration
	// tenant is the tenant of every queue; on Pulsar it must exist.
	tenant string
	// open connects a fresh backend for one test, closed when it ends.
	open func(t *testing.T) router.Backend
	// flowNamespace returns the namespace of the flow queues of one test:
	// a unique one where namespaces cost nothing, an existing one on Pulsar.
	flowNamespace func() string
}

// contractTargets lists the backends in the order the subtests run: the
// in-process memory broker, the embedded MQTT broker, Mosquitto and Pulsar.
func contractTargets() []contractTarget {
	unique := func() string { return "ct-" + watermill.NewShortUUID() }
	return []contractTarget{
		{
			name: Memory, nackDelay: memoryRedeliveryDelay, tenant: "tg", flowNamespace: unique,
			open: func(t *testing.T) router.Backend {
				return contractOpen(t, Config{Name: Memory})
			},
		},
		{
			name: "embedded-mqtt", nackDelay: contractNackDelay, tenant: "tg", flowNamespace: unique,
			open: func(t *testing.T) router.Backend {
				b, err := embedded.Start(context.Background(), embedded.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
				if err != nil {
					t.Fatalf("starting the embedded MQTT broker: %v", err)
				}
				t.Cleanup(func() { _ = b.Close() })
				return contractOpen(t, contractMQTTConfig(t, b.Addr()))
			},
		},
		{
			name: "mosquitto", nackDelay: contractNackDelay, tenant: "tg", flowNamespace: unique,
			open: func(t *testing.T) router.Backend {
				return contractOpen(t, contractMQTTConfig(t, brokertest.Env(t, "SWITCHYARD_MQTT_ADDR")))
			},
		},
		{
			name: Pulsar, nackDelay: contractNackDelay, tenant: "public",
			flowNamespace: func() string { return "default" },
			open: func(t *testing.T) router.Backend {
				url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
				admin := brokertest.Env(t, "SWITCHYARD_PULSAR_ADMIN_URL")
				for _, ns := range []string{"public/default", "public/request", "public/response"} {
					brokertest.EnsurePulsarNamespace(t, admin, ns)
				}
				s := PulsarSettings{NackDelay: contractNackDelay}
				s.URL = url
				return contractOpen(t, Config{Name: Pulsar, Pulsar: s})
			},
		},
	}
}

// contractMQTTConfig is the configuration of an MQTT backend on the broker
// at addr (host:port).
func contractMQTTConfig(t *testing.T, addr string) Config {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("broker address %q: %v", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("broker address %q: %v", addr, err)
	}
	cfg := Config{Name: MQTT, MQTT: MQTTSettings{Host: host, Port: p, NackDelay: contractNackDelay}}
	cfg.MQTT.ConnectTimeout = 5 * time.Second
	return cfg
}

func contractOpen(t *testing.T, cfg Config) router.Backend {
	t.Helper()
	cfg.ClientName = "contract-" + watermill.NewShortUUID()
	b, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("connecting the %s backend: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing the %s backend: %v", cfg.Name, err)
		}
	})
	return b
}

// contractEnv is one test on one backend: its backend, its queue names and
// the helpers that drive routers and clients on it.
type contractEnv struct {
	t      *testing.T
	target contractTarget
	b      router.Backend
	// id is unique to the test; it ends every queue name and names the
	// routers' subscription.
	id string
	ns string
}

// forEachContractBackend runs fn as one subtest per backend.
func forEachContractBackend(t *testing.T, fn func(t *testing.T, e *contractEnv)) {
	for _, target := range contractTargets() {
		t.Run(target.name, func(t *testing.T) {
			fn(t, newContractEnv(t, target))
		})
	}
}

func newContractEnv(t *testing.T, target contractTarget) *contractEnv {
	return &contractEnv{t: t, target: target, b: target.open(t), id: watermill.NewShortUUID(), ns: target.flowNamespace()}
}

// flow returns a persistent (q1) queue of the test that is neither of the
// request nor the response class.
func (e *contractEnv) flow(name string) schema.Topic {
	return schema.Topic{QoS: schema.QoS1, Tenant: e.target.tenant, Namespace: e.ns, Queue: name + "-" + e.id}
}

// request returns a best-effort queue of the request class (shared).
func (e *contractEnv) request(name string) schema.Topic {
	return schema.Topic{QoS: schema.QoS0, Tenant: e.target.tenant, Namespace: string(schema.ClassRequest), Queue: name + "-" + e.id}
}

// response returns a best-effort queue of the response class (each client
// has a subscription of its own).
func (e *contractEnv) response(name string) schema.Topic {
	return schema.Topic{QoS: schema.QoS0, Tenant: e.target.tenant, Namespace: string(schema.ClassResponse), Queue: name + "-" + e.id}
}

// router returns a router of the test's processor id; routers made with the
// same drain timeout share their subscriptions.
func (e *contractEnv) router(drain time.Duration) *router.Router {
	e.t.Helper()
	r, err := router.New(router.Config{ID: "contract-" + e.id, Concurrency: 1, DrainTimeout: drain}, e.b, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// contractRun is a running router.
type contractRun struct {
	t      *testing.T
	r      *router.Router
	cancel context.CancelFunc
	done   chan error

	once   sync.Once
	err    error
	took   time.Duration
	waited bool
}

// run starts r and returns once it takes messages. The router is stopped
// when the test ends if the test did not stop it.
func (e *contractEnv) run(r *router.Router) *contractRun {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	run := &contractRun{t: e.t, r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-run.done:
		cancel()
		e.t.Fatalf("router did not start: %v", err)
	case <-time.After(contractWait):
		cancel()
		e.t.Fatalf("router not running after %s", contractWait)
	}
	e.t.Cleanup(func() {
		if _, err := run.stop(); err != nil {
			e.t.Errorf("router stopped with %v", err)
		}
	})
	return run
}

// stop cancels the router's context and returns what Run returned and how
// long it took to return.
func (c *contractRun) stop() (time.Duration, error) {
	c.once.Do(func() {
		start := time.Now()
		c.cancel()
		select {
		case c.err = <-c.done:
		case <-time.After(30 * time.Second):
			c.err = context.DeadlineExceeded
			c.t.Errorf("router did not stop within 30s")
		}
		c.took = time.Since(start)
	})
	return c.took, c.err
}

// stamped is a message and when the client received it.
type stamped struct {
	msg *message.Message
	at  time.Time
}

// listen subscribes a client of its own to topic, before anything is sent
// to it, and returns the messages it receives, acked and stamped with their
// arrival time.
func (e *contractEnv) listen(topic schema.Topic) <-chan stamped {
	e.t.Helper()
	sub, err := e.b.NewSubscriber(router.SubscribeOptions{Exclusive: true})
	if err != nil {
		e.t.Fatalf("client subscriber: %v", err)
	}
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(topic.String()); err != nil {
			e.t.Fatalf("client subscription to %s: %v", topic, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, topic.String())
	if err != nil {
		cancel()
		e.t.Fatalf("client subscribing to %s: %v", topic, err)
	}
	out := make(chan stamped, 10000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for m := range msgs {
			at := time.Now()
			m.Ack()
			select {
			case out <- stamped{msg: m, at: at}:
			default:
				e.t.Errorf("client of %s: buffer full, message %s dropped", topic, m.UUID)
			}
		}
	}()
	e.t.Cleanup(func() {
		cancel()
		_ = sub.Close()
		<-done
	})
	return out
}

// send publishes payload to topic with the `id` property (none if empty)
// and returns when it was sent.
func (e *contractEnv) send(topic schema.Topic, payload any, id string) time.Time {
	e.t.Helper()
	data, err := schema.Marshal(payload)
	if err != nil {
		e.t.Fatal(err)
	}
	m := message.NewMessage(watermill.NewUUID(), data)
	if id != "" {
		m.Metadata.Set(middleware.IDProperty, id)
	}
	at := time.Now()
	if err := e.b.Publisher().Publish(topic.String(), m); err != nil {
		e.t.Fatalf("publishing to %s: %v", topic, err)
	}
	return at
}

// receive returns the next message of ch, failing the test after within.
func receive(t *testing.T, ch <-chan stamped, what string, within time.Duration) stamped {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the client's subscription ended", what)
		}
		return s
	case <-timer.C:
		t.Fatalf("%s: nothing within %s", what, within)
		return stamped{}
	}
}

// expectNone waits d and marks the test failed for every message ch yields
// meanwhile.
func expectNone(t *testing.T, ch <-chan stamped, what string, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case s, ok := <-ch:
			if !ok {
				return
			}
			t.Errorf("%s: unexpected message %s %v: %.200s", what, s.msg.UUID, s.msg.Metadata, s.msg.Payload)
		case <-timer.C:
			// Whatever is there already.
			for {
				select {
				case s, ok := <-ch:
					if !ok {
						return
					}
					t.Errorf("%s: unexpected message %s %v: %.200s", what, s.msg.UUID, s.msg.Metadata, s.msg.Payload)
				default:
					return
				}
			}
		}
	}
}

// completion decodes a TextCompletionResponse and checks its `id`.
func completion(t *testing.T, s stamped, id string) *schema.TextCompletionResponse {
	t.Helper()
	resp := new(schema.TextCompletionResponse)
	if err := schema.Unmarshal(s.msg.Payload, resp); err != nil {
		t.Fatalf("response %.200s: %v", s.msg.Payload, err)
	}
	if got := s.msg.Metadata.Get(middleware.IDProperty); got != id {
		t.Fatalf("response %.200s has id %q, want %q", s.msg.Payload, got, id)
	}
	return resp
}

// quiet returns how long to wait to be sure a message does not come again:
// three redelivery delays, and at least a second.
func (e *contractEnv) quiet() time.Duration {
	return max(3*e.target.nackDelay, time.Second)
}
