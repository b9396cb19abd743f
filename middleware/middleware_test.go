package middleware

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/schema"
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

const (
	outTopic    = "q0/tg/response/out"
	poisonTopic = "q1/tg/flow/in-poison"
)

// typed returns a function that fails the test on a constructor error.
func typed(t *testing.T) func(Typed, error) Typed {
	return func(tf Typed, err error) Typed {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tf
	}
}

func TestHandlePublishesWithIDAndFinalFlag(t *testing.T) {
	pub := &recordingPublisher{}
	h := typed(t)(Handle(func(_ context.Context, g *greeting) (*schema.TextCompletionResponse, error) {
		return &schema.TextCompletionResponse{Response: "hello " + g.Name}, nil
	}, Output{Publisher: pub, Topic: outTopic}))
	out, err := h.Call(newMsg(`{"name":"ada","unknown":[1,2]}`, "req-1"))
	if err != nil || out != nil {
		t.Fatalf("got %v, %v; outputs are published, not returned", out, err)
	}
	got := pub.on(outTopic)
	if len(got) != 1 || got[0].Metadata.Get(IDProperty) != "req-1" {
		t.Fatalf("published %v", got)
	}
	var r schema.TextCompletionResponse
	if err := schema.Unmarshal(got[0].Payload, &r); err != nil || r.Response != "hello ada" || !r.EndOfStream {
		t.Fatalf("response %s: the only response must carry end_of_stream=true", got[0].Payload)
	}
}

func TestHandleNilResponsePublishesNothing(t *testing.T) {
	pub := &recordingPublisher{}
	h := typed(t)(Handle(func(context.Context, *greeting) (*reply, error) { return nil, nil }, Output{Publisher: pub, Topic: outTopic}))
	if _, err := h.Call(newMsg(`{}`, "")); err != nil || len(pub.on(outTopic)) != 0 {
		t.Fatalf("err %v, published %d", err, len(pub.on(outTopic)))
	}
}

func TestHandleRejectsTypesTheCodecCannotCarry(t *testing.T) {
	type bad struct {
		C chan int `json:"c"`
	}
	if _, err := Handle(func(context.Context, *bad) (*reply, error) { return nil, nil }, Output{}); err == nil || !strings.Contains(err.Error(), "input type") {
		t.Fatalf("got %v, want an error about the input type", err)
	}
}

// orderedPublisher checks that each output is published before the handler
// emits the next one.
type orderedPublisher struct {
	recordingPublisher
	emitted *int
	seen    []int
}

func (p *orderedPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.seen = append(p.seen, *p.emitted)
	return p.recordingPublisher.Publish(topic, msgs...)
}

func TestHandleStreamPublishesEachOutputWhenEmitted(t *testing.T) {
	emitted := 0
	pub := &orderedPublisher{emitted: &emitted}
	h := typed(t)(HandleStream(func(_ context.Context, g *greeting, emit func(*schema.TextCompletionResponse) error) error {
		for i := int64(0); i < g.Times; i++ {
			emitted++
			if err := emit(&schema.TextCompletionResponse{Response: string(rune('a' + i))}); err != nil {
				return err
			}
		}
		return nil
	}, Output{Publisher: pub, Topic: outTopic}))
	if _, err := h.Call(newMsg(`{"times":3}`, "s-1")); err != nil {
		t.Fatal(err)
	}
	got := pub.on(outTopic)
	if len(got) != 4 {
		t.Fatalf("published %d messages, want 3 chunks and a terminator", len(got))
	}
	for i, n := range []int{1, 2, 3} {
		if pub.seen[i] != n {
			t.Fatalf("chunk %d published after %d emits: outputs are not streamed (%v)", i, pub.seen[i], pub.seen)
		}
	}
	var texts []string
	for i, m := range got {
		var r schema.TextCompletionResponse
		if err := schema.Unmarshal(m.Payload, &r); err != nil || m.Metadata.Get(IDProperty) != "s-1" {
			t.Fatalf("chunk %d: %s %v", i, m.Payload, m.Metadata)
		}
		if r.EndOfStream != (i == 3) {
			t.Fatalf("chunk %d end_of_stream=%v", i, r.EndOfStream)
		}
		texts = append(texts, r.Response)
	}
	if strings.Join(texts, "") != "abc" {
		t.Fatalf("chunks %q", texts)
	}
}

func TestHandleStreamRefusesOutputAfterFinalOne(t *testing.T) {
	pub := &recordingPublisher{}
	h := typed(t)(HandleStream(func(_ context.Context, _ *greeting, emit func(*schema.TextCompletionResponse) error) error {
		if err := emit(&schema.TextCompletionResponse{Response: "x", EndOfStream: true}); err != nil {
			return err
		}
		return emit(&schema.TextCompletionResponse{Response: "late"})
	}, Output{Publisher: pub, Topic: outTopic}))
	_, err := h.Call(newMsg(`{}`, "s"))
	if n, ok := OutputsPublished(err); !ok || n != 1 || len(pub.on(outTopic)) != 1 {
		t.Fatalf("got %v (published %d); the late output must be refused", err, len(pub.on(outTopic)))
	}
}

func TestUndecodableInputIsPermanentDecodeError(t *testing.T) {
	h := typed(t)(Handle(greet, Output{Publisher: &recordingPublisher{}, Topic: outTopic}))
	for _, payload := range []string{`{"name":`, `{"name": 5}`, `not json`, ``} {
		_, err := h.Call(newMsg(payload, ""))
		var de *DecodeError
		if !errors.As(err, &de) || !IsPermanent(err) {
			t.Fatalf("payload %q: got %v, want a permanent *DecodeError", payload, err)
		}
		if !strings.Contains(err.Error(), "middleware.greeting") {
			t.Fatalf("error %q does not name the type", err)
		}
	}
	_, err := h.Call(newMsg(`{"name": 5}`, ""))
	if !strings.Contains(err.Error(), "name") {
		t.Fatalf("error %q does not name the field", err)
	}
}

func TestConsumeCallsSink(t *testing.T) {
	var got string
	h := typed(t)(Consume(func(_ context.Context, g *greeting) error { got = g.Name; return nil }))
	out, err := h.Call(newMsg(`{"name":"bo"}`, ""))
	if err != nil || out != nil || got != "bo" {
		t.Fatalf("out=%v err=%v got=%q", out, err, got)
	}
}

// chain wraps a request/response handler answering TextCompletionResponses
// in the full policy with max deliveries 3.
func chain(t *testing.T, fn Func[greeting, schema.TextCompletionResponse], pub message.Publisher, retry *RetryConfig, drain <-chan struct{}) (message.HandlerFunc, *Counters) {
	t.Helper()
	h := typed(t)(Handle(fn, Output{Publisher: pub, Topic: outTopic}))
	c := &Counters{}
	wrapped, err := Chain(h.Call, Policy{
		Delivery: DeliveryConfig{
			MaxDeliveries: 3,
			Poison:        PoisonConfig{Publisher: pub, Topic: poisonTopic, Source: "q1/tg/flow/in", Handler: "h"},
			RespondError:  h.RespondError,
			ErrorType:     "llm-error",
			Drain:         drain,
		},
		Retry:    retry,
		Backoff:  BackoffConfig{Default: time.Millisecond, Max: time.Millisecond},
		Counters: c,
	})
	if err != nil {
		t.Fatal(err)
	}
	return wrapped, c
}

func attemptMsg(payload, id string, attempt int) *message.Message {
	m := newMsg(payload, id)
	m.Metadata.Set(schema.DeliveryAttemptKey, strconv.Itoa(attempt))
	return m
}

func errorResponse(t *testing.T, m *message.Message) schema.TextCompletionResponse {
	t.Helper()
	var r schema.TextCompletionResponse
	if err := schema.Unmarshal(m.Payload, &r); err != nil {
		t.Fatal(err)
	}
	if r.Error == nil || !r.EndOfStream {
		t.Fatalf("not a final error response: %s", m.Payload)
	}
	return r
}

func ok(_ context.Context, g *greeting) (*schema.TextCompletionResponse, error) {
	return &schema.TextCompletionResponse{Response: g.Name}, nil
}

func TestUndecodableInputIsAnsweredAndPoisoned(t *testing.T) {
	pub := &recordingPublisher{}
	calls := 0
	fn, c := chain(t, func(ctx context.Context, g *greeting) (*schema.TextCompletionResponse, error) {
		calls++
		return ok(ctx, g)
	}, pub, nil, nil)
	if _, err := fn(newMsg(`{"name": [1]}`, "bad-1")); err != nil {
		t.Fatalf("an undecodable input must be acked: %v", err)
	}
	poisoned := pub.on(poisonTopic)
	if len(poisoned) != 1 {
		t.Fatalf("poison queue has %d messages, want 1", len(poisoned))
	}
	p := poisoned[0]
	if string(p.Payload) != `{"name": [1]}` || p.Metadata.Get(IDProperty) != "bad-1" {
		t.Fatalf("poison message lost the original payload or id: %s %v", p.Payload, p.Metadata)
	}
	if !strings.Contains(p.Metadata.Get(PoisonReasonKey), "name") || p.Metadata.Get(PoisonSourceKey) != "q1/tg/flow/in" ||
		p.Metadata.Get(PoisonHandlerKey) != "h" || p.Metadata.Get(PoisonAttemptsKey) != "1" {
		t.Fatalf("poison metadata incomplete: %v", p.Metadata)
	}
	answers := pub.on(outTopic)
	if len(answers) != 1 || answers[0].Metadata.Get(IDProperty) != "bad-1" {
		t.Fatalf("error responses: %v", answers)
	}
	if r := errorResponse(t, answers[0]); r.Error.Type != ErrorTypeBadRequest {
		t.Fatalf("error type %q", r.Error.Type)
	}
	if calls != 0 {
		t.Fatalf("handler was called %d times for an undecodable input", calls)
	}
	if s := c.Snapshot(); s.Poisoned != 1 || s.OK != 0 || s.Errors != 1 || s.ErrorResponses != 1 || s.Received != 1 {
		t.Fatalf("counters %+v", s)
	}
}

func TestTransientErrorIsNackedUntilTheLastDelivery(t *testing.T) {
	pub := &recordingPublisher{}
	fail := func(context.Context, *greeting) (*schema.TextCompletionResponse, error) {
		return nil, errors.New("upstream down")
	}
	fn, c := chain(t, fail, pub, nil, nil)
	for attempt := 1; attempt < 3; attempt++ {
		if _, err := fn(attemptMsg(`{}`, "r", attempt)); err == nil || err.Error() != "upstream down" {
			t.Fatalf("attempt %d: got %v, want a nack", attempt, err)
		}
	}
	if len(pub.on(outTopic))+len(pub.on(poisonTopic)) != 0 {
		t.Fatal("answered before the last delivery")
	}
	if _, err := fn(attemptMsg(`{}`, "r", 3)); err != nil {
		t.Fatalf("last delivery: %v, want an ack", err)
	}
	r := errorResponse(t, pub.on(outTopic)[0])
	if r.Error.Type != "llm-error" || !strings.Contains(r.Error.Message, "gave up after 3 deliveries: upstream down") {
		t.Fatalf("error %+v", r.Error)
	}
	if p := pub.on(poisonTopic); len(p) != 1 || p[0].Metadata.Get(PoisonAttemptsKey) != "3" {
		t.Fatalf("poison %v", p)
	}
	if s := c.Snapshot(); s.Errors != 3 || s.Redelivered != 2 || s.Poisoned != 1 {
		t.Fatalf("counters %+v", s)
	}
}

func TestPanicIsPoisonedOnTheLastDeliveryWithoutAnswerWhenNoID(t *testing.T) {
	pub := &recordingPublisher{}
	fn, c := chain(t, func(context.Context, *greeting) (*schema.TextCompletionResponse, error) { panic("boom") }, pub, nil, nil)
	_, err := fn(attemptMsg(`{}`, "", 1))
	var p *PanicError
	if !errors.As(err, &p) || p.Value != "boom" || len(p.Stack) == 0 {
		t.Fatalf("got %v, want a *PanicError with the value and stack", err)
	}
	if _, err := fn(attemptMsg(`{}`, "", 3)); err != nil {
		t.Fatal(err)
	}
	if len(pub.on(outTopic)) != 0 || len(pub.on(poisonTopic)) != 1 {
		t.Fatalf("answers %d poison %d; without an id nobody waits for an answer", len(pub.on(outTopic)), len(pub.on(poisonTopic)))
	}
	if s := c.Snapshot(); s.Panics != 2 || s.Errors != 2 || s.Poisoned != 1 {
		t.Fatalf("counters %+v", s)
	}
}

func TestErrorTypeAnswersAtOnceWithoutPoison(t *testing.T) {
	pub := &recordingPublisher{}
	calls := 0
	fn, _ := chain(t, func(context.Context, *greeting) (*schema.TextCompletionResponse, error) {
		calls++
		return nil, ErrorType("not-implemented", errors.New("no such operation"))
	}, pub, &RetryConfig{MaxRetries: 5, InitialInterval: time.Microsecond, MaxInterval: time.Microsecond}, nil)
	if _, err := fn(newMsg(`{}`, "q")); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("a permanent error was retried: %d calls", calls)
	}
	if r := errorResponse(t, pub.on(outTopic)[0]); r.Error.Type != "not-implemented" || r.Error.Message != "no such operation" {
		t.Fatalf("error %+v", r.Error)
	}
	if len(pub.on(poisonTopic)) != 0 {
		t.Fatal("a deliberate error answer was also poisoned")
	}
}

// permanentPublishError is how adapters mark errors such as "message too large".
type permanentPublishError struct{}

func (permanentPublishError) Error() string   { return "message too large" }
func (permanentPublishError) Permanent() bool { return true }

func TestOversizeReplyIsPoisonedAndAcked(t *testing.T) {
	pub := &recordingPublisher{}
	tooBig := &failingTopicPublisher{recordingPublisher: pub, topic: outTopic, err: permanentPublishError{}}
	h := typed(t)(Handle(ok, Output{Publisher: tooBig, Topic: outTopic}))
	c := &Counters{}
	fn, err := Chain(h.Call, Policy{Delivery: DeliveryConfig{
		Poison:       PoisonConfig{Publisher: pub, Topic: poisonTopic},
		RespondError: h.RespondError,
	}, Counters: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn(newMsg(`{"name":"x"}`, "big")); err != nil {
		t.Fatalf("got %v, want the input acked", err)
	}
	if p := pub.on(poisonTopic); len(p) != 1 || !strings.Contains(p[0].Metadata.Get(PoisonReasonKey), "message too large") {
		t.Fatalf("poison %v", p)
	}
	if s := c.Snapshot(); s.Errors != 1 || s.OK != 0 || s.Poisoned != 1 {
		t.Fatalf("counters %+v: the stats must say error", s)
	}
}

type failingTopicPublisher struct {
	*recordingPublisher
	topic string
	err   error
}

func (p *failingTopicPublisher) Publish(topic string, msgs ...*message.Message) error {
	if topic == p.topic {
		return p.err
	}
	return p.recordingPublisher.Publish(topic, msgs...)
}

func TestStreamFailingMidwayEndsWithAnErrorNotARetry(t *testing.T) {
	pub := &recordingPublisher{}
	h := typed(t)(HandleStream(func(_ context.Context, _ *greeting, emit func(*schema.TextCompletionResponse) error) error {
		if err := emit(&schema.TextCompletionResponse{Response: "partial"}); err != nil {
			return err
		}
		return errors.New("model crashed")
	}, Output{Publisher: pub, Topic: outTopic}))
	c := &Counters{}
	fn, err := Chain(h.Call, Policy{Delivery: DeliveryConfig{
		Poison: PoisonConfig{Publisher: pub, Topic: poisonTopic}, RespondError: h.RespondError,
	}, Retry: &RetryConfig{MaxRetries: 3}, Counters: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn(newMsg(`{}`, "s")); err != nil {
		t.Fatalf("got %v; a stream that published outputs must not be redelivered", err)
	}
	got := pub.on(outTopic)
	if len(got) != 2 {
		t.Fatalf("published %d, want the chunk and one error", len(got))
	}
	if r := errorResponse(t, got[1]); r.Error.Message != "model crashed" {
		t.Fatalf("error %+v: the client is told what failed", r.Error)
	}
	if s := c.Snapshot(); s.Retries != 0 {
		t.Fatalf("retried a started stream: %+v", s)
	}
}

func TestFailureAfterTheFinalOutputSendsNothingMore(t *testing.T) {
	pub := &recordingPublisher{}
	h := typed(t)(HandleStream(func(_ context.Context, _ *greeting, emit func(*schema.TextCompletionResponse) error) error {
		if err := emit(&schema.TextCompletionResponse{Response: "all", EndOfStream: true}); err != nil {
			return err
		}
		return errors.New("late failure")
	}, Output{Publisher: pub, Topic: outTopic}))
	fn, err := Chain(h.Call, Policy{Delivery: DeliveryConfig{
		Poison: PoisonConfig{Publisher: pub, Topic: poisonTopic}, RespondError: h.RespondError,
	}, Counters: &Counters{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn(newMsg(`{}`, "s")); err != nil {
		t.Fatal(err)
	}
	if got := pub.on(outTopic); len(got) != 1 {
		t.Fatalf("published %d messages after end_of_stream; nothing may follow the final one", len(got)-1)
	}
	if p := pub.on(poisonTopic); len(p) != 1 || !strings.Contains(p[0].Metadata.Get(PoisonReasonKey), "stream failed after 1 outputs: late failure") {
		t.Fatalf("poison %v", p)
	}
}

func TestPoisonFailureNacksInsteadOfLosing(t *testing.T) {
	pub := &recordingPublisher{fail: errors.New("broker down")}
	fn, c := chain(t, ok, pub, nil, nil)
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
	fn, _ := chain(t, func(ctx context.Context, g *greeting) (*schema.TextCompletionResponse, error) {
		called = true
		return ok(ctx, g)
	}, pub, nil, nil)
	in := newMsg(`{"name":"x"}`, "")
	in.Metadata.Set(InputErrorKey, "envelope: not JSON")
	if _, err := fn(in); err != nil {
		t.Fatal(err)
	}
	if called {
		t.Fatal("handler saw a message flagged as undecodable by the adapter")
	}
	if got := pub.on(poisonTopic); len(got) != 1 || !strings.Contains(got[0].Metadata.Get(PoisonReasonKey), "envelope: not JSON") {
		t.Fatalf("poison queue: %v", got)
	}
}

func TestRetryIsBoundedAndThenNacks(t *testing.T) {
	calls := 0
	fn, c := chain(t, func(context.Context, *greeting) (*schema.TextCompletionResponse, error) {
		calls++
		return nil, errors.New("flaky")
	}, &recordingPublisher{}, &RetryConfig{MaxRetries: 2, InitialInterval: time.Microsecond, MaxInterval: time.Microsecond}, nil)
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
	pub := &recordingPublisher{}
	fn, c := chain(t, func(ctx context.Context, g *greeting) (*schema.TextCompletionResponse, error) {
		calls++
		if calls < 2 {
			return nil, errors.New("flaky")
		}
		return ok(ctx, g)
	}, pub, &RetryConfig{MaxRetries: 3, InitialInterval: time.Microsecond, MaxInterval: time.Microsecond}, nil)
	if _, err := fn(newMsg(`{"name":"x"}`, "")); err != nil || len(pub.on(outTopic)) != 1 {
		t.Fatalf("got %v, published %d", err, len(pub.on(outTopic)))
	}
	if s := c.Snapshot(); s.OK != 1 || s.Retries != 1 || s.Published != 0 {
		t.Fatalf("counters %+v", s)
	}
}

func TestTooManyRequestsBacksOffAndNacksWithoutRetry(t *testing.T) {
	calls := 0
	fn, c := chain(t, func(context.Context, *greeting) (*schema.TextCompletionResponse, error) {
		calls++
		return nil, TooManyRequests(errors.New("429 from llm"), time.Millisecond)
	}, &recordingPublisher{}, &RetryConfig{MaxRetries: 3, InitialInterval: time.Microsecond, MaxInterval: time.Microsecond}, nil)
	_, err := fn(newMsg(`{}`, ""))
	if !IsTooManyRequests(err) {
		t.Fatalf("got %v, want the too-many-requests error so the router nacks", err)
	}
	if calls != 1 {
		t.Fatalf("rate-limited call retried in process: %d calls", calls)
	}
	if s := c.Snapshot(); s.RateLimited != 1 || s.Errors != 1 {
		t.Fatalf("counters %+v", s)
	}
}

func TestDrainEndsPausesAndNacksEvenOnTheLastDelivery(t *testing.T) {
	drain := make(chan struct{})
	pub := &recordingPublisher{}
	started := make(chan struct{}, 1)
	fn, _ := chain(t, func(ctx context.Context, _ *greeting) (*schema.TextCompletionResponse, error) {
		if Draining(ctx) == nil {
			t.Error("the handler's context does not tell of draining")
		}
		started <- struct{}{}
		return nil, errors.New("flaky")
	}, pub, &RetryConfig{MaxRetries: 1, InitialInterval: time.Hour, MaxInterval: time.Hour}, drain)
	done := make(chan error, 1)
	go func() { _, err := fn(attemptMsg(`{}`, "d", 3)); done <- err }()
	<-started
	close(drain)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("acked while draining; another consumer should get the last try")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retry pause did not end when the drain began")
	}
	if len(pub.on(outTopic))+len(pub.on(poisonTopic)) != 0 {
		t.Fatal("given up while draining")
	}
}

func TestAdapterPermanentErrorsArePermanent(t *testing.T) {
	if !IsPermanent(fmt.Errorf("publishing: %w", permanentPublishError{})) {
		t.Fatal("an adapter error that says it is permanent is not")
	}
	if IsPermanent(errors.New("timeout")) {
		t.Fatal("a plain error is permanent")
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	calls := 0
	h := func(*message.Message) ([]*message.Message, error) { calls++; return nil, errors.New("flaky") }
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
	h := typed(t)(Handle(greet, Output{}))
	if _, err := Chain(h.Call, Policy{Delivery: DeliveryConfig{Poison: PoisonConfig{Publisher: &recordingPublisher{}, Topic: "x"}}}); err == nil {
		t.Fatal("Chain accepted a policy without counters")
	}
	if _, err := Chain(h.Call, Policy{Counters: &Counters{}}); err == nil {
		t.Fatal("Chain accepted a policy without a poison queue")
	}
}

func TestSnapshotAdd(t *testing.T) {
	a := Snapshot{Received: 7, Redelivered: 8, InFlight: 9, Published: 10, OK: 1, Errors: 2, Poisoned: 3, ErrorResponses: 11, RateLimited: 4, Panics: 5, Retries: 6}
	want := Snapshot{Received: 14, Redelivered: 16, InFlight: 18, Published: 20, OK: 2, Errors: 4, Poisoned: 6, ErrorResponses: 22, RateLimited: 8, Panics: 10, Retries: 12}
	if got := a.Add(a); got != want {
		t.Fatalf("Add: %+v", got)
	}
}

func TestHandlersSeeTheirMessage(t *testing.T) {
	var got MessageInfo
	fn, _ := chain(t, func(ctx context.Context, g *greeting) (*schema.TextCompletionResponse, error) {
		got, _ = Message(ctx)
		return ok(ctx, g)
	}, &recordingPublisher{}, nil, nil)
	in := attemptMsg(`{}`, "req-9", 2)
	in.Metadata.Set("tenant", "acme")
	if _, err := fn(in); err != nil {
		t.Fatal(err)
	}
	if got.UUID != in.UUID || got.ID != "req-9" || got.Attempt != 2 || got.Properties["tenant"] != "acme" {
		t.Fatalf("handler saw %+v", got)
	}
	if _, ok := Message(context.Background()); ok {
		t.Fatal("a context outside a router has a message")
	}
}

func TestStreamCutByTheDrainTimeoutSaysSo(t *testing.T) {
	pub := &recordingPublisher{}
	stop, cancel := context.WithCancel(context.Background())
	h := typed(t)(HandleStream(func(ctx context.Context, _ *greeting, emit func(*schema.TextCompletionResponse) error) error {
		if err := emit(&schema.TextCompletionResponse{Response: "partial"}); err != nil {
			return err
		}
		cancel() // the drain timeout passes
		<-ctx.Done()
		return ctx.Err()
	}, Output{Publisher: pub, Topic: outTopic}))
	fn, err := Chain(h.Call, Policy{Delivery: DeliveryConfig{
		Poison: PoisonConfig{Publisher: pub, Topic: poisonTopic}, RespondError: h.RespondError, Stop: stop,
	}, Counters: &Counters{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn(newMsg(`{}`, "s")); err != nil {
		t.Fatal(err)
	}
	got := pub.on(outTopic)
	if len(got) != 2 {
		t.Fatalf("published %d, want the chunk and one error", len(got))
	}
	if r := errorResponse(t, got[1]); !strings.Contains(r.Error.Message, "drain timeout") {
		t.Fatalf("error %+v", r.Error)
	}
}
