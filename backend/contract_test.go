package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// The tests in this file check the delivery contract of the README on every
// backend, through the real router: streams arrive whole, in order and as
// they are produced; panics, errors and poison pills end where the contract
// says, with the numbers it says; a stop never loses or repeats a message.

// emitLog records when the stream handler emitted each chunk, by request id.
type emitLog struct {
	mu    sync.Mutex
	times map[string][]time.Time
}

func (l *emitLog) add(id string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.times == nil {
		l.times = map[string][]time.Time{}
	}
	l.times[id] = append(l.times[id], at)
}

func (l *emitLog) get(id string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.times[id]...)
}

// receiveStream reads a stream of count chunks and its final response for
// request id, checks the order, the text and the flags, and returns the
// arrival time of each message.
func receiveStream(t *testing.T, replies <-chan stamped, id string, count int) []time.Time {
	t.Helper()
	arrivals := make([]time.Time, 0, count+1)
	for i := 0; i <= count; i++ {
		s := receive(t, replies, fmt.Sprintf("stream %s message %d", id, i), contractWait)
		resp := completion(t, s, id)
		if resp.Error != nil {
			t.Fatalf("message %d of the stream is an error: %+v", i, *resp.Error)
		}
		if i < count {
			if want := fmt.Sprintf("chunk %d", i); resp.Response != want || resp.EndOfStream {
				t.Fatalf("message %d of the stream: response %q end_of_stream %v, want %q and false", i, resp.Response, resp.EndOfStream, want)
			}
		} else if resp.Response != "" || !resp.EndOfStream {
			t.Fatalf("last message of the stream: response %q end_of_stream %v, want the final flag alone", resp.Response, resp.EndOfStream)
		}
		arrivals = append(arrivals, s.at)
	}
	return arrivals
}

// A stream is published as it is produced: every chunk arrives, in order,
// the final flag on the last message only, the first one at once, and a
// slow stream reaches the client while it is still being produced.
func TestContractStream(t *testing.T) {
	forEachContractBackend(t, func(t *testing.T, e *contractEnv) {
		in, out := e.flow("stream-in"), e.response("stream-out")
		var emits emitLog
		r := e.router(0)
		err := router.HandleStream(r, "stream", in, out, func(ctx context.Context, req *schema.TextCompletionRequest, emit func(*schema.TextCompletionResponse) error) error {
			// The prompt says how many chunks to emit and the pause
			// between them in nanoseconds; the system field names the
			// stream.
			var count int
			var gap time.Duration
			if _, err := fmt.Sscanf(req.Prompt, "%d %d", &count, &gap); err != nil {
				return middleware.Permanent(fmt.Errorf("prompt %q: %w", req.Prompt, err))
			}
			id := req.System
			for i := range count {
				if i > 0 && gap > 0 {
					time.Sleep(gap)
				}
				emits.add(id, time.Now())
				if err := emit(&schema.TextCompletionResponse{Response: fmt.Sprintf("chunk %d", i)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		replies := e.listen(out)
		e.run(r)

		send := func(id string, count int, gap time.Duration) {
			req := schema.NewTextCompletionRequest()
			req.Prompt = fmt.Sprintf("%d %d", count, int64(gap))
			req.System = id
			req.Streaming = true
			e.send(in, req, id)
		}

		// A one-chunk stream first: the first output of a processor
		// pays for one-off setup (a Pulsar producer, say); the contract
		// is about a processor at work.
		send("warm", 1, 0)
		warm := receiveStream(t, replies, "warm", 1)
		if emitted := emits.get("warm"); len(emitted) == 1 {
			t.Logf("%s: first output of the processor: %s after its emission", e.target.name, warm[0].Sub(emitted[0]).Round(10*time.Microsecond))
		}

		const long = 5000
		send("long", long, 0)
		arrivals := receiveStream(t, replies, "long", long)
		emitted := emits.get("long")
		if len(emitted) != long {
			t.Fatalf("the handler emitted %d chunks, want %d", len(emitted), long)
		}
		first := arrivals[0].Sub(emitted[0])
		took := arrivals[long].Sub(emitted[0])
		t.Logf("%s: %d chunks: first chunk %s after its emission, last message %s after the first emission (%.0f chunks/s)",
			e.target.name, long, first.Round(10*time.Microsecond), took.Round(time.Millisecond), float64(long)/took.Seconds())
		if first > 50*time.Millisecond {
			t.Errorf("the first chunk arrived %s after it was emitted, want within 50ms", first)
		}

		const slow, gap = 40, 25 * time.Millisecond
		send("slow", slow, gap)
		arrivals = receiveStream(t, replies, "slow", slow)
		emitted = emits.get("slow")
		if len(emitted) != slow {
			t.Fatalf("the handler emitted %d chunks, want %d", len(emitted), slow)
		}
		lead := emitted[slow-1].Sub(arrivals[0])
		t.Logf("%s: %d chunks %s apart: the first arrived %s after its emission, %s before the last emission; arrivals spread over %s",
			e.target.name, slow, gap, arrivals[0].Sub(emitted[0]).Round(10*time.Microsecond), lead.Round(time.Millisecond),
			arrivals[slow-1].Sub(arrivals[0]).Round(time.Millisecond))
		if !arrivals[0].Before(emitted[slow/2]) {
			t.Errorf("the first chunk arrived %s after the emission of chunk %d: the stream was not delivered as it was produced",
				arrivals[0].Sub(emitted[slow/2]), slow/2)
		}
		for i := range slow {
			if arrivals[i].Before(emitted[i]) {
				t.Fatalf("chunk %d arrived before it was emitted: the clocks are not comparable", i)
			}
		}
		expectNone(t, replies, "after both streams", 200*time.Millisecond)
	})
}

// A handler that always panics is called exactly max-deliveries times; the
// message then goes to the poison queue and the client gets an error
// response; the process carries on.
func TestContractPanic(t *testing.T) {
	forEachContractBackend(t, func(t *testing.T, e *contractEnv) {
		in, out := e.request("panic-in"), e.response("panic-out")
		var calls atomic.Int32
		r := e.router(0)
		err := router.Handle(r, "panic", in, out, func(context.Context, *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
			calls.Add(1)
			panic("contract test: the handler always panics")
		}, router.WithMaxDeliveries(3))
		if err != nil {
			t.Fatal(err)
		}
		replies := e.listen(out)
		poison := e.listen(router.PoisonTopic(in))
		e.run(r)

		req := schema.NewTextCompletionRequest()
		req.Prompt = "panic"
		sent := e.send(in, req, "req-panic")

		p := receive(t, poison, "poison queue", contractWait)
		t.Logf("%s: poisoned %s after the request was sent", e.target.name, p.at.Sub(sent).Round(time.Millisecond))
		md := p.msg.Metadata
		if got := md.Get(middleware.PoisonAttemptsKey); got != "3" {
			t.Errorf("poison_attempts %q, want 3", got)
		}
		if got := md.Get(middleware.PoisonReasonKey); !strings.Contains(got, "panicked") || !strings.Contains(got, "3 deliveries") {
			t.Errorf("poison_reason %q, want it to say the handler panicked and gave up after 3 deliveries", got)
		}
		if got := md.Get(middleware.PoisonSourceKey); got != in.String() {
			t.Errorf("poison_source %q, want %q", got, in)
		}
		if got := md.Get(middleware.IDProperty); got != "req-panic" {
			t.Errorf("the poisoned message has id %q, want req-panic", got)
		}
		back := new(schema.TextCompletionRequest)
		if err := schema.Unmarshal(p.msg.Payload, back); err != nil || back.Prompt != "panic" {
			t.Errorf("poisoned payload %.200s (%v), want the request", p.msg.Payload, err)
		}

		resp := completion(t, receive(t, replies, "error response", contractWait), "req-panic")
		if resp.Error == nil || resp.Error.Type != middleware.DefaultErrorType || !strings.Contains(resp.Error.Message, "panicked") || !resp.EndOfStream {
			t.Errorf("error response %+v (error %+v), want a %s error about the panic with end_of_stream", resp, resp.Error, middleware.DefaultErrorType)
		}

		expectNone(t, replies, "a second response", e.quiet())
		expectNone(t, poison, "a second poison message", 0)
		if n := calls.Load(); n != 3 {
			t.Errorf("handler called %d times, want 3", n)
		}
		st := r.Stats()["panic"]
		want := middleware.Snapshot{Received: 3, Redelivered: 2, Errors: 3, Panics: 3, Poisoned: 1, ErrorResponses: 1, Published: 1}
		if st != want {
			t.Errorf("stats %+v, want %+v", st, want)
		}
	})
}

// A handler error marked with its type is the answer: one error response
// with that type, and the input is acked, never handled again.
func TestContractErrorResponse(t *testing.T) {
	forEachContractBackend(t, func(t *testing.T, e *contractEnv) {
		in, out := e.flow("llm-in"), e.response("llm-out")
		var calls atomic.Int32
		r := e.router(0)
		err := router.Handle(r, "llm", in, out, func(context.Context, *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
			calls.Add(1)
			return nil, middleware.ErrorType("llm-error", errors.New("boom"))
		})
		if err != nil {
			t.Fatal(err)
		}
		replies := e.listen(out)
		poison := e.listen(router.PoisonTopic(in))
		e.run(r)

		req := schema.NewTextCompletionRequest()
		req.Prompt = "fail"
		e.send(in, req, "req-llm")
		resp := completion(t, receive(t, replies, "error response", contractWait), "req-llm")
		if resp.Error == nil || *resp.Error != (schema.Error{Type: "llm-error", Message: "boom"}) || !resp.EndOfStream || resp.Response != "" {
			t.Errorf("response %+v with error %+v, want error {llm-error boom} and end_of_stream", resp, resp.Error)
		}

		expectNone(t, replies, "a second response", e.quiet())
		expectNone(t, poison, "a poison message", 0)
		if n := calls.Load(); n != 1 {
			t.Errorf("handler called %d times, want 1 (the input must be acked)", n)
		}
		st := r.Stats()["llm"]
		want := middleware.Snapshot{Received: 1, Errors: 1, ErrorResponses: 1, Published: 1}
		if st != want {
			t.Errorf("stats %+v, want %+v", st, want)
		}
	})
}

// At concurrency 1 a message that keeps failing does not hold up the ones
// behind it: they are answered while it waits for its redeliveries, and it
// ends in the poison queue after max deliveries.
func TestContractPoisonPillDoesNotBlock(t *testing.T) {
	forEachContractBackend(t, func(t *testing.T, e *contractEnv) {
		in, out := e.flow("pill-in"), e.response("pill-out")
		// calls records the handler calls in order: "bad" or "good", and
		// when the bad message came.
		var mu sync.Mutex
		var calls []string
		var badAt []time.Time
		r := e.router(0)
		err := router.Handle(r, "pill", in, out, func(_ context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			if req.Prompt == "bad" {
				calls = append(calls, "bad")
				badAt = append(badAt, time.Now())
				return nil, errors.New("transient failure that never clears")
			}
			calls = append(calls, "good")
			return &schema.TextCompletionResponse{Response: strings.ToUpper(req.Prompt)}, nil
		}, router.WithMaxDeliveries(3))
		if err != nil {
			t.Fatal(err)
		}
		replies := e.listen(out)
		poison := e.listen(router.PoisonTopic(in))
		e.run(r)

		req := schema.NewTextCompletionRequest()
		req.Prompt = "bad"
		start := e.send(in, req, "req-bad")
		for i := range 4 {
			req.Prompt = fmt.Sprintf("good %d", i)
			e.send(in, req, fmt.Sprintf("req-good-%d", i))
		}

		limit := 2*e.target.nackDelay + 500*time.Millisecond
		answered := map[string]time.Duration{}
		var lastGood time.Time
		var errorResponse bool
		for len(answered) < 4 || !errorResponse {
			s := receive(t, replies, "responses", contractWait)
			id := s.msg.Metadata.Get(middleware.IDProperty)
			resp := completion(t, s, id)
			switch {
			case id == "req-bad":
				if errorResponse || resp.Error == nil || !strings.Contains(resp.Error.Message, "gave up after 3 deliveries") {
					t.Fatalf("response to the bad request %+v with error %+v, want one error response", resp, resp.Error)
				}
				errorResponse = true
			case strings.HasPrefix(id, "req-good-"):
				if _, dup := answered[id]; dup || resp.Error != nil || resp.Response != "GOOD "+strings.TrimPrefix(id, "req-good-") {
					t.Fatalf("response to %s: %+v with error %+v (duplicate: %v)", id, resp, resp.Error, dup)
				}
				answered[id] = s.at.Sub(start)
				lastGood = s.at
			default:
				t.Fatalf("response with id %q", id)
			}
		}
		p := receive(t, poison, "poison queue", contractWait)
		poisonedAfter := p.at.Sub(start)
		t.Logf("%s: good answers after %v (limit %s); bad message poisoned after %s", e.target.name,
			[]time.Duration{answered["req-good-0"].Round(time.Millisecond), answered["req-good-1"].Round(time.Millisecond),
				answered["req-good-2"].Round(time.Millisecond), answered["req-good-3"].Round(time.Millisecond)},
			limit, poisonedAfter.Round(time.Millisecond))
		if took := lastGood.Sub(start); took > limit {
			t.Errorf("the good messages were all answered %s after the bad one was sent, want within %s", took, limit)
		}
		if got := p.msg.Metadata.Get(middleware.PoisonAttemptsKey); got != "3" {
			t.Errorf("poison_attempts %q, want 3", got)
		}
		if got := p.msg.Metadata.Get(middleware.IDProperty); got != "req-bad" {
			t.Errorf("poisoned message id %q, want req-bad", got)
		}

		expectNone(t, replies, "a further response", e.quiet())
		expectNone(t, poison, "a second poison message", 0)
		mu.Lock()
		order := strings.Join(calls, " ")
		var gaps []time.Duration
		for i := 1; i < len(badAt); i++ {
			gaps = append(gaps, badAt[i].Sub(badAt[i-1]).Round(time.Millisecond))
		}
		mu.Unlock()
		t.Logf("%s: handler calls %s; the bad message came again after %v", e.target.name, order, gaps)
		// The good messages are handled while the bad one waits for its
		// redeliveries, not after it was given up.
		if strings.Count(order, "bad") != 3 || strings.Count(order, "good") != 4 || !strings.HasPrefix(order, "bad good") ||
			!strings.HasSuffix(order, "good bad") && !strings.HasSuffix(order, "good bad bad") {
			t.Errorf("handler calls %q: want the bad message 3 times, first and last, and the 4 good ones before its last delivery", order)
		}
		st := r.Stats()["pill"]
		want := middleware.Snapshot{Received: 7, Redelivered: 2, OK: 4, Errors: 3, Poisoned: 1, ErrorResponses: 1, Published: 5}
		if st != want {
			t.Errorf("stats %+v, want %+v", st, want)
		}
	})
}

// A stop while a message sits in a long too-many-requests pause ends the
// pause at once: Run returns promptly, and the message is delivered again to
// the next router on the subscription.
func TestContractStopDuringBackoff(t *testing.T) {
	forEachContractBackend(t, func(t *testing.T, e *contractEnv) {
		in, out := e.flow("backoff-in"), e.response("backoff-out")
		called := make(chan struct{}, 10)
		r := e.router(0)
		err := router.Handle(r, "backoff", in, out, func(context.Context, *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
			called <- struct{}{}
			return nil, middleware.TooManyRequests(errors.New("downstream overloaded"), 30*time.Second)
		}, router.WithBackoff(middleware.BackoffConfig{Default: 30 * time.Second, Max: 30 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		replies := e.listen(out)
		run := e.run(r)

		req := schema.NewTextCompletionRequest()
		req.Prompt = "later"
		e.send(in, req, "req-backoff")
		select {
		case <-called:
		case <-time.After(contractWait):
			t.Fatal("the handler was not called")
		}
		time.Sleep(100 * time.Millisecond) // in the pause now
		took, err := run.stop()
		t.Logf("%s: Run returned %s after the stop", e.target.name, took.Round(time.Millisecond))
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
		if took > time.Second {
			t.Errorf("Run returned %s after the stop, want within 1s", took)
		}
		st := r.Stats()["backoff"]
		if want := (middleware.Snapshot{Received: 1, Errors: 1, RateLimited: 1}); st != want {
			t.Errorf("stats %+v, want %+v", st, want)
		}
		if len(called) != 0 {
			t.Errorf("the handler was called %d more times", len(called))
		}

		var again atomic.Int32
		r2 := e.router(0)
		err = router.Handle(r2, "backoff", in, out, func(_ context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
			again.Add(1)
			return &schema.TextCompletionResponse{Response: "done " + req.Prompt}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		e.run(r2)
		resp := completion(t, receive(t, replies, "the answer of the second router", contractWait), "req-backoff")
		if resp.Error != nil || resp.Response != "done later" || !resp.EndOfStream {
			t.Errorf("response %+v with error %+v", resp, resp.Error)
		}
		expectNone(t, replies, "a second answer", e.quiet())
		if n := again.Load(); n != 1 {
			t.Errorf("the second router handled the message %d times, want 1", n)
		}
	})
}

// When the drain timeout passes, a stream still running is cancelled: the
// client gets the chunks already sent and then one final error response,
// Run returns nil, and the input is acked, so the next router on the
// subscription does not handle it again.
func TestContractDrainTimeout(t *testing.T) {
	forEachContractBackend(t, func(t *testing.T, e *contractEnv) {
		in, out := e.flow("drain-in"), e.response("drain-out")
		const drain = 300 * time.Millisecond
		var calls atomic.Int32
		r := e.router(drain)
		err := router.HandleStream(r, "drain", in, out, func(ctx context.Context, _ *schema.TextCompletionRequest, emit func(*schema.TextCompletionResponse) error) error {
			calls.Add(1)
			if err := emit(&schema.TextCompletionResponse{Response: "chunk 0"}); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		replies := e.listen(out)
		run := e.run(r)

		req := schema.NewTextCompletionRequest()
		req.Prompt = "forever"
		e.send(in, req, "req-drain")
		resp := completion(t, receive(t, replies, "the first chunk", contractWait), "req-drain")
		if resp.Response != "chunk 0" || resp.EndOfStream || resp.Error != nil {
			t.Fatalf("first message %+v with error %+v, want chunk 0", resp, resp.Error)
		}
		took, err := run.stop()
		t.Logf("%s: Run returned %s after the stop (drain timeout %s)", e.target.name, took.Round(time.Millisecond), drain)
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
		if took < drain {
			t.Errorf("Run returned %s after the stop, before the drain timeout of %s", took, drain)
		}
		resp = completion(t, receive(t, replies, "the error response", contractWait), "req-drain")
		if resp.Error == nil || !resp.EndOfStream || resp.Response != "" {
			t.Fatalf("second message %+v with error %+v, want a final error response", resp, resp.Error)
		}
		t.Logf("%s: error response %+v", e.target.name, *resp.Error)
		st := r.Stats()["drain"]
		want := middleware.Snapshot{Received: 1, Errors: 1, ErrorResponses: 1, Published: 2}
		if st != want {
			t.Errorf("stats %+v, want %+v", st, want)
		}

		var again atomic.Int32
		r2 := e.router(drain)
		err = router.HandleStream(r2, "drain", in, out, func(_ context.Context, _ *schema.TextCompletionRequest, emit func(*schema.TextCompletionResponse) error) error {
			again.Add(1)
			return emit(&schema.TextCompletionResponse{Response: "duplicate", EndOfStream: true})
		})
		if err != nil {
			t.Fatal(err)
		}
		e.run(r2)
		expectNone(t, replies, "a response from the second router", e.quiet())
		if n := again.Load(); n != 0 {
			t.Errorf("the second router handled the input %d times, want 0", n)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("the first router handled the input %d times, want 1", n)
		}
	})
}

// blob is a reply with no error field, so a failure to publish it cannot be
// answered and goes to the poison queue.
type blob struct {
	Data string `json:"data"`
}

// On Pulsar a reply larger than the broker's message size limit (5 MiB by
// default) cannot be published, and never will be: the input is poisoned
// and acked, not redelivered.
func TestContractPulsarOversizeReply(t *testing.T) {
	var target contractTarget
	for _, c := range contractTargets() {
		if c.name == Pulsar {
			target = c
		}
	}
	e := newContractEnv(t, target)
	in, out := e.flow("big-in"), e.response("big-out")
	var calls atomic.Int32
	r := e.router(0)
	err := router.Handle(r, "big", in, out, func(context.Context, *schema.TextCompletionRequest) (*blob, error) {
		calls.Add(1)
		return &blob{Data: strings.Repeat("x", 6<<20)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	replies := e.listen(out)
	poison := e.listen(router.PoisonTopic(in))
	e.run(r)

	req := schema.NewTextCompletionRequest()
	req.Prompt = "big"
	e.send(in, req, "req-big")
	p := receive(t, poison, "poison queue", contractWait)
	t.Logf("poison_reason: %s", p.msg.Metadata.Get(middleware.PoisonReasonKey))
	if got := p.msg.Metadata.Get(middleware.PoisonAttemptsKey); got != "1" {
		t.Errorf("poison_attempts %q, want 1", got)
	}
	if got := p.msg.Metadata.Get(middleware.IDProperty); got != "req-big" {
		t.Errorf("poisoned message id %q, want req-big", got)
	}
	expectNone(t, replies, "a reply", 0)
	expectNone(t, poison, "a second poison message", e.quiet())
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
	st := r.Stats()["big"]
	if want := (middleware.Snapshot{Received: 1, Errors: 1, Poisoned: 1}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}
