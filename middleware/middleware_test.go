package middleware

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

type greeting struct {
	Name  string `json:"name"`
	Times int64  `json:"times" default:"1"`
}

type reply struct {
	Text string `json:"text"`
}

func newMsg(payload string, id string) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), []byte(payload))
	if id != "" {
		m.Metadata.Set(IDProperty, id)
	}
	return m
}

func greet(_ context.Context, g *greeting) (*reply, error) {
	return &reply{Text: strings.Repeat("hello "+g.Name+" ", int(g.Times))}, nil
}

func TestHandleDecodesCallsEncodesAndCopiesID(t *testing.T) {
	h := Handle(greet)
	out, err := h(newMsg(`{"name":"ada","unknown":[1,2]}`, "req-1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("got %d outputs, want 1", len(out))
	}
	if got := string(out[0].Payload); got != `{"text":"hello ada "}` {
		t.Fatalf("payload %s: the declared default times=1 was not applied or encoding is wrong", got)
	}
	if out[0].Metadata.Get(IDProperty) != "req-1" {
		t.Fatalf("id property not copied: %v", out[0].Metadata)
	}
	if out[0].UUID == "" {
		t.Fatal("output has no UUID")
	}
}

func TestHandleNilResponsePublishesNothing(t *testing.T) {
	h := Handle(func(context.Context, *greeting) (*reply, error) { return nil, nil })
	out, err := h(newMsg(`{}`, ""))
	if err != nil || len(out) != 0 {
		t.Fatalf("got %v, %v; want no output and no error", out, err)
	}
}

func TestHandleStreamEmitsInOrderWithID(t *testing.T) {
	h := HandleStream(func(_ context.Context, g *greeting, emit func(*reply) error) error {
		for i := int64(0); i < g.Times; i++ {
			if err := emit(&reply{Text: string(rune('a' + i))}); err != nil {
				return err
			}
		}
		return nil
	})
	out, err := h(newMsg(`{"times":3}`, "s-1"))
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range out {
		if m.Metadata.Get(IDProperty) != "s-1" {
			t.Fatalf("chunk without id: %v", m.Metadata)
		}
		texts = append(texts, string(m.Payload))
	}
	if strings.Join(texts, ",") != `{"text":"a"},{"text":"b"},{"text":"c"}` {
		t.Fatalf("chunks %v", texts)
	}
}

func TestUndecodableInputIsPermanentDecodeError(t *testing.T) {
	for _, payload := range []string{`{"name":`, `{"name": 5}`, `not json`, ``} {
		_, err := Handle(greet)(newMsg(payload, ""))
		var de *DecodeError
		if !errors.As(err, &de) || !IsPermanent(err) {
			t.Fatalf("payload %q: got %v, want a permanent *DecodeError", payload, err)
		}
		if !strings.Contains(err.Error(), "middleware.greeting") {
			t.Fatalf("error %q does not name the type", err)
		}
	}
	_, err := Handle(greet)(newMsg(`{"name": 5}`, ""))
	if !strings.Contains(err.Error(), "name") {
		t.Fatalf("error %q does not name the field", err)
	}
}

func TestConsumeCallsSink(t *testing.T) {
	var got string
	h := Consume(func(_ context.Context, g *greeting) error { got = g.Name; return nil })
	out, err := h(newMsg(`{"name":"bo"}`, ""))
	if err != nil || out != nil || got != "bo" {
		t.Fatalf("out=%v err=%v got=%q", out, err, got)
	}
}

// recordingPublisher records published messages and can be told to fail.
type recordingPublisher struct {
	mu   sync.Mutex
	fail error
	msgs map[string][]*message.Message
}

func (p *recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	if p.msgs == nil {
		p.msgs = map[string][]*message.Message{}
	}
	p.msgs[topic] = append(p.msgs[topic], msgs...)
	return nil
}

func (p *recordingPublisher) Close() error { return nil }

func (p *recordingPublisher) on(topic string) []*message.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.msgs[topic]
}

func chain(t *testing.T, h message.HandlerFunc, pub message.Publisher, retry *RetryConfig) (message.HandlerFunc, *Counters) {
	t.Helper()
	c := &Counters{}
	fn, err := Chain(h, Policy{
		Poison:   PoisonConfig{Publisher: pub, Topic: "q1/tg/flow/in-poison", Source: "q1/tg/flow/in", Handler: "h"},
		Retry:    retry,
		Backoff:  BackoffConfig{Default: time.Millisecond, Max: time.Millisecond},
		Counters: c,
	})
	if err != nil {
		t.Fatal(err)
	}
	return fn, c
}

func TestPoisonOnUndecodableInputWithReasonAndSource(t *testing.T) {
	pub := &recordingPublisher{}
	calls := 0
	fn, c := chain(t, Handle(func(ctx context.Context, g *greeting) (*reply, error) { calls++; return greet(ctx, g) }), pub, nil)
	in := newMsg(`{"name": [1]}`, "bad-1")
	out, err := fn(in)
	if err != nil || out != nil {
		t.Fatalf("poisoned message must be acked with no output; got %v, %v", out, err)
	}
	poisoned := pub.on("q1/tg/flow/in-poison")
	if len(poisoned) != 1 {
		t.Fatalf("poison queue has %d messages, want 1", len(poisoned))
	}
	p := poisoned[0]
	if string(p.Payload) != `{"name": [1]}` || p.Metadata.Get(IDProperty) != "bad-1" {
		t.Fatalf("poison message lost the original payload or id: %s %v", p.Payload, p.Metadata)
	}
	if !strings.Contains(p.Metadata.Get(PoisonReasonKey), "name") || p.Metadata.Get(PoisonSourceKey) != "q1/tg/flow/in" || p.Metadata.Get(PoisonHandlerKey) != "h" {
		t.Fatalf("poison metadata incomplete: %v", p.Metadata)
	}
	if calls != 0 {
		t.Fatalf("handler was called %d times for an undecodable input", calls)
	}
	if s := c.Snapshot(); s.Poisoned != 1 || s.OK != 0 || s.Errors != 0 {
		t.Fatalf("counters %+v", s)
	}
}

func TestPoisonOnPermanentHandlerErrorIsNotRetried(t *testing.T) {
	pub := &recordingPublisher{}
	calls := 0
	h := Handle(func(context.Context, *greeting) (*reply, error) {
		calls++
		return nil, Permanent(errors.New("template missing"))
	})
	fn, _ := chain(t, h, pub, &RetryConfig{MaxRetries: 5, InitialInterval: time.Microsecond, MaxInterval: time.Microsecond})
	if _, err := fn(newMsg(`{}`, "")); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("permanent error retried: %d calls", calls)
	}
	if got := pub.on("q1/tg/flow/in-poison"); len(got) != 1 || got[0].Metadata.Get(PoisonReasonKey) != "template missing" {
		t.Fatalf("poison queue: %v", got)
	}
}

func TestPoisonFailureNacksInsteadOfLosing(t *testing.T) {
	pub := &recordingPublisher{fail: errors.New("broker down")}
	fn, c := chain(t, Handle(greet), pub, nil)
	_, err := fn(newMsg(`garbage`, ""))
	if err == nil || !strings.Contains(err.Error(), "broker down") {
		t.Fatalf("got %v; a failed poison publish must return an error so the input is nacked", err)
	}
	if s := c.Snapshot(); s.Poisoned != 0 || s.Errors != 1 {
		t.Fatalf("counters %+v", s)
	}
}

func TestInputErrorFlagGoesToPoisonWithoutCallingHandler(t *testing.T) {
	pub := &recordingPublisher{}
	called := false
	fn, _ := chain(t, Handle(func(ctx context.Context, g *greeting) (*reply, error) { called = true; return greet(ctx, g) }), pub, nil)
	in := newMsg(`{"name":"x"}`, "")
	in.Metadata.Set(InputErrorKey, "envelope: not JSON")
	if _, err := fn(in); err != nil {
		t.Fatal(err)
	}
	if called {
		t.Fatal("handler saw a message flagged as undecodable by the adapter")
	}
	if got := pub.on("q1/tg/flow/in-poison"); len(got) != 1 || got[0].Metadata.Get(PoisonReasonKey) != "envelope: not JSON" {
		t.Fatalf("poison queue: %v", got)
	}
}

func TestPanicBecomesErrorAndIsNotRetried(t *testing.T) {
	calls := 0
	h := Handle(func(context.Context, *greeting) (*reply, error) { calls++; panic("boom") })
	fn, c := chain(t, h, &recordingPublisher{}, &RetryConfig{MaxRetries: 3, InitialInterval: time.Microsecond, MaxInterval: time.Microsecond})
	_, err := fn(newMsg(`{}`, ""))
	var p *PanicError
	if !errors.As(err, &p) || p.Value != "boom" || len(p.Stack) == 0 {
		t.Fatalf("got %v, want a *PanicError with the value and stack", err)
	}
	if calls != 1 {
		t.Fatalf("panicking handler called %d times", calls)
	}
	if s := c.Snapshot(); s.Panics != 1 || s.Errors != 1 {
		t.Fatalf("counters %+v", s)
	}
}

func TestRetryIsBoundedAndThenNacks(t *testing.T) {
	calls := 0
	h := Handle(func(context.Context, *greeting) (*reply, error) { calls++; return nil, errors.New("flaky") })
	fn, c := chain(t, h, &recordingPublisher{}, &RetryConfig{MaxRetries: 2, InitialInterval: time.Microsecond, MaxInterval: time.Microsecond})
	if _, err := fn(newMsg(`{}`, "")); err == nil || err.Error() != "flaky" {
		t.Fatalf("got %v, want the handler's error after the retries", err)
	}
	if calls != 3 {
		t.Fatalf("handler called %d times, want 1 + 2 retries", calls)
	}
	if s := c.Snapshot(); s.Retries != 2 || s.Errors != 1 {
		t.Fatalf("counters %+v", s)
	}
}

func TestRetrySucceedsAfterTransientFailure(t *testing.T) {
	calls := 0
	h := Handle(func(ctx context.Context, g *greeting) (*reply, error) {
		calls++
		if calls < 2 {
			return nil, errors.New("flaky")
		}
		return greet(ctx, g)
	})
	fn, c := chain(t, h, &recordingPublisher{}, &RetryConfig{MaxRetries: 3, InitialInterval: time.Microsecond, MaxInterval: time.Microsecond})
	out, err := fn(newMsg(`{"name":"x"}`, ""))
	if err != nil || len(out) != 1 {
		t.Fatalf("got %v, %v", out, err)
	}
	if s := c.Snapshot(); s.OK != 1 || s.Retries != 1 {
		t.Fatalf("counters %+v", s)
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	calls := 0
	h := Handle(func(context.Context, *greeting) (*reply, error) { calls++; return nil, errors.New("flaky") })
	retry, err := Retry(RetryConfig{MaxRetries: 100, InitialInterval: time.Hour, MaxInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m := newMsg(`{}`, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.SetContext(ctx)
	if _, err := retry(h)(m); err == nil {
		t.Fatal("want the handler error")
	}
	if calls != 1 {
		t.Fatalf("handler called %d times after the context ended", calls)
	}
}

func TestRetryConfigValidation(t *testing.T) {
	for _, c := range []RetryConfig{{MaxRetries: -1}, {Multiplier: 0.5}, {InitialInterval: time.Second, MaxInterval: time.Millisecond}} {
		if _, err := Retry(c); err == nil {
			t.Errorf("Retry(%+v) accepted an invalid config", c)
		}
	}
}

func TestTooManyRequestsBacksOffAndNacksWithoutRetry(t *testing.T) {
	calls := 0
	h := Handle(func(context.Context, *greeting) (*reply, error) {
		calls++
		return nil, TooManyRequests(errors.New("429 from llm"), time.Millisecond)
	})
	fn, c := chain(t, h, &recordingPublisher{}, &RetryConfig{MaxRetries: 3, InitialInterval: time.Microsecond, MaxInterval: time.Microsecond})
	_, err := fn(newMsg(`{}`, ""))
	if !IsTooManyRequests(err) {
		t.Fatalf("got %v, want the too-many-requests error so the router nacks", err)
	}
	if calls != 1 {
		t.Fatalf("rate-limited call retried in process: %d calls", calls)
	}
	if s := c.Snapshot(); s.RateLimited != 1 || s.Errors != 0 {
		t.Fatalf("counters %+v", s)
	}
}

func TestBackoffWaitsForRetryAfterUntilContextEnds(t *testing.T) {
	h := Backoff(BackoffConfig{Default: time.Hour, Max: time.Hour})(func(*message.Message) ([]*message.Message, error) {
		return nil, TooManyRequests(nil, 0)
	})
	m := newMsg(`{}`, "")
	ctx, cancel := context.WithCancel(context.Background())
	m.SetContext(ctx)
	done := make(chan error, 1)
	go func() { _, err := h(m); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("backoff returned %v before its pause or the context ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; !IsTooManyRequests(err) {
		t.Fatalf("got %v", err)
	}
}

func TestThrottleSharesOneBucketAndHonoursContext(t *testing.T) {
	throttle, err := Throttle(0.001, 1) // one token, the next in about 17 minutes
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	h := throttle(func(*message.Message) ([]*message.Message, error) { calls++; return nil, nil })
	if _, err := h(newMsg(`{}`, "")); err != nil {
		t.Fatalf("first call must take the burst token: %v", err)
	}
	m := newMsg(`{}`, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m.SetContext(ctx)
	if _, err := h(m); err == nil {
		t.Fatal("second call got through an empty bucket")
	}
	if calls != 1 {
		t.Fatalf("handler called %d times, want 1", calls)
	}
	if _, err := Throttle(0, 1); err == nil {
		t.Fatal("Throttle accepted rate 0")
	}
	if _, err := Throttle(1, 0); err == nil {
		t.Fatal("Throttle accepted burst 0")
	}
}

func TestChainRequiresCountersAndPoison(t *testing.T) {
	if _, err := Chain(Handle(greet), Policy{Poison: PoisonConfig{Publisher: &recordingPublisher{}, Topic: "x"}}); err == nil {
		t.Fatal("Chain accepted a policy without counters")
	}
	if _, err := Chain(Handle(greet), Policy{Counters: &Counters{}}); err == nil {
		t.Fatal("Chain accepted a policy without a poison queue")
	}
}

func TestSnapshotAdd(t *testing.T) {
	a := Snapshot{Received: 7, Redelivered: 8, InFlight: 9, Published: 10, OK: 1, Errors: 2, Poisoned: 3, RateLimited: 4, Panics: 5, Retries: 6}
	if got := a.Add(a); got != (Snapshot{14, 16, 18, 20, 2, 4, 6, 8, 10, 12}) {
		t.Fatalf("Add: %+v", got)
	}
}
