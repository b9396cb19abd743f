package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/schema"
)

// loadClient is the load generator's and the counter's connection to a
// backend: it publishes requests to the input queue and hands every message
// of the output queue to the counter it was made with. The same load client
// serves every variant of a backend, so the variants differ only in the
// processor between the two queues.
type loadClient interface {
	// Publish sends payload with the id property to the input queue. It
	// does not wait for the broker unless flush is set, in which case the
	// message is on its way when Publish returns (no batching delay).
	Publish(id string, payload []byte, flush bool) error
	// Close stops the subscription and releases the connection.
	Close() error
}

// responseFunc receives the id property and payload of each response.
type responseFunc func(id string, payload []byte)

// counter tallies the responses of a run and measures their latency from
// the send time carried in their id.
type counter struct {
	epoch time.Time

	sent atomic.Uint64
	recv atomic.Uint64 // distinct throughput responses
	wake chan struct{}

	windowOpen atomic.Bool
	latency    *Histogram

	mu    sync.Mutex
	seen  []uint64 // bitset of throughput sequence numbers received
	dups  uint64
	bad   atomic.Uint64
	check atomic.Uint64

	rt chan string // ids of round-trip responses
}

func newCounter(epoch time.Time) *counter {
	return &counter{
		epoch:   epoch,
		wake:    make(chan struct{}, 1),
		latency: NewHistogram(),
		rt:      make(chan string, 64),
	}
}

// since returns the time elapsed since the run's epoch (monotonic).
func (c *counter) since() time.Duration { return time.Since(c.epoch) }

// onResponse is the responseFunc of the counter.
func (c *counter) onResponse(id string, payload []byte) {
	now := c.since()
	kind, seq, sent, err := parseID(id)
	if err != nil {
		c.bad.Add(1)
		return
	}
	switch kind {
	case kindRoundTrip:
		select {
		case c.rt <- id:
		default:
		}
		return
	case kindThroughput:
	default:
		c.bad.Add(1)
		return
	}
	// Only the generator makes ids, one after the other, and counts each
	// after publishing it: a higher sequence number is not one of ours.
	if seq == 0 || seq > c.sent.Load()+1 {
		c.bad.Add(1)
		return
	}
	c.mu.Lock()
	w, bit := seq/64, seq%64
	for uint64(len(c.seen)) <= w {
		c.seen = append(c.seen, 0)
	}
	dup := c.seen[w]&(1<<bit) != 0
	if dup {
		c.dups++
	} else {
		c.seen[w] |= 1 << bit
	}
	c.mu.Unlock()
	if dup {
		return
	}
	if c.windowOpen.Load() {
		c.latency.Record(now - sent)
	}
	// Check one response in 1024 in full, so the counter stays cheap.
	if c.check.Add(1)%1024 == 1 && !validResponse(payload) {
		c.bad.Add(1)
	}
	c.recv.Add(1)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// duplicates returns the number of responses received more than once.
func (c *counter) duplicates() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dups
}

// validResponse reports whether payload is the TextCompletionResponse the
// echo processors produce.
func validResponse(payload []byte) bool {
	var resp schema.TextCompletionResponse
	if err := schema.Unmarshal(payload, &resp); err != nil {
		return false
	}
	return resp.EndOfStream && resp.Model != nil && *resp.Model == EchoModel && len(resp.Response) > 0 && resp.Error == nil
}

// generate publishes throughput requests until ctx ends, keeping at most
// window of them outstanding (sent, response not yet counted): a closed
// loop with a window. It returns the first publish error.
func (c *counter) generate(ctx context.Context, lc loadClient, payload []byte, window int) error {
	var seq uint64
	for {
		for c.sent.Load()-c.recv.Load() >= uint64(window) {
			t := time.NewTimer(20 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-c.wake:
			case <-t.C:
			}
			t.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
		seq++
		if err := lc.Publish(makeID(kindThroughput, seq, c.since()), payload, false); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("publishing request %d: %w", seq, err)
		}
		c.sent.Add(1)
	}
}

// roundTrips sends up to n requests (after warm unmeasured ones) one after
// the other, each after the response to the previous one arrived, and
// records their latency in h. It stops early once the measured requests
// took longer than limit. A request without a response within timeout
// counts as a timeout; three in a row end the measurement with an error.
func (c *counter) roundTrips(ctx context.Context, lc loadClient, payload []byte, n, warm int, limit, timeout time.Duration, h *Histogram) (timeouts uint64, err error) {
	var seq uint64
	consecutive := 0
	var measuredFrom time.Time
	for i := 0; i < n+warm; i++ {
		if ctx.Err() != nil {
			return timeouts, ctx.Err()
		}
		if i == warm {
			measuredFrom = time.Now()
		}
		if i > warm && time.Since(measuredFrom) > limit {
			return timeouts, nil
		}
		seq++
		start := time.Now()
		id := makeID(kindRoundTrip, seq, c.since())
		if err := lc.Publish(id, payload, true); err != nil {
			return timeouts, fmt.Errorf("publishing round-trip request %d: %w", seq, err)
		}
		t := time.NewTimer(timeout)
	wait:
		for {
			select {
			case got := <-c.rt:
				if got != id {
					continue // a late answer to an earlier request
				}
				if i >= warm {
					h.Record(time.Since(start))
				}
				consecutive = 0
				break wait
			case <-t.C:
				timeouts++
				consecutive++
				if consecutive >= 3 {
					return timeouts, fmt.Errorf("round trip: %d requests in a row unanswered within %s", consecutive, timeout)
				}
				break wait
			case <-ctx.Done():
				t.Stop()
				return timeouts, ctx.Err()
			}
		}
		t.Stop()
	}
	return timeouts, nil
}
