package middleware

import (
	"errors"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Counters tally the outcomes of one handler. They are safe for concurrent use.
type Counters struct {
	ok          atomic.Int64
	errs        atomic.Int64
	poisoned    atomic.Int64
	rateLimited atomic.Int64
	panics      atomic.Int64
	retries     atomic.Int64
}

// Snapshot is a point-in-time copy of Counters.
type Snapshot struct {
	// OK counts inputs handled successfully (acked after their outputs).
	OK int64 `json:"ok"`
	// Errors counts inputs nacked for a transient error (panics included).
	Errors int64 `json:"error"`
	// Poisoned counts inputs sent to the poison queue and acked.
	Poisoned int64 `json:"poison"`
	// RateLimited counts inputs nacked after a too-many-requests answer.
	RateLimited int64 `json:"rate_limited"`
	// Panics counts handler panics (each is also an error).
	Panics int64 `json:"panics"`
	// Retries counts in-process retry attempts.
	Retries int64 `json:"retries"`
}

// Snapshot returns the current values.
func (c *Counters) Snapshot() Snapshot {
	return Snapshot{
		OK:          c.ok.Load(),
		Errors:      c.errs.Load(),
		Poisoned:    c.poisoned.Load(),
		RateLimited: c.rateLimited.Load(),
		Panics:      c.panics.Load(),
		Retries:     c.retries.Load(),
	}
}

// Add returns the sum of two snapshots.
func (s Snapshot) Add(o Snapshot) Snapshot {
	return Snapshot{
		OK:          s.OK + o.OK,
		Errors:      s.Errors + o.Errors,
		Poisoned:    s.Poisoned + o.Poisoned,
		RateLimited: s.RateLimited + o.RateLimited,
		Panics:      s.Panics + o.Panics,
		Retries:     s.Retries + o.Retries,
	}
}

// Count tallies the outcome of every call into c. Place it outermost.
func Count(c *Counters) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			switch {
			case err == nil && msg.Metadata.Get(poisonMarker) != "":
				delete(msg.Metadata, poisonMarker)
				c.poisoned.Add(1)
			case err == nil:
				c.ok.Add(1)
			case IsTooManyRequests(err):
				c.rateLimited.Add(1)
			default:
				c.errs.Add(1)
			}
			var p *PanicError
			if errors.As(err, &p) {
				c.panics.Add(1)
			}
			return out, err
		}
	}
}
