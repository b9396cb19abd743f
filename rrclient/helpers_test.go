package rrclient

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

type (
	tcReq  = schema.TextCompletionRequest
	tcResp = schema.TextCompletionResponse
)

// queues returns a fresh request queue and its response queue, in
// TrustGraph's class form (request:tg:q, response:tg:q).
func queues() (in, out schema.Topic) {
	q := "rr-test-" + strings.ToLower(watermill.NewShortUUID())
	in = schema.Topic{QoS: schema.QoS0, Tenant: "tg", Namespace: "request", Queue: q}
	out = schema.Topic{QoS: schema.QoS0, Tenant: "tg", Namespace: "response", Queue: q}
	return in, out
}

// memory returns an in-process backend closed at the end of the test.
func memory(t testing.TB) router.Backend {
	t.Helper()
	b := backend.NewMemory(nil)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// run starts a router on b with the handlers register adds, waits until it
// takes messages, and stops it at the end of the test.
func run(t testing.TB, b router.Backend, register func(r *router.Router) error) {
	t.Helper()
	r, err := router.New(router.Config{ID: "rr-test-service", Concurrency: 16, DrainTimeout: 5 * time.Second}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := register(r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-done:
		cancel()
		t.Fatalf("router stopped before running: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	})
}

// serve answers each request on in with fn's response on out.
func serve(t testing.TB, b router.Backend, in, out schema.Topic, fn middleware.Func[tcReq, tcResp], opts ...router.HandlerOption) {
	t.Helper()
	run(t, b, func(r *router.Router) error { return router.Handle(r, "single", in, out, fn, opts...) })
}

// serveStream answers each request on in with the responses fn emits on out.
func serveStream(t testing.TB, b router.Backend, in, out schema.Topic, fn middleware.StreamFunc[tcReq, tcResp]) {
	t.Helper()
	run(t, b, func(r *router.Router) error { return router.HandleStream(r, "stream", in, out, fn) })
}

// shout answers with the prompt in capitals.
func shout(_ context.Context, req *tcReq) (*tcResp, error) {
	return &tcResp{Response: strings.ToUpper(req.Prompt)}, nil
}

// chunks emits n responses "0", "1", … with a pause of gap before each, the
// last one final.
func chunks(n int, gap func(i int) time.Duration) middleware.StreamFunc[tcReq, tcResp] {
	return func(ctx context.Context, _ *tcReq, emit func(*tcResp) error) error {
		for i := 0; i < n; i++ {
			if d := gap(i); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if err := emit(&tcResp{Response: itoa(i), EndOfStream: i == n-1}); err != nil {
				return err
			}
		}
		return nil
	}
}

func noGap(int) time.Duration { return 0 }

// paused emits the responses of chunks(n, noGap), pausing after the first
// ones until release is closed.
func paused(n, first int, release <-chan struct{}) middleware.StreamFunc[tcReq, tcResp] {
	return func(ctx context.Context, _ *tcReq, emit func(*tcResp) error) error {
		for i := 0; i < n; i++ {
			if i == first {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if err := emit(&tcResp{Response: itoa(i), EndOfStream: i == n-1}); err != nil {
				return err
			}
		}
		return nil
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// newClient returns a client on b for in/out with cfg's other settings,
// closed at the end of the test.
func newClient(t testing.TB, b router.Backend, in, out schema.Topic, cfg Config) *Client[tcReq, tcResp] {
	t.Helper()
	cfg.Request, cfg.Response = in, out
	c, err := New[tcReq, tcResp](context.Background(), b, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// pendingCalls returns how many calls wait for responses.
func (c *Client[Req, Resp]) pendingCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// eventually fails the test if cond does not hold within d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkStream reads the stream of n chunks made by chunks(n, …) and checks
// that every one arrives, in order, and that it ends on the final flag.
func checkStream(t *testing.T, c *Client[tcReq, tcResp], n int) {
	t.Helper()
	got := 0
	for resp, err := range c.Stream(context.Background(), &tcReq{Prompt: "count"}) {
		if err != nil {
			t.Fatalf("after %d responses: %v", got, err)
		}
		if resp.Response != itoa(got) {
			t.Fatalf("response %d is %q, want %q", got, resp.Response, itoa(got))
		}
		if resp.EndOfStream != (got == n-1) {
			t.Fatalf("response %d: end_of_stream %v", got, resp.EndOfStream)
		}
		got++
	}
	if got != n {
		t.Fatalf("stream ended after %d responses, want %d", got, n)
	}
	if p := c.pendingCalls(); p != 0 {
		t.Fatalf("%d calls still pending after the stream ended", p)
	}
}
