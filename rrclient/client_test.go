package rrclient

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

func TestRequest(t *testing.T) {
	b := memory(t)
	in, out := queues()
	serve(t, b, in, out, shout)
	c := newClient(t, b, in, out, Config{})

	resp, err := c.Request(context.Background(), &tcReq{Prompt: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Response != "HELLO" || !resp.EndOfStream || resp.Error != nil {
		t.Fatalf("response %+v", resp)
	}
	if ok, _ := regexp.MatchString(`^rr-[0-9a-f]{12}$`, c.Subscription()); !ok {
		t.Fatalf("subscription name %q, want rr-{12 hex digits}", c.Subscription())
	}
	if s := c.Stats(); s.Requests != 1 || s.Received != 1 || s.Orphans != 0 {
		t.Fatalf("stats %+v", s)
	}
	if p := c.pendingCalls(); p != 0 {
		t.Fatalf("%d calls pending", p)
	}
}

func TestConcurrentRequests(t *testing.T) {
	b := memory(t)
	in, out := queues()
	serve(t, b, in, out, shout)
	c := newClient(t, b, in, out, Config{})

	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prompt := fmt.Sprintf("request %d", i)
			resp, err := c.Request(context.Background(), &tcReq{Prompt: prompt})
			switch {
			case err != nil:
				errs <- fmt.Errorf("request %d: %w", i, err)
			case resp.Response != strings.ToUpper(prompt):
				errs <- fmt.Errorf("request %d got %q", i, resp.Response)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every client sees every response on the queue, but only its own are
	// waited for: this one sent them all.
	if s := c.Stats(); s.Requests != n || s.Received != n || s.Orphans != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTwoClientsShareTheResponseQueue(t *testing.T) {
	b := memory(t)
	in, out := queues()
	serve(t, b, in, out, shout)
	c1 := newClient(t, b, in, out, Config{})
	c2 := newClient(t, b, in, out, Config{})

	for i, c := range []*Client[tcReq, tcResp]{c1, c2, c1} {
		prompt := fmt.Sprintf("from client %d", i)
		resp, err := c.Request(context.Background(), &tcReq{Prompt: prompt})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Response != strings.ToUpper(prompt) {
			t.Fatalf("got %q for %q", resp.Response, prompt)
		}
	}
	// Each sees the other's response as an orphan.
	eventually(t, 5*time.Second, "the other client's responses are counted", func() bool {
		return c1.Stats().Orphans == 1 && c2.Stats().Orphans == 2
	})
}

func TestStream(t *testing.T) {
	b := memory(t)
	in, out := queues()
	serveStream(t, b, in, out, chunks(500, noGap))
	c := newClient(t, b, in, out, Config{})
	checkStream(t, c, 500)
	if s := c.Stats(); s.Received != 500 || s.Orphans != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStreamBreakAbandonsTheRequest(t *testing.T) {
	b := memory(t)
	in, out := queues()
	const n, first = 200, 10
	release := make(chan struct{})
	serveStream(t, b, in, out, paused(n, first, release))
	c := newClient(t, b, in, out, Config{})

	got := 0
	for _, err := range c.Stream(context.Background(), &tcReq{}) {
		if err != nil {
			t.Fatal(err)
		}
		got++
		if got == first {
			break
		}
	}
	if p := c.pendingCalls(); p != 0 {
		t.Fatalf("%d calls pending after break", p)
	}
	close(release)
	// The rest of the stream is acked and dropped; the client goes on.
	eventually(t, 10*time.Second, "the rest of the stream is received", func() bool { return c.Stats().Received == n })
	if s := c.Stats(); s.Orphans != n-first {
		t.Fatalf("stats %+v: want %d orphans", s, n-first)
	}
	checkStream(t, c, n)
}

func TestStreamOfSingleShotService(t *testing.T) {
	b := memory(t)
	in, out := queues()
	serve(t, b, in, out, shout)
	c := newClient(t, b, in, out, Config{})
	// The router sets the final flag on a single-shot response: the stream
	// has one element.
	var got []string
	for resp, err := range c.Stream(context.Background(), &tcReq{Prompt: "one"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.Response)
	}
	if len(got) != 1 || got[0] != "ONE" {
		t.Fatalf("stream %q", got)
	}
}

func TestRequestReturnsTheFirstResponseOfAStream(t *testing.T) {
	b := memory(t)
	in, out := queues()
	serveStream(t, b, in, out, chunks(5, noGap))
	c := newClient(t, b, in, out, Config{})
	resp, err := c.Request(context.Background(), &tcReq{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Response != "0" || resp.EndOfStream {
		t.Fatalf("response %+v", resp)
	}
	eventually(t, 5*time.Second, "the other four are orphans", func() bool { return c.Stats().Orphans == 4 })
}

func TestErrorResponse(t *testing.T) {
	b := memory(t)
	in, out := queues()
	serve(t, b, in, out, func(_ context.Context, req *tcReq) (*tcResp, error) {
		switch req.Prompt {
		case "field":
			return &tcResp{Error: &schema.Error{Type: "llm-error", Message: "the model is overloaded"}}, nil
		case "fail":
			return nil, middleware.Permanent(errors.New("the model is unavailable"))
		}
		return shout(context.Background(), req)
	}, router.WithErrorType("llm-error"))
	c := newClient(t, b, in, out, Config{})

	for _, tc := range []struct{ prompt, message string }{
		{"field", "the model is overloaded"},
		{"fail", "the model is unavailable"},
	} {
		resp, err := c.Request(context.Background(), &tcReq{Prompt: tc.prompt})
		var re *ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("%s: got %+v, %v; want a *ResponseError", tc.prompt, resp, err)
		}
		if resp != nil || re.Type != "llm-error" || re.Message != tc.message {
			t.Fatalf("%s: got %+v, %+v", tc.prompt, resp, re)
		}
		if !strings.Contains(err.Error(), in.String()) || !strings.Contains(err.Error(), tc.message) {
			t.Fatalf("error %q does not name the queue and the message", err)
		}
	}
	// The client goes on after an error.
	if resp, err := c.Request(context.Background(), &tcReq{Prompt: "ok"}); err != nil || resp.Response != "OK" {
		t.Fatalf("after errors: %+v, %v", resp, err)
	}
	if s := c.Stats(); s.ErrorResponses != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStreamErrorResponse(t *testing.T) {
	b := memory(t)
	in, out := queues()
	serveStream(t, b, in, out, func(_ context.Context, _ *tcReq, emit func(*tcResp) error) error {
		for i := 0; i < 3; i++ {
			if err := emit(&tcResp{Response: itoa(i)}); err != nil {
				return err
			}
		}
		return emit(&tcResp{Error: &schema.Error{Type: "llm-error", Message: "cut short"}, EndOfStream: true})
	})
	c := newClient(t, b, in, out, Config{})
	var got []string
	var last error
	for resp, err := range c.Stream(context.Background(), &tcReq{}) {
		if last != nil {
			t.Fatalf("yielded %v, %v after the error %v", resp, err, last)
		}
		if err != nil {
			last = err
			continue
		}
		got = append(got, resp.Response)
	}
	var re *ResponseError
	if !errors.As(last, &re) || re.Type != "llm-error" || re.Message != "cut short" {
		t.Fatalf("stream ended with %v", last)
	}
	if strings.Join(got, ",") != "0,1,2" {
		t.Fatalf("responses before the error: %q", got)
	}
}

func TestUndecodableResponse(t *testing.T) {
	b := memory(t)
	in, out := queues()
	run(t, b, func(r *router.Router) error {
		return r.AddHandler("bad", in, &out, func(msg *message.Message) ([]*message.Message, error) {
			resp := message.NewMessage(watermill.NewUUID(), []byte(`{"response": 5}`))
			resp.Metadata.Set(schema.IDProperty, msg.Metadata.Get(schema.IDProperty))
			return []*message.Message{resp}, nil
		})
	})
	c := newClient(t, b, in, out, Config{})
	_, err := c.Request(context.Background(), &tcReq{})
	var de *schema.DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "response") {
		t.Fatalf("got %v, want a decode error naming the field", err)
	}
	if s := c.Stats(); s.DecodeErrors != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTimeout(t *testing.T) {
	b := memory(t)
	in, out := queues() // nobody serves in
	c := newClient(t, b, in, out, Config{Timeout: 100 * time.Millisecond})

	_, err := c.Request(context.Background(), &tcReq{})
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrTimeout matching context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), in.String()) || !strings.Contains(err.Error(), "100ms") {
		t.Fatalf("error %q does not name the queue and the timeout", err)
	}
	for resp, err := range c.Stream(context.Background(), &tcReq{}) {
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("stream yielded %v, %v", resp, err)
		}
	}
	if s := c.Stats(); s.Timeouts != 2 || s.Requests != 2 {
		t.Fatalf("stats %+v", s)
	}
	if p := c.pendingCalls(); p != 0 {
		t.Fatalf("%d calls pending after timeouts", p)
	}
}

func TestContextEndsTheWait(t *testing.T) {
	b := memory(t)
	in, out := queues()
	c := newClient(t, b, in, out, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for c.pendingCalls() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if _, err := c.Request(ctx, &tcReq{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if _, err := c.Request(ctx, &tcReq{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("with a cancelled context: %v", err)
	}
	if s := c.Stats(); s.Requests != 1 {
		t.Fatalf("stats %+v: the second request must not be sent", s)
	}
}

// The timeout applies to each response of a stream, not to the stream.
func TestStreamTimeoutIsPerMessage(t *testing.T) {
	b := memory(t)
	t.Run("steady", func(t *testing.T) {
		in, out := queues()
		// 10 responses 50 ms apart: 500 ms in all, more than the timeout.
		serveStream(t, b, in, out, chunks(10, func(int) time.Duration { return 50 * time.Millisecond }))
		c := newClient(t, b, in, out, Config{Timeout: 200 * time.Millisecond})
		start := time.Now()
		checkStream(t, c, 10)
		if took := time.Since(start); took < 400*time.Millisecond {
			t.Fatalf("the stream took %s; the service pauses 500 ms in all", took)
		}
	})
	t.Run("gap", func(t *testing.T) {
		in, out := queues()
		serveStream(t, b, in, out, chunks(10, func(i int) time.Duration {
			if i == 3 {
				return 400 * time.Millisecond
			}
			return 0
		}))
		c := newClient(t, b, in, out, Config{Timeout: 200 * time.Millisecond})
		got := 0
		var last error
		for _, err := range c.Stream(context.Background(), &tcReq{}) {
			if err != nil {
				last = err
				break
			}
			got++
		}
		if got != 3 || !errors.Is(last, ErrTimeout) {
			t.Fatalf("got %d responses then %v; want 3 then a timeout", got, last)
		}
		// The rest comes later and is dropped.
		eventually(t, 5*time.Second, "the rest of the stream is dropped", func() bool { return c.Stats().Orphans == 7 })
	})
}

func TestOrphansAreAckedAndDropped(t *testing.T) {
	b := memory(t)
	in, out := queues()
	serve(t, b, in, out, shout)
	c := newClient(t, b, in, out, Config{})

	// Responses nobody waits for: unknown ids and none. The memory backend
	// hands out the next message only once the previous one is acked, so
	// the request below is answered only if they were.
	var orphans []*message.Message
	for i := 0; i < 5; i++ {
		m := message.NewMessage(watermill.NewUUID(), []byte(`{"response":"stray"}`))
		if i%2 == 0 {
			m.Metadata.Set(schema.IDProperty, watermill.NewUUID())
		}
		orphans = append(orphans, m)
	}
	if err := b.Publisher().Publish(out.String(), orphans...); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Request(context.Background(), &tcReq{Prompt: "after"})
	if err != nil || resp.Response != "AFTER" {
		t.Fatalf("%+v, %v", resp, err)
	}
	eventually(t, 5*time.Second, "5 orphans counted", func() bool { return c.Stats().Orphans == 5 })
	if s := c.Stats(); s.Received != 6 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCloseFailsPending(t *testing.T) {
	b := memory(t)
	in, out := queues() // nobody serves in
	c, err := New[tcReq, tcResp](context.Background(), b, Config{Request: in, Response: out})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() {
		_, err := c.Request(context.Background(), &tcReq{})
		errs <- err
	}()
	go func() {
		for _, err := range c.Stream(context.Background(), &tcReq{}) {
			errs <- err
		}
	}()
	eventually(t, 5*time.Second, "both calls wait", func() bool { return c.pendingCalls() == 2 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("pending call got %v, want ErrClosed", err)
		}
	}
	if _, err := c.Request(context.Background(), &tcReq{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	for _, err := range c.Stream(context.Background(), &tcReq{}) {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("stream after Close: %v", err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestBackendClosedFailsPending(t *testing.T) {
	b := memory(t)
	in, out := queues()
	c := newClient(t, b, in, out, Config{})
	errs := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), &tcReq{})
		errs <- err
	}()
	eventually(t, 5*time.Second, "the call waits", func() bool { return c.pendingCalls() == 1 })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "subscription") {
		t.Fatalf("got %v, want ErrClosed saying the subscription ended", err)
	}
}

// A caller that falls behind fails its own stream, after the responses
// that were buffered, and holds up nobody else.
func TestStreamOverflow(t *testing.T) {
	b := memory(t)
	in, out := queues()
	const n, buffer = 50, 4
	// The service sends the first response, then the rest once the caller
	// has it: so the caller's buffer is empty when the rest comes.
	release := make(chan struct{})
	serveStream(t, b, in, out, paused(n, 1, release))
	c := newClient(t, b, in, out, Config{StreamBuffer: buffer})

	var got []string
	var last error
	for resp, err := range c.Stream(context.Background(), &tcReq{}) {
		if err != nil {
			last = err
			break
		}
		got = append(got, resp.Response)
		if len(got) == 1 {
			// Fall behind until the stream overflows.
			close(release)
			eventually(t, 10*time.Second, "the stream overflows", func() bool { return c.Stats().Overflows == 1 })
		}
	}
	if !errors.Is(last, ErrOverflow) {
		t.Fatalf("stream ended with %v after %d responses", last, len(got))
	}
	if len(got) != 1+buffer {
		t.Fatalf("got %d responses before the overflow, want %d", len(got), 1+buffer)
	}
	for i, r := range got {
		if r != itoa(i) {
			t.Fatalf("response %d is %q", i, r)
		}
	}
	eventually(t, 10*time.Second, "the rest is received and dropped", func() bool {
		s := c.Stats()
		return s.Received == n && s.Orphans == n-1-buffer
	})
	// The client goes on.
	if resp, err := c.Request(context.Background(), &tcReq{}); err != nil || resp.Response != "0" {
		t.Fatalf("after the overflow: %+v, %v", resp, err)
	}
}

func TestConfig(t *testing.T) {
	in, out := queues()
	var cfg Config
	cfg.SetDefaults()
	if cfg.Timeout != 60*time.Second || cfg.SubscriptionPrefix != "rr" || cfg.StreamBuffer != 1024 || cfg.Logger == nil {
		t.Fatalf("defaults %+v", cfg)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Response: out}, "request queue"},
		{Config{Request: in}, "response queue"},
		{Config{Request: in, Response: out, Timeout: -time.Second}, "timeout must not be negative, got -1s"},
		{Config{Request: in, Response: out, StreamBuffer: -1}, "stream buffer"},
		{Config{Request: in, Response: out, SubscriptionPrefix: "a/b"}, `subscription prefix "a/b"`},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
		if _, err := New[tcReq, tcResp](context.Background(), memory(t), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with %+v: %v", tc.cfg, err)
		}
	}
	if err := (Config{Request: in, Response: out}).Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := New[tcReq, tcResp](context.Background(), nil, Config{Request: in, Response: out}); err == nil {
		t.Fatal("New without a backend succeeded")
	}
	type bad struct{ C chan int }
	if _, err := New[tcReq, bad](context.Background(), memory(t), Config{Request: in, Response: out}); err == nil || !strings.Contains(err.Error(), "response type") {
		t.Fatalf("New with a response type the codec cannot handle: %v", err)
	}
}

func TestErrorOf(t *testing.T) {
	// ErrorOf finds the field that schema.SetError sets, on every message
	// type of the schema.
	for name, typ := range schema.Types() {
		if typ.Kind() != reflect.Struct {
			continue
		}
		v := reflect.New(typ).Interface()
		has := schema.HasErrorField(typ)
		if (errorIndex(typ) != nil) != has {
			t.Errorf("%s: ErrorOf finds a field: %v, schema.HasErrorField: %v", name, errorIndex(typ) != nil, has)
			continue
		}
		if ErrorOf(v) != nil {
			t.Errorf("%s: error set on a new value", name)
		}
		if has {
			schema.SetError(v, "x-error", "it broke")
			if e := ErrorOf(v); e == nil || e.Type != "x-error" || e.Message != "it broke" {
				t.Errorf("%s: ErrorOf after SetError: %+v", name, e)
			}
			if e := ErrorOf(reflect.ValueOf(v).Elem().Interface()); e == nil {
				t.Errorf("%s: ErrorOf of a struct value: nil", name)
			}
		}
	}

	type Base struct {
		Error *schema.Error `json:"error"`
	}
	type embedded struct {
		Base
		Text string `json:"text"`
	}
	type shadowed struct {
		Base
		Problem string `json:"error"`
	}
	type untagged struct {
		Error *schema.Error
	}
	e := &schema.Error{Type: "t", Message: "m"}
	if got := ErrorOf(&embedded{Base: Base{Error: e}}); got != e {
		t.Errorf("promoted from an embedded struct: %v", got)
	}
	if got := ErrorOf(&shadowed{Base: Base{Error: e}}); got != nil {
		t.Errorf("shadowed by a shallower field of another type: %v", got)
	}
	if got := ErrorOf(&untagged{Error: e}); got != nil {
		t.Errorf("JSON name Error, not error: %v", got)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[embedded](), reflect.TypeFor[shadowed](), reflect.TypeFor[untagged]()} {
		if has := schema.HasErrorField(typ); has != (errorIndex(typ) != nil) {
			t.Errorf("%s: schema.HasErrorField %v, ErrorOf disagrees", typ, has)
		}
	}
	if ErrorOf(nil) != nil || ErrorOf((*schema.TextCompletionResponse)(nil)) != nil || ErrorOf(3) != nil {
		t.Error("ErrorOf of nil, a nil pointer or a non-struct is not nil")
	}
}

// slowSubscriber is a memory subscriber that reports itself unhealthy until
// its health was asked for a number of times, like a subscriber that sets
// up its subscription after Subscribe returned.
type slowSubscriber struct {
	message.Subscriber
	mu      sync.Mutex
	asked   int
	readyAt int // 0: never
	closed  bool
}

func (s *slowSubscriber) SubscribeInitialize(topic string) error {
	return s.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic)
}

func (s *slowSubscriber) Health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	if s.readyAt == 0 || s.asked < s.readyAt {
		return errors.New("not consuming yet")
	}
	return nil
}

func (s *slowSubscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return s.Subscriber.Close()
}

// slowBackend hands out slowSubscribers.
type slowBackend struct {
	router.Backend
	readyAt int
	subs    []*slowSubscriber
}

func (b *slowBackend) NewSubscriber(opts router.SubscribeOptions) (message.Subscriber, error) {
	sub, err := b.Backend.NewSubscriber(opts)
	if err != nil {
		return nil, err
	}
	s := &slowSubscriber{Subscriber: sub, readyAt: b.readyAt}
	b.subs = append(b.subs, s)
	return s, nil
}

func TestNewWaitsForTheSubscription(t *testing.T) {
	in, out := queues()
	b := &slowBackend{Backend: memory(t), readyAt: 4}
	serve(t, b.Backend, in, out, shout)
	c := newClient(t, b, in, out, Config{})
	if asked := b.subs[0].asked; asked != 4 {
		t.Fatalf("New returned after %d health checks, want 4", asked)
	}
	if resp, err := c.Request(context.Background(), &tcReq{Prompt: "ready"}); err != nil || resp.Response != "READY" {
		t.Fatalf("%+v, %v", resp, err)
	}

	never := &slowBackend{Backend: memory(t)}
	_, err := New[tcReq, tcResp](context.Background(), never, Config{Request: in, Response: out, Timeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "not in place after 50ms") || !strings.Contains(err.Error(), "not consuming yet") {
		t.Fatalf("New with a subscription never in place: %v", err)
	}
	if !never.subs[0].closed {
		t.Fatal("the subscriber of a failed New was not closed")
	}
}
