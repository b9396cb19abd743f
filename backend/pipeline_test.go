package backend

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// At the default concurrency of 1 every backend runs a handler pipelined:
// its outputs go to the broker without waiting and its inputs are acked on
// their confirmation. The handler still sees its inputs one at a time and
// in order, every output arrives once and in order, and the counters say
// ok only for confirmed outputs.
func TestContractPipelinedAtConcurrencyOne(t *testing.T) {
	const total = 2000
	forEachContractBackend(t, func(t *testing.T, e *contractEnv) {
		in, out := e.flow("pipe-in"), e.flow("pipe-out")
		r := e.router(0)
		var mu sync.Mutex
		var calls []int
		running := 0
		overlap := false
		err := router.Handle(r, "echo", in, out, func(_ context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
			mu.Lock()
			running++
			if running > 1 {
				overlap = true
			}
			n, _ := strconv.Atoi(req.Prompt)
			calls = append(calls, n)
			mu.Unlock()
			resp := new(schema.TextCompletionResponse)
			resp.Response = req.Prompt
			mu.Lock()
			running--
			mu.Unlock()
			return resp, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		window := router.DefaultMaxInFlight
		if d, ok := e.b.(router.InFlightDefaulter); ok {
			window = d.DefaultMaxInFlight()
		}
		if e.target.name == "pulsar" && window != pulsarpubsub.DefaultReceiverQueueSize {
			t.Fatalf("pulsar suggests %d in flight, want its receiver queue size %d", window, pulsarpubsub.DefaultReceiverQueueSize)
		}
		if info := r.Handlers()[0]; !info.Pipelined || info.MaxInFlight != window {
			t.Fatalf("handler %+v, want pipelined with %d in flight", info, window)
		}
		replies := e.listen(out)
		e.run(r)

		for i := 0; i < total; i += 100 {
			msgs := make([]*message.Message, 0, 100)
			for j := i; j < i+100; j++ {
				req := schema.NewTextCompletionRequest()
				req.Prompt = strconv.Itoa(j)
				data, err := schema.Marshal(req)
				if err != nil {
					t.Fatal(err)
				}
				m := message.NewMessage(watermill.NewUUID(), data)
				m.Metadata.Set(middleware.IDProperty, fmt.Sprintf("pipe-%d", j))
				msgs = append(msgs, m)
			}
			if err := e.b.Publisher().Publish(in.String(), msgs...); err != nil {
				t.Fatalf("publishing requests %d..: %v", i, err)
			}
		}
		for i := 0; i < total; i++ {
			s := receive(t, replies, fmt.Sprintf("response %d", i), contractWait)
			resp := completion(t, s, fmt.Sprintf("pipe-%d", i))
			if resp.Response != strconv.Itoa(i) || !resp.EndOfStream {
				t.Fatalf("response %d is %+v, want the prompt %d back with end_of_stream", i, resp, i)
			}
		}
		expectNone(t, replies, "a response more", e.quiet())
		mu.Lock()
		for i, n := range calls {
			if n != i {
				t.Fatalf("call %d handled request %d: calls out of order", i, n)
			}
		}
		if overlap {
			t.Error("the handler ran twice at once at concurrency 1")
		}
		mu.Unlock()
		// An output may reach the client before its receipt reaches the
		// processor: the counters follow the receipts.
		want := middleware.Snapshot{Received: total, OK: total, Published: total}
		deadline := time.Now().Add(contractWait)
		for r.Stats()["echo"] != want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if st := r.Stats()["echo"]; st != want {
			t.Errorf("stats %+v, want %+v", st, want)
		}
	})
}
