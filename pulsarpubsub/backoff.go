package pulsarpubsub

import (
	"math/rand/v2"
	"time"

	"github.com/apache/pulsar-client-go/pulsar/backoff"
)

const minReconnectBackoff = 100 * time.Millisecond

// reconnectBackoff doubles the pause between reconnection attempts from
// 100ms up to max, with up to 20% jitter. It is used by one producer or
// consumer at a time.
type reconnectBackoff struct {
	max  time.Duration
	next time.Duration
}

func newBackoffFunc(max time.Duration) func() backoff.Policy {
	if max < minReconnectBackoff {
		max = minReconnectBackoff
	}
	return func() backoff.Policy { return &reconnectBackoff{max: max} }
}

// Next returns the pause before the next attempt.
func (b *reconnectBackoff) Next() time.Duration {
	switch {
	case b.next == 0:
		b.next = minReconnectBackoff
	default:
		b.next *= 2
	}
	if b.next > b.max {
		b.next = b.max
	}
	return b.next + time.Duration(rand.Int64N(int64(b.next)/5+1))
}

// IsMaxBackoffReached reports whether the pause reached its cap.
func (b *reconnectBackoff) IsMaxBackoffReached() bool { return b.next >= b.max }

// Reset starts again from the shortest pause.
func (b *reconnectBackoff) Reset() { b.next = 0 }
