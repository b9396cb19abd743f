package router

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// readyUpstream is a subscriber whose one subscription hands out what the
// test sends on feed, and says it has messages ready while ready is set.
type readyUpstream struct {
	feed  chan *message.Message
	ready atomic.Bool
	mu    sync.Mutex
	out   <-chan *message.Message
	asked atomic.Int32 // Ready calls about out
}

func (u *readyUpstream) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	u.mu.Lock()
	u.out = out
	u.mu.Unlock()
	go func() {
		defer close(out)
		for {
			select {
			case m := <-u.feed:
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (u *readyUpstream) Ready(messages <-chan *message.Message) bool {
	u.mu.Lock()
	mine := messages == u.out
	u.mu.Unlock()
	if !mine {
		return false
	}
	u.asked.Add(1)
	return u.ready.Load()
}

func (u *readyUpstream) Close() error { return nil }

// countingFlusher counts FlushBatches calls.
type countingFlusher struct{ n atomic.Int32 }

func (f *countingFlusher) FlushBatches() { f.n.Add(1) }

// startReadyPipeline runs a pipeline on u whose handler reports each
// message it handled on handled.
func startReadyPipeline(t *testing.T, u *readyUpstream, f *countingFlusher, wait time.Duration) (handled chan string) {
	t.Helper()
	handled = make(chan string, 16)
	p := newPipeline(pipelineConfig{
		name: "h", topic: "t", upstream: u, concurrency: 1, window: 16, flusher: f, readyWait: wait,
		logger: watermill.NopLogger{}, ended: make(chan string, 1),
		fn: func(m *message.Message) error {
			handled <- m.UUID
			return nil
		},
	})
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.close(time.Second); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return handled
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPipelineFlushesWhenNothingIsReady(t *testing.T) {
	u := &readyUpstream{feed: make(chan *message.Message)}
	f := &countingFlusher{}
	handled := startReadyPipeline(t, u, f, time.Hour)
	u.feed <- message.NewMessage("1", nil)
	<-handled
	waitFor(t, "a flush once the channel ran empty", func() bool { return f.n.Load() >= 1 })
	if u.asked.Load() == 0 {
		t.Error("the pipeline did not ask its upstream whether messages were ready")
	}
}

func TestPipelineWaitsForReadyMessagesBeforeFlushing(t *testing.T) {
	u := &readyUpstream{feed: make(chan *message.Message)}
	u.ready.Store(true)
	f := &countingFlusher{}
	handled := startReadyPipeline(t, u, f, time.Hour)
	for _, id := range []string{"1", "2", "3"} {
		u.feed <- message.NewMessage(id, nil)
		if got := <-handled; got != id {
			t.Fatalf("handled %s, want %s", got, id)
		}
		waitFor(t, "the question whether messages are ready", func() bool { return u.asked.Load() >= 1 })
	}
	// The messages came while the pipeline waited for them: no flush.
	time.Sleep(20 * time.Millisecond)
	if n := f.n.Load(); n != 0 {
		t.Fatalf("%d flushes while the upstream had messages ready", n)
	}
	// Once nothing is ready any more, the next empty channel flushes.
	u.ready.Store(false)
	u.feed <- message.NewMessage("4", nil)
	<-handled
	waitFor(t, "a flush once nothing was ready", func() bool { return f.n.Load() >= 1 })
}

func TestPipelineFlushesWhenReadyMessagesDoNotCome(t *testing.T) {
	u := &readyUpstream{feed: make(chan *message.Message)}
	u.ready.Store(true)
	f := &countingFlusher{}
	handled := startReadyPipeline(t, u, f, time.Millisecond)
	u.feed <- message.NewMessage("1", nil)
	<-handled
	waitFor(t, "a flush after the wait for ready messages", func() bool { return f.n.Load() >= 1 })
}
