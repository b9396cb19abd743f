package router_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

type ask struct {
	Q string `json:"q"`
}

type answer struct {
	A string `json:"a"`
}

var (
	inQ  = schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: "test", Queue: "in"}
	outQ = schema.Topic{QoS: schema.QoS1, Tenant: "tg", Namespace: "test", Queue: "out"}
)

// harness runs a Router on a memory backend and reads its outputs.
type harness struct {
	t       *testing.T
	backend router.Backend
	router  *router.Router
	cancel  context.CancelFunc
	runErr  chan error
}

func newHarness(t *testing.T, cfg router.Config) *harness {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "test"
	}
	b := backend.NewMemory(nil)
	r, err := router.New(cfg, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, backend: b, router: r, runErr: make(chan error, 1)}
	t.Cleanup(func() {
		h.stop()
		_ = b.Close()
	})
	return h
}

func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- h.router.Run(ctx) }()
	select {
	case <-h.router.Running():
	case err := <-h.runErr:
		h.t.Fatalf("router did not start: %v", err)
	case <-time.After(10 * time.Second):
		h.t.Fatal("router did not start within 10s")
	}
}

// stop cancels the router and returns Run's error.
func (h *harness) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.runErr:
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("router did not stop within 30s")
		return nil
	}
}

func (h *harness) subscribe(topic schema.Topic) <-chan *message.Message {
	h.t.Helper()
	sub, err := h.backend.NewSubscriber(router.SubscribeOptions{Subscription: "reader-" + topic.Queue})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	ch, err := sub.Subscribe(ctx, topic.String())
	if err != nil {
		h.t.Fatal(err)
	}
	return ch
}

func (h *harness) send(topic schema.Topic, payload, id string) {
	h.t.Helper()
	m := message.NewMessage(watermill.NewUUID(), []byte(payload))
	if id != "" {
		m.Metadata.Set(middleware.IDProperty, id)
	}
	if err := h.backend.Publisher().Publish(topic.String(), m); err != nil {
		h.t.Fatal(err)
	}
}

// waitStats returns the counters of handler name once done says they are
// complete, or after 10 s. A handler publishes its output before its input
// is counted, so a test that received the output may be a moment early.
func (h *harness) waitStats(name string, done func(middleware.Snapshot) bool) middleware.Snapshot {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := h.router.Stats()[name]
		if done(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		m.Ack()
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

func expectNothing(t *testing.T, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %s: %s", m.UUID, m.Payload)
	case <-time.After(d):
	}
}

func TestRouterHandlesAndCopiesID(t *testing.T) {
	h := newHarness(t, router.Config{})
	if err := router.Handle(h.router, "upper", inQ, outQ, func(_ context.Context, a *ask) (*answer, error) {
		return &answer{A: strings.ToUpper(a.Q)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	out := h.subscribe(outQ)
	h.start()
	h.send(inQ, `{"q":"hi"}`, "id-7")
	m := receive(t, out)
	if string(m.Payload) != `{"a":"HI"}` || m.Metadata.Get("id") != "id-7" {
		t.Fatalf("got %s %v", m.Payload, m.Metadata)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if s := h.waitStats("upper", func(s middleware.Snapshot) bool { return s.OK == 1 }); s.OK != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRouterPoisonsMalformedInputOnce(t *testing.T) {
	h := newHarness(t, router.Config{})
	var calls atomic.Int32
	if err := router.Handle(h.router, "upper", inQ, outQ, func(_ context.Context, a *ask) (*answer, error) {
		calls.Add(1)
		return &answer{A: a.Q}, nil
	}); err != nil {
		t.Fatal(err)
	}
	poison := h.subscribe(router.PoisonTopic(inQ))
	out := h.subscribe(outQ)
	h.start()
	h.send(inQ, `{"q": 12}`, "bad")
	h.send(inQ, `{"q":"ok"}`, "good")
	p := receive(t, poison)
	if !strings.Contains(p.Metadata.Get(middleware.PoisonReasonKey), "q") || p.Metadata.Get(middleware.PoisonSourceKey) != inQ.String() {
		t.Fatalf("poison metadata %v", p.Metadata)
	}
	if m := receive(t, out); m.Metadata.Get("id") != "good" {
		t.Fatalf("wrong output %v", m.Metadata)
	}
	expectNothing(t, poison, 300*time.Millisecond)
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times; the malformed input must never reach it", calls.Load())
	}
}

func TestRouterNacksTransientErrorsAndRedelivers(t *testing.T) {
	h := newHarness(t, router.Config{})
	var calls atomic.Int32
	if err := router.Handle(h.router, "flaky", inQ, outQ, func(_ context.Context, a *ask) (*answer, error) {
		if calls.Add(1) <= 2 {
			return nil, errors.New("downstream unavailable")
		}
		return &answer{A: a.Q}, nil
	}, router.WithRetry(middleware.RetryConfig{MaxRetries: 0})); err != nil {
		t.Fatal(err)
	}
	out := h.subscribe(outQ)
	h.start()
	h.send(inQ, `{"q":"x"}`, "r")
	receive(t, out)
	if calls.Load() != 3 {
		t.Fatalf("handler called %d times, want 2 failures then success", calls.Load())
	}
	if s := h.waitStats("flaky", func(s middleware.Snapshot) bool { return s.OK == 1 }); s.Errors != 2 || s.OK != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRouterSurvivesPanicAndRedelivers(t *testing.T) {
	h := newHarness(t, router.Config{})
	var calls atomic.Int32
	if err := router.Handle(h.router, "panicky", inQ, outQ, func(_ context.Context, a *ask) (*answer, error) {
		if calls.Add(1) == 1 {
			panic("nil map")
		}
		return &answer{A: a.Q}, nil
	}); err != nil {
		t.Fatal(err)
	}
	out := h.subscribe(outQ)
	h.start()
	h.send(inQ, `{"q":"x"}`, "p")
	if m := receive(t, out); m.Metadata.Get("id") != "p" {
		t.Fatal("wrong output")
	}
	if s := h.waitStats("panicky", func(s middleware.Snapshot) bool { return s.OK == 1 }); s.Panics != 1 || s.OK != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// flakyPublisher fails the first n publishes to one topic.
type flakyPublisher struct {
	message.Publisher
	topic string
	fails atomic.Int32
}

func (p *flakyPublisher) Publish(topic string, msgs ...*message.Message) error {
	if topic == p.topic && p.fails.Add(-1) >= 0 {
		return errors.New("publish failed")
	}
	return p.Publisher.Publish(topic, msgs...)
}

type backendWithPublisher struct {
	router.Backend
	pub message.Publisher
}

func (b backendWithPublisher) Publisher() message.Publisher { return b.pub }

func TestRouterAcksOnlyAfterOutputIsPublished(t *testing.T) {
	cfg := router.Config{ID: "ackorder"}
	mem := backend.NewMemory(nil)
	defer mem.Close()
	fp := &flakyPublisher{Publisher: mem.Publisher(), topic: outQ.String()}
	fp.fails.Store(1)
	r, err := router.New(cfg, backendWithPublisher{mem, fp}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	if err := router.Handle(r, "h", inQ, outQ, func(_ context.Context, a *ask) (*answer, error) {
		calls.Add(1)
		return &answer{A: a.Q}, nil
	}); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, backend: mem, router: r, runErr: make(chan error, 1)}
	out := h.subscribe(outQ)
	h.start()
	defer h.stop()
	h.send(inQ, `{"q":"x"}`, "a")
	receive(t, out)
	if calls.Load() != 2 {
		t.Fatalf("handler called %d times; a failed publish must nack the input so it is handled again", calls.Load())
	}
}

func TestRouterDrainsInFlightMessageOnStop(t *testing.T) {
	h := newHarness(t, router.Config{DrainTimeout: 10 * time.Second})
	started := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	if err := router.Handle(h.router, "slow", inQ, outQ, func(ctx context.Context, a *ask) (*answer, error) {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return &answer{A: a.Q}, nil
	}); err != nil {
		t.Fatal(err)
	}
	out := h.subscribe(outQ)
	h.start()
	h.send(inQ, `{"q":"in-flight"}`, "d")
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("router stopped (%v) while a message was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("drain: %v", err)
	}
	m := receive(t, out)
	if string(m.Payload) != `{"a":"in-flight"}` {
		t.Fatalf("output %s", m.Payload)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times; the in-flight message must finish once", calls.Load())
	}
	if s := h.router.Stats()["slow"]; s.OK != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRouterDrainTimeoutIsBounded(t *testing.T) {
	h := newHarness(t, router.Config{DrainTimeout: 100 * time.Millisecond})
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	if err := router.Handle(h.router, "stuck", inQ, outQ, func(context.Context, *ask) (*answer, error) {
		close(started)
		<-release
		return nil, nil
	}, router.WithConcurrency(1)); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.send(inQ, `{}`, "")
	<-started
	err := h.stop()
	if err == nil || !strings.Contains(err.Error(), "drain timeout") {
		t.Fatalf("got %v, want a drain timeout error", err)
	}
}

func TestConcurrencyBoundsMessagesInFlight(t *testing.T) {
	h := newHarness(t, router.Config{Concurrency: 3})
	var active, peak atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	reached := make(chan struct{})
	if err := router.Handle(h.router, "wide", inQ, outQ, func(_ context.Context, a *ask) (*answer, error) {
		n := active.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == 3 {
			once.Do(func() { close(reached) })
		}
		<-release
		active.Add(-1)
		return &answer{A: a.Q}, nil
	}); err != nil {
		t.Fatal(err)
	}
	out := h.subscribe(outQ)
	h.start()
	for i := 0; i < 10; i++ {
		h.send(inQ, `{"q":"x"}`, "")
	}
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d messages in flight with --concurrency 3", active.Load())
	}
	time.Sleep(200 * time.Millisecond)
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak in flight %d, want exactly 3", p)
	}
	close(release)
	for i := 0; i < 10; i++ {
		receive(t, out)
	}
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak in flight %d, want 3", p)
	}
}

func TestAddHandlerRejectsMistakes(t *testing.T) {
	h := newHarness(t, router.Config{})
	fn := func(context.Context, *ask) (*answer, error) { return nil, nil }
	if err := router.Handle(h.router, "a", schema.Topic{}, outQ, fn); err == nil {
		t.Fatal("accepted an invalid input topic")
	}
	if err := router.Handle(h.router, "a", inQ, outQ, fn); err != nil {
		t.Fatal(err)
	}
	if err := router.Handle(h.router, "a", inQ, outQ, fn); err == nil {
		t.Fatal("accepted a duplicate handler name")
	}
	if err := router.Handle(h.router, "b", inQ, outQ, fn, router.WithConcurrency(0)); err == nil {
		t.Fatal("accepted concurrency 0")
	}
}
