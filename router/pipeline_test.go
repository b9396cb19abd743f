package router_test

import (
	"context"
	"errors"
	"fmt"
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

// heldBackend is the memory backend with a publisher that confirms
// asynchronous publishes only when the test says so, like a broker whose
// receipts are slow.
type heldBackend struct {
	router.Backend
	pub *heldPublisher
}

func newHeldBackend() *heldBackend {
	b := backend.NewMemory(nil)
	return &heldBackend{Backend: b, pub: &heldPublisher{Publisher: b.Publisher(), changed: make(chan struct{}, 1)}}
}

func (b *heldBackend) Publisher() message.Publisher { return b.pub }

type heldSend struct {
	topic string
	msg   *message.Message
	done  func(error)
}

type heldPublisher struct {
	message.Publisher
	mu      sync.Mutex
	held    []heldSend
	fail    func(*message.Message) error // decides a released send; nil: all succeed
	changed chan struct{}
}

func (p *heldPublisher) PublishAsync(topic string, msg *message.Message, done func(error)) {
	p.mu.Lock()
	p.held = append(p.held, heldSend{topic, msg, done})
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *heldPublisher) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}

// release confirms the oldest n held sends (all when n < 0), in order: each
// is published to the memory backend unless fail says otherwise.
func (p *heldPublisher) release(n int) {
	p.mu.Lock()
	if n < 0 || n > len(p.held) {
		n = len(p.held)
	}
	sends := append([]heldSend(nil), p.held[:n]...)
	p.held = p.held[n:]
	fail := p.fail
	p.mu.Unlock()
	for _, s := range sends {
		var err error
		if fail != nil {
			err = fail(s.msg)
		}
		if err == nil {
			err = p.Publisher.Publish(s.topic, s.msg)
		}
		s.done(err)
	}
}

// pipelineHarness runs a router with a held publisher.
type pipelineHarness struct {
	*harness
	hb   *heldBackend
	held *heldPublisher
}

func newPipelineHarness(t *testing.T, cfg router.Config) *pipelineHarness {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "test"
	}
	b := newHeldBackend()
	r, err := router.New(cfg, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, backend: b, router: r, runErr: make(chan error, 1)}
	t.Cleanup(func() {
		h.stop()
		_ = b.Close()
	})
	return &pipelineHarness{harness: h, hb: b, held: b.pub}
}

// outputs subscribes to outQ before anything is published and returns the
// channel of the `q` of each answer, acking them.
func (h *pipelineHarness) outputs(ctx context.Context) <-chan string {
	h.t.Helper()
	sub, err := h.backend.NewSubscriber(router.SubscribeOptions{Subscription: "reader"})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(ctx, outQ.String())
	if err != nil {
		h.t.Fatal(err)
	}
	out := make(chan string, 1000)
	go func() {
		for msg := range ch {
			var a answer
			if err := schema.Unmarshal(msg.Payload, &a); err != nil {
				out <- "undecodable: " + err.Error()
			} else {
				out <- a.A
			}
			msg.Ack()
		}
	}()
	return out
}

func (h *pipelineHarness) publishInputs(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"q":"m%d"}`, i)))
		msg.Metadata.Set(schema.IDProperty, fmt.Sprintf("id-%d", i))
		if err := h.backend.Publisher().Publish(inQ.String(), msg); err != nil {
			h.t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds or 10 s passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A pipelined handler at concurrency 1 takes the next input while the
// previous outputs wait for their receipts, up to the in-flight window; the
// inputs are counted ok and acked only once their outputs are confirmed,
// and the handler sees the inputs in order.
func TestPipelinedHandlerRunsAheadOfReceiptsUpToTheWindow(t *testing.T) {
	const window, total = 4, 12
	h := newPipelineHarness(t, router.Config{Concurrency: 1, MaxInFlight: window})
	var mu sync.Mutex
	var calls []string
	err := router.Handle(h.router, "echo", inQ, outQ, func(_ context.Context, a *ask) (*answer, error) {
		mu.Lock()
		calls = append(calls, a.Q)
		mu.Unlock()
		return &answer{A: a.Q}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	info := h.router.Handlers()[0]
	if !info.Pipelined || info.MaxInFlight != window {
		t.Fatalf("handler info %+v, want pipelined with %d in flight", info, window)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := h.outputs(ctx)
	h.start()
	h.publishInputs(total)

	// No receipt comes: the handler runs ahead by exactly the window.
	waitFor(t, "the window to fill", func() bool { return h.held.pending() == window })
	time.Sleep(100 * time.Millisecond)
	if n := h.held.pending(); n != window {
		t.Fatalf("%d outputs waiting for receipts, want the window of %d", n, window)
	}
	st := h.router.Stats()["echo"]
	if st.OK != 0 || st.InFlight != window || st.Received != window {
		t.Fatalf("before any receipt: stats %+v, want 0 ok and %d received and in flight", st, window)
	}

	// Receipts one at a time: each frees one place in the window.
	h.held.release(1)
	waitFor(t, "one input settled and the next taken", func() bool {
		s := h.router.Stats()["echo"]
		return s.OK == 1 && h.held.pending() == window
	})
	for h.router.Stats()["echo"].OK < total {
		h.held.release(-1)
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < total; i++ {
		select {
		case got := <-out:
			if want := fmt.Sprintf("m%d", i); got != want {
				t.Fatalf("output %d is %q, want %q", i, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("output %d missing", i)
		}
	}
	mu.Lock()
	for i, q := range calls {
		if want := fmt.Sprintf("m%d", i); q != want {
			t.Fatalf("call %d handled %q, want %q: handler calls out of order: %v", i, q, want, calls)
		}
	}
	mu.Unlock()
	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st = h.router.Stats()["echo"]
	if st.OK != total || st.Received != total || st.Published != total || st.InFlight != 0 || st.Errors != 0 {
		t.Fatalf("stats %+v, want %d received, ok and published, nothing in flight", st, total)
	}
}

// An output the broker refuses fails its input's delivery: it is
// redelivered and, on its last delivery, answered and poisoned.
func TestPipelinedOutputFailureRedeliversThenGivesUp(t *testing.T) {
	h := newPipelineHarness(t, router.Config{Concurrency: 1})
	errBroker := errors.New("broker refused the output")
	h.held.fail = func(m *message.Message) error {
		if strings.Contains(string(m.Payload), `"m0"`) {
			return errBroker
		}
		return nil
	}
	if err := router.Handle(h.router, "echo", inQ, outQ, func(_ context.Context, a *ask) (*answer, error) {
		return &answer{A: a.Q}, nil
	}, router.WithMaxDeliveries(2)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := h.outputs(ctx)
	poison := h.subscribe(router.PoisonTopic(inQ))
	h.start()
	h.publishInputs(2)

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-h.held.changed:
				h.held.release(-1)
			case <-time.After(5 * time.Millisecond):
				h.held.release(-1)
			case <-stop:
				return
			}
		}
	}()
	select {
	case got := <-out:
		if got != "m1" {
			t.Fatalf("first output %q, want m1 (m0's output is refused)", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("m1 not answered")
	}
	select {
	case msg := <-poison:
		if got := msg.Metadata.Get(middleware.PoisonAttemptsKey); got != "2" {
			t.Fatalf("poisoned after %s deliveries, want 2", got)
		}
		if reason := msg.Metadata.Get(middleware.PoisonReasonKey); !strings.Contains(reason, errBroker.Error()) {
			t.Fatalf("poison reason %q does not say why", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("m0 not poisoned")
	}
	waitFor(t, "counters", func() bool {
		s := h.router.Stats()["echo"]
		return s.OK == 1 && s.Errors == 2 && s.Poisoned == 1 && s.Redelivered == 1 && s.InFlight == 0
	})
}

// Stopping waits for the receipts of outputs in flight; when they do not
// come within the drain timeout their inputs are nacked, so the next
// processor handles them again, and Run returns.
func TestPipelinedDrainWaitsForReceiptsThenNacks(t *testing.T) {
	t.Run("receipts within the drain timeout", func(t *testing.T) {
		h := newPipelineHarness(t, router.Config{Concurrency: 1, DrainTimeout: 5 * time.Second})
		if err := router.Handle(h.router, "echo", inQ, outQ, echoAsk); err != nil {
			t.Fatal(err)
		}
		h.start()
		h.publishInputs(3)
		waitFor(t, "three outputs held", func() bool { return h.held.pending() == 3 })
		stopped := make(chan error, 1)
		go func() { stopped <- h.stop() }()
		time.Sleep(100 * time.Millisecond)
		select {
		case err := <-stopped:
			t.Fatalf("Run returned (%v) while outputs waited for receipts", err)
		default:
		}
		h.held.release(-1)
		if err := <-stopped; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if st := h.router.Stats()["echo"]; st.OK != 3 || st.Errors != 0 {
			t.Fatalf("stats %+v, want 3 ok", st)
		}
	})
	t.Run("no receipts", func(t *testing.T) {
		h := newPipelineHarness(t, router.Config{ID: "drain", Concurrency: 1, DrainTimeout: 200 * time.Millisecond})
		if err := router.Handle(h.router, "echo", inQ, outQ, echoAsk); err != nil {
			t.Fatal(err)
		}
		h.start()
		h.publishInputs(3)
		waitFor(t, "three outputs held", func() bool { return h.held.pending() == 3 })
		start := time.Now()
		if err := h.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("Run took %s to return after a 200ms drain timeout", took)
		}
		if st := h.router.Stats()["echo"]; st.OK != 0 || st.Errors != 3 || st.InFlight != 0 {
			t.Fatalf("stats %+v, want 3 failed and nothing in flight", st)
		}
		// The next router on the same subscription gets the three again.
		next, err := router.New(router.Config{ID: "drain", Concurrency: 1}, h.hb, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.held.mu.Lock()
		h.held.held = nil
		h.held.mu.Unlock()
		if err := router.Handle(next, "echo", inQ, outQ, echoAsk); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		runErr := make(chan error, 1)
		go func() { runErr <- next.Run(ctx) }()
		waitFor(t, "the three inputs handled again", func() bool { return h.held.pending() == 3 })
		h.held.release(-1)
		waitFor(t, "settled", func() bool { return next.Stats()["echo"].OK == 3 })
		cancel()
		if err := <-runErr; err != nil {
			t.Fatalf("second Run: %v", err)
		}
	})
}

func echoAsk(_ context.Context, a *ask) (*answer, error) { return &answer{A: a.Q}, nil }

// With the window at the concurrency, outputs are confirmed before the
// next input is taken, as without pipelining.
func TestMaxInFlightAtConcurrencyPublishesSynchronously(t *testing.T) {
	h := newPipelineHarness(t, router.Config{Concurrency: 2, MaxInFlight: 2})
	if err := router.Handle(h.router, "echo", inQ, outQ, echoAsk); err != nil {
		t.Fatal(err)
	}
	if info := h.router.Handlers()[0]; info.Pipelined {
		t.Fatalf("handler info %+v: pipelined with the window at the concurrency", info)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := h.outputs(ctx)
	h.start()
	h.publishInputs(5)
	for i := 0; i < 5; i++ {
		select {
		case <-out:
		case <-time.After(10 * time.Second):
			t.Fatalf("output %d missing", i)
		}
	}
	if n := h.held.pending(); n != 0 {
		t.Fatalf("%d outputs were sent asynchronously", n)
	}
}

func TestMaxInFlightBelowConcurrencyIsRefused(t *testing.T) {
	_, err := router.New(router.Config{ID: "x", Concurrency: 8, MaxInFlight: 4}, backend.NewMemory(nil), nil)
	if err == nil || !strings.Contains(err.Error(), "--max-in-flight (4) must be at least --concurrency (8)") {
		t.Fatalf("err = %v", err)
	}
}

// prefetchingBackend is a memory backend whose consumers, like Pulsar's,
// fetch messages ahead by themselves.
type prefetchingBackend struct{ router.Backend }

func (prefetchingBackend) DefaultMaxInFlight() int { return 1000 }

// A backend's suggested window is the default; a configured one, or a
// larger concurrency, wins over it.
func TestMaxInFlightDefaultsToTheBackendsSuggestion(t *testing.T) {
	for _, tc := range []struct {
		cfg  router.Config
		want int
	}{
		{router.Config{}, 1000},
		{router.Config{MaxInFlight: 300}, 300},
		{router.Config{Concurrency: 2000}, 2000},
	} {
		b := backend.NewMemory(nil)
		t.Cleanup(func() { _ = b.Close() })
		tc.cfg.ID = "x"
		r, err := router.New(tc.cfg, prefetchingBackend{b}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := router.Handle(r, "h", inQ, outQ, echoAsk); err != nil {
			t.Fatal(err)
		}
		if got := r.Handlers()[0].MaxInFlight; got != tc.want {
			t.Errorf("%+v: max in flight %d, want %d", tc.cfg, got, tc.want)
		}
	}
	// Without a suggestion the router's own default applies.
	r, err := router.New(router.Config{ID: "x"}, backend.NewMemory(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Handle(r, "h", inQ, outQ, echoAsk); err != nil {
		t.Fatal(err)
	}
	if got := r.Handlers()[0].MaxInFlight; got != router.DefaultMaxInFlight {
		t.Errorf("memory backend: max in flight %d, want %d", got, router.DefaultMaxInFlight)
	}
}

// A pipelined stream handler publishes its chunks one confirmed at a time
// and hands its final output over without waiting: it takes its next input
// while the broker confirms it, and the input is acked on that receipt.
func TestPipelinedStreamHandsOverItsFinalOutput(t *testing.T) {
	h := newPipelineHarness(t, router.Config{Concurrency: 1})
	err := router.HandleStream(h.router, "stream", inQ, outQ, func(_ context.Context, req *schema.TextCompletionRequest, emit func(*schema.TextCompletionResponse) error) error {
		for i := 0; i < 3; i++ {
			if err := emit(&schema.TextCompletionResponse{Response: fmt.Sprintf("%s-%d", req.Prompt, i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.start()
	h.send(inQ, `{"prompt":"a"}`, "ra")
	h.send(inQ, `{"prompt":"b"}`, "rb")
	// Both streams' terminators wait for their receipts: the second
	// stream ran while the first one's terminator was unconfirmed.
	waitFor(t, "both terminators handed over", func() bool { return h.held.pending() == 2 })
	if st := h.router.Stats()["stream"]; st.OK != 0 || st.InFlight != 2 || st.Published != 6 {
		t.Fatalf("stats %+v before receipts, want 6 chunks published, 2 in flight and none ok", st)
	}
	h.held.release(-1)
	st := h.waitStats("stream", func(s middleware.Snapshot) bool { return s.OK == 2 })
	if st.OK != 2 || st.Published != 8 || st.Errors != 0 || st.InFlight != 0 {
		t.Fatalf("stats %+v, want 2 ok and 8 published", st)
	}
}

// A final output refused by the broker after the stream handler returned
// ends the stream with one error response after its chunks, and the input
// is never handled again, since that would repeat the chunks.
func TestPipelinedStreamFinalOutputFailureAnswersWithAnError(t *testing.T) {
	h := newPipelineHarness(t, router.Config{Concurrency: 1})
	h.held.fail = func(m *message.Message) error {
		if strings.Contains(string(m.Payload), `"end_of_stream":true`) {
			return errors.New("final output refused")
		}
		return nil
	}
	var calls atomic.Int32
	err := router.HandleStream(h.router, "stream", inQ, outQ, func(_ context.Context, req *schema.TextCompletionRequest, emit func(*schema.TextCompletionResponse) error) error {
		calls.Add(1)
		for i := 0; i < 3; i++ {
			if err := emit(&schema.TextCompletionResponse{Response: fmt.Sprintf("%s-%d", req.Prompt, i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := h.subscribe(outQ)
	h.start()
	h.send(inQ, `{"prompt":"a"}`, "ra")
	waitFor(t, "the terminator handed over", func() bool { return h.held.pending() == 1 })
	h.held.release(-1)
	var got []string
	for len(got) < 4 {
		var m *message.Message
		select {
		case m = <-out:
		case <-time.After(5 * time.Second):
			t.Fatalf("client got %q only; stats %+v", got, h.router.Stats()["stream"])
		}
		m.Ack()
		var r schema.TextCompletionResponse
		if err := schema.Unmarshal(m.Payload, &r); err != nil {
			t.Fatal(err)
		}
		if r.Error != nil {
			got = append(got, fmt.Sprintf("error %s: %s (final %v)", r.Error.Type, r.Error.Message, r.EndOfStream))
		} else {
			got = append(got, r.Response)
		}
	}
	want := []string{"a-0", "a-1", "a-2", "error processing-error: publishing to " + outQ.String() + ": final output refused (final true)"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("client got %q, want %q", got, want)
	}
	st := h.waitStats("stream", func(s middleware.Snapshot) bool { return s.Errors == 1 && s.InFlight == 0 })
	if st.Errors != 1 || st.ErrorResponses != 1 || st.Redelivered != 0 || st.Poisoned != 0 || calls.Load() != 1 {
		t.Fatalf("stats %+v after %d calls, want one error answered, no redelivery", st, calls.Load())
	}
}

// When the backend subscription of a pipelined handler ends by itself (the
// backend closed underneath the router), Run stops with an error that
// names the handler instead of waiting for a stop that nothing will send.
func TestPipelinedSubscriptionEndingStopsRun(t *testing.T) {
	b := backend.NewMemory(nil)
	r, err := router.New(router.Config{ID: "test"}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Handle(r, "echo", inQ, outQ, echoAsk); err != nil {
		t.Fatal(err)
	}
	if !r.Handlers()[0].Pipelined {
		t.Fatal("the handler is not pipelined on the memory backend")
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-r.Running()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), `handler "echo"`) || !strings.Contains(err.Error(), "ended unexpectedly") {
			t.Fatalf("Run returned %v, want the end of handler \"echo\"'s subscription", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after its subscription ended")
	}
}
