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
	asked chan struct{} // a signal for each Ready call about out
}

func newReadyUpstream(ready bool) *readyUpstream {
	u := &readyUpstream{feed: make(chan *message.Message), asked: make(chan struct{}, 64)}
	u.ready.Store(ready)
	return u
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
	signal(u.asked)
	return u.ready.Load()
}

func (u *readyUpstream) Close() error { return nil }

// countingFlusher counts FlushBatches calls and signals each on flushed.
type countingFlusher struct {
	n       atomic.Int32
	flushed chan struct{}
}

func newCountingFlusher() *countingFlusher {
	return &countingFlusher{flushed: make(chan struct{}, 64)}
}

func (f *countingFlusher) FlushBatches() {
	f.n.Add(1)
	signal(f.flushed)
}

// signal sends on ch unless its buffer is full.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// expectSignal waits up to five seconds for a signal on ch.
func expectSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

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

func TestPipelineFlushesWhenNothingIsReady(t *testing.T) {
	u := newReadyUpstream(false)
	f := newCountingFlusher()
	handled := startReadyPipeline(t, u, f, time.Hour)
	u.feed <- message.NewMessage("1", nil)
	<-handled
	expectSignal(t, u.asked, "the question whether messages are ready")
	expectSignal(t, f.flushed, "a flush once the channel ran empty")
}

func TestPipelineWaitsForReadyMessagesBeforeFlushing(t *testing.T) {
	u := newReadyUpstream(true)
	f := newCountingFlusher()
	handled := startReadyPipeline(t, u, f, time.Hour)
	for _, id := range []string{"1", "2", "3"} {
		u.feed <- message.NewMessage(id, nil)
		if got := <-handled; got != id {
			t.Fatalf("handled %s, want %s", got, id)
		}
		expectSignal(t, u.asked, "the question whether messages are ready")
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
	expectSignal(t, f.flushed, "a flush once nothing was ready")
}

func TestPipelineFlushesWhenReadyMessagesDoNotCome(t *testing.T) {
	u := newReadyUpstream(true)
	f := newCountingFlusher()
	handled := startReadyPipeline(t, u, f, time.Millisecond)
	u.feed <- message.NewMessage("1", nil)
	<-handled
	expectSignal(t, f.flushed, "a flush after the wait for ready messages")
}
